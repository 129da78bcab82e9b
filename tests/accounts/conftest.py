"""Accounts fixtures: the store tests run on SQLite and on PostgreSQL (the
tests' private PostgreSQL: tests/pgserver.py)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def accounts_engine(request, tmp_path):
    """A CRM database with an empty accounts table."""
    if request.param == "sqlite":
        engine = make_engine(None, str(tmp_path))
    else:
        engine = make_engine(request.getfixturevalue("postgres_url"), str(tmp_path))
    upgrade(engine)
    if request.param == "postgresql":
        with engine.begin() as conn:
            conn.execute(text('TRUNCATE "accounts" RESTART IDENTITY CASCADE'))
    try:
        yield engine
    finally:
        engine.dispose()
