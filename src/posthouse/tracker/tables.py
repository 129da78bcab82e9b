"""The tracker's own tables: a cursor per followed folder, and a log of what
went wrong or was reset (shown by `posthouse account status`)."""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Integer, String, Table, Text,
                        UniqueConstraint)

from ..db.metadata import metadata

tracker_folders = Table(
    "tracker_folders", metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, nullable=False, index=True),
    Column("name", Text, nullable=False),           # decoded (UTF-8)
    Column("uidvalidity", BigInteger),
    Column("uidnext", BigInteger),                  # every UID below it and >= low_uid was seen
    Column("highestmodseq", BigInteger),            # flags known as of this MODSEQ (NULL: no CONDSTORE)
    Column("low_uid", BigInteger),                  # the newest-first backfill reached down to here
    Column("backfill_done", Boolean, nullable=False, default=False),
    Column("messages_total", Integer, nullable=False, default=0),   # in scope (since the account's date)
    Column("messages_done", Integer, nullable=False, default=0),    # of those, seen
    Column("special_use", String(32)),
    # The UIDs seen, as ranges ("1:40,42"), so expunges are found without
    # QRESYNC by a diff with UID SEARCH ALL.
    Column("known_uids", Text, nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True)),
    UniqueConstraint("account_id", "name"),
)

tracker_log = Table(
    "tracker_log", metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("level", String(16), nullable=False),    # 'info' | 'warning' | 'error'
    Column("text", Text, nullable=False),
)
