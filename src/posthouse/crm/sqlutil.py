"""Small SQL helpers that read the same on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import insert as generic_insert

from .errors import CrmError


def insert_ignore(conn, table, rows: list[dict], conflict: list[str]) -> None:
    """INSERT rows, skipping any that would break the unique key `conflict`
    (a concurrent writer, or a replay, got there first)."""
    if not rows:
        return
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:       # another database: one row at a time under a savepoint
        from sqlalchemy.exc import IntegrityError
        for row in rows:
            try:
                with conn.begin_nested():
                    conn.execute(generic_insert(table).values(**row))
            except IntegrityError:
                pass
        return
    conn.execute(insert(table).values(rows).on_conflict_do_nothing(index_elements=conflict))


def as_utc(value) -> datetime | None:
    """A datetime, date or ISO 8601 text as an aware UTC datetime (naive: UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CrmError(f"not a date: {value[:40]!r} (ISO 8601 expected)") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise CrmError(f"not a date: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
