"""Bring the CRM database's schema up to date with Alembic.

The migrations live in db/migrations/versions (one file per schema step, never
edited once released); `upgrade` runs those not yet applied, in one place for
`posthouse serve`, `posthouse tracker` and every command that opens the
database. No alembic.ini: the configuration is made here."""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading

# Alembic's own INFO lines (some at import) would come before the server's
# first line; the server says itself what was migrated (upgrade's answer).
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config as AlembicConfig  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")
_lock = threading.Lock()


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """(the revision before, the revision now): equal when nothing was to do.
    Processes that start at once (serve, a tracker, a command) take turns."""
    with _lock, _across_processes(engine):
        before = current(engine)
        command.upgrade(alembic_config(engine), revision)
        return before, current(engine)


@contextlib.contextmanager
def _across_processes(engine: Engine):
    """One migrating process at a time: a lock file beside a SQLite database,
    an advisory lock in PostgreSQL (held by a connection of its own)."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        if not path or path == ":memory:":
            yield
            return
        with open(path + ".migrate-lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                conn.commit()
        return
    yield


_PG_LOCK_KEY = 0x706f73746d6967     # "postmig": any constant the other users of the database don't take


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
