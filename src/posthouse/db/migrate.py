"""Bring a database's schema up to date.

Until the Alembic migrations are written (at integration), `upgrade` creates
the tables declared on `metadata` that are missing."""
from __future__ import annotations

from sqlalchemy.engine import Engine

from .metadata import load_tables


def upgrade(engine: Engine) -> None:
    load_tables().create_all(engine)
