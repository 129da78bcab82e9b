"""The `accounts` table: one row per mailbox the tracker follows."""
from __future__ import annotations

from sqlalchemy import (JSON, Column, Date, DateTime, Integer, LargeBinary, String, Table, Text,
                        func)

from ..db.metadata import metadata

accounts = Table(
    "accounts", metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(255), nullable=False, index=True),     # the Posthouse user it belongs to
    Column("kind", String(16), nullable=False),                    # 'local' | 'imap'
    Column("imap_host", String(255), nullable=False),
    Column("imap_port", Integer, nullable=False),
    Column("imap_tls", String(16), nullable=False),                # 'implicit' | 'starttls' | 'none'
    Column("login", String(320), nullable=False),
    Column("auth", String(16), nullable=False),                    # 'password' | 'oauth2' | 'service'
    Column("oauth_provider", String(64)),
    Column("secret", LargeBinary),          # Fernet token of a JSON dict; the key is in the data directory
    Column("smtp_host", String(255)),
    Column("smtp_port", Integer),
    Column("smtp_tls", String(16)),
    Column("tls_pin", String(64)),          # hex SHA-256 of the server's certificate (DER)
    Column("since", Date),                  # NULL: all of it
    Column("privacy", String(16), nullable=False, server_default="snippet"),   # metadata | snippet | full
    Column("addresses", JSON, nullable=False),     # the owner's own addresses on this account
    Column("state", String(32), nullable=False, server_default="active"),      # active | needs_attention | disabled
    Column("state_reason", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_owner", String(255)),
    Column("lease_until", DateTime(timezone=True)),
)
