"""Bring the CRM database's schema up to date with Alembic.

The migrations live in db/migrations/versions (one file per schema step, never
edited once released); `upgrade` runs those not yet applied, in one place for
`posthouse serve`, `posthouse tracker` and every command that opens the
database. No alembic.ini: the configuration is made here."""
from __future__ import annotations

import logging
import os
import threading

# Alembic's own INFO lines (some at import) would come before the server's
# first line; the server says itself what was migrated (upgrade's answer).
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config as AlembicConfig  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")
_lock = threading.Lock()


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """(the revision before, the revision now): equal when nothing was to do."""
    with _lock:     # one process may open the database from several threads
        before = current(engine)
        command.upgrade(alembic_config(engine), revision)
        return before, current(engine)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
