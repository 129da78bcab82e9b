"""Webhooks and their deliveries. A delivery is a queued row first, so one
not yet sent when the server stops is sent after it starts again."""
from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, JSON, String, Table, Text

from ..crm.tables import UtcDateTime, utcnow
from ..db.metadata import metadata

webhooks = Table(
    "webhooks", metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(255), nullable=False),           # the Posthouse user
    Column("url", String(2000), nullable=False),
    Column("events", JSON, nullable=False),                 # ["reply", "bounce", ...]
    # The signing key: needed in clear to sign, shown to its owner once.
    Column("secret", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Index("ix_webhooks_owner", "owner"),
)

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("delivery_id", String(64), nullable=False, unique=True),    # X-Posthouse-Delivery
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("body", Text, nullable=False),                   # the exact JSON signed and sent
    Column("status", String(12), nullable=False),           # queued | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_try", UtcDateTime),                        # when queued: not before then
    Column("status_code", Integer),                         # the last answer's HTTP status
    Column("error", Text),                                  # the last failure, in words
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("finished_at", UtcDateTime),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
    Index("ix_webhook_deliveries_due", "status", "next_try"),
)
