"""The pages' login sessions, kept in the CRM database so that a restart of
`posthouse serve` (or another node) keeps users logged in. Only the SHA-256
of the session id is stored: a copy of the database logs nobody in."""
from __future__ import annotations

from sqlalchemy import Column, DateTime, String, Table

from ..db.metadata import metadata

web_sessions = Table(
    "web_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),            # sha256 hex of the cookie's session id
    Column("user", String(255), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),                  # the session's form token
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),   # moved on while in use
)
