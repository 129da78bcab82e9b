"""Small SQL helpers that read the same on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import insert as generic_insert

from .errors import CrmError


# Statements built once: building SQLAlchemy constructs costs more than running them.
_STATEMENTS: dict = {}


def _dialect_insert(conn):
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
        return insert
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
        return insert
    return None


def insert_ignore(conn, table, rows: list[dict], conflict: list[str]) -> None:
    """INSERT rows, skipping any that would break the unique key `conflict`
    (a concurrent writer, or a replay, got there first). One statement,
    compiled once, run for every row."""
    if not rows:
        return
    insert = _dialect_insert(conn)
    if insert is None:      # another database: one row at a time under a savepoint
        from sqlalchemy.exc import IntegrityError
        for row in rows:
            try:
                with conn.begin_nested():
                    conn.execute(generic_insert(table).values(**row))
            except IntegrityError:
                pass
        return
    key = ("ignore", conn.dialect.name, table.name, tuple(conflict))
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = insert(table).on_conflict_do_nothing(index_elements=conflict)
    conn.execute(stmt, rows)


def upsert_many(conn, table, rows: list[dict], conflict: list[str]) -> None:
    """INSERT each row, or UPDATE the existing row with its unique key
    `conflict` to it. Rows with the same key: the last one wins."""
    if not rows:
        return
    last = {tuple(r[k] for k in conflict): r for r in rows}
    rows = list(last.values())
    insert = _dialect_insert(conn)
    if insert is None:
        from sqlalchemy import and_, update
        for row in rows:
            key = and_(*(table.c[k] == row[k] for k in conflict))
            if conn.execute(update(table).where(key).values(**row)).rowcount == 0:
                conn.execute(generic_insert(table).values(**row))
        return
    key = ("upsert", conn.dialect.name, table.name, tuple(conflict), tuple(sorted(rows[0])))
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = insert(table)
        stmt = _STATEMENTS[key] = stmt.on_conflict_do_update(
            index_elements=conflict, set_={k: stmt.excluded[k] for k in rows[0] if k not in conflict})
    conn.execute(stmt, rows)


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
