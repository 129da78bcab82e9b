"""The web side's tables: API tokens. Only the token's SHA-256 is kept, never
the token: a copy of the database gives no way in."""
from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, String, Table

from ..db.metadata import metadata

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("user", String(255), nullable=False, index=True),     # the Posthouse user the token acts as
    Column("name", String(255), nullable=False, default=""),
    Column("token_hash", String(64), nullable=False, unique=True),   # sha256 hex of the token
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
)
