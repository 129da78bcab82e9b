"""Accounts fixtures: the store tests run on SQLite and on PostgreSQL (the
private PostgreSQL of tests/crm/pg.py, where that is present)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade

try:
    from tests.crm.pg import postgres_url  # noqa: F401  (a session fixture)
    HAVE_PG_FIXTURE = True
except ImportError:
    HAVE_PG_FIXTURE = False


@pytest.fixture(params=["sqlite", "postgresql"])
def accounts_engine(request, tmp_path):
    """A CRM database with an empty accounts table."""
    if request.param == "sqlite":
        engine = make_engine(None, str(tmp_path))
    else:
        if not HAVE_PG_FIXTURE:
            pytest.skip("the private PostgreSQL fixture (tests/crm/pg.py) is not in this tree")
        engine = make_engine(request.getfixturevalue("postgres_url"), str(tmp_path))
    upgrade(engine)
    if request.param == "postgresql":
        with engine.begin() as conn:
            conn.execute(text('TRUNCATE "accounts" RESTART IDENTITY CASCADE'))
    try:
        yield engine
    finally:
        engine.dispose()
