"""The Alembic migrations make exactly the tables the code declares, on
SQLite and on PostgreSQL: a table or column added in code without a
migration fails here."""
from __future__ import annotations

from alembic import command

from posthouse.db.migrate import alembic_config, current, upgrade


def test_migrations_match_the_declared_tables(crm_engine):
    assert current(crm_engine) is not None          # the fixture's database was made by the migrations
    command.check(alembic_config(crm_engine))        # raises if metadata and database differ


def test_upgrade_twice_changes_nothing(crm_engine):
    before = current(crm_engine)
    upgrade(crm_engine)
    assert current(crm_engine) == before
