"""An Engine for the CRM database: `database_url`, else crm.sqlite3 in the data
directory."""
from __future__ import annotations

import os

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine


def database_url(url: str | None, data_dir: str) -> str:
    if not url:
        return "sqlite:///" + os.path.join(os.path.abspath(data_dir), "crm.sqlite3")
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]     # psycopg 3
    return url


def make_engine(url: str | None, data_dir: str) -> Engine:
    url = database_url(url, data_dir)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")       # readers never wait for the writer
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL keeps commits in order, so a power cut loses at most the last
            # ones and never a fact batch whose later cursor survived: the tracker
            # replays from its cursor. FULL's fsync per commit halved the sync rate.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
        return engine
    return create_engine(url, pool_pre_ping=True)
