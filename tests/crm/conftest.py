"""CRM fixtures: every CRM test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from posthouse.db.engine import make_engine
from posthouse.db.metadata import load_tables
from posthouse.db.migrate import upgrade


_pg_schema_made = False


@pytest.fixture(params=["sqlite", "postgresql"])
def crm_engine(request, tmp_path):
    """A fresh, empty CRM database: a new SQLite file, or the session's
    PostgreSQL database with every table emptied."""
    global _pg_schema_made
    if request.param == "sqlite":
        engine = make_engine(None, str(tmp_path))
        upgrade(engine)
    else:
        url = request.getfixturevalue("postgres_url")
        engine = make_engine(url, str(tmp_path))
        if not _pg_schema_made:
            upgrade(engine)
            _pg_schema_made = True
        names = ", ".join(f'"{t.name}"' for t in load_tables().sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    try:
        yield engine
    finally:
        engine.dispose()
