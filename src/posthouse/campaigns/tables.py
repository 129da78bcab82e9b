"""The campaigns' tables: a campaign (who sends what to whom), one row per
recipient (its state through sending, its own Message-ID), what came back
(bounces, auto-replies, complaints, unsubscribes, replies), and the IMAP
keywords still to be set on those replies in their mailboxes."""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, ForeignKey, Index, Integer, JSON, String, Table, Text,
                        UniqueConstraint)

from ..crm.tables import UtcDateTime, utcnow
from ..db.metadata import metadata

campaigns = Table(
    "campaigns", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("owner", String(255), nullable=False),           # the user who made it (all users see it)
    Column("account_id", Integer, nullable=False),          # the account whose address it is sent from
    Column("from_address", String(320), nullable=False),
    Column("subject", Text, nullable=False),                # templates with merge fields
    Column("body", Text, nullable=False),
    Column("selection", JSON, nullable=False),              # {"tag": ..., "q": ...}: how contacts were picked
    Column("state", String(10), nullable=False),            # draft | sending | done
    Column("secret", String(64), nullable=False),           # keys the recipients' unsubscribe tokens
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
)

campaign_recipients = Table(
    "campaign_recipients", metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="SET NULL")),
    Column("address", String(320), nullable=False),
    # queued -> sending (about to be handed to the queue) -> sent; or skipped / failed, with a reason
    Column("state", String(10), nullable=False),
    Column("reason", String(300)),
    Column("message_id", String(300), nullable=False, unique=True),    # without <>
    Column("sent_at", UtcDateTime),
    Index("ix_campaign_recipients_campaign_state", "campaign_id", "state"),
    Index("ix_campaign_recipients_address", "address"),
)

campaign_results = Table(
    "campaign_results", metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("recipient_id", Integer, ForeignKey("campaign_recipients.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(20), nullable=False),             # bounce | auto-reply | complaint | unsubscribe | reply
    Column("via", String(10)),                              # unsubscribe: one-click | reply
    Column("hard", Boolean),                                # bounce: hard or soft
    Column("reason", String(200)),                          # bounce: the sorter's reason
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="SET NULL")),
    Column("message", Integer, ForeignKey("messages.id", ondelete="SET NULL")),   # the CRM's row of the reply
    Column("account_id", Integer),                          # where the reply was seen
    Column("folder", String(1000)),
    Column("uidvalidity", BigInteger),
    Column("uid", BigInteger),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    # One result of a kind per reply (a replayed event changes nothing); one-click: one per recipient.
    UniqueConstraint("recipient_id", "kind", "message", name="uq_campaign_results_recipient_kind_message"),
    Index("ix_campaign_results_campaign", "campaign_id"),
)

campaign_keywords = Table(
    "campaign_keywords", metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, nullable=False),
    Column("folder", String(1000), nullable=False),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("keyword", String(40), nullable=False),
    Column("state", String(10), nullable=False),            # pending | done | skipped | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", UtcDateTime, nullable=False, default=utcnow),
    Column("last_error", Text),
    UniqueConstraint("account_id", "folder", "uidvalidity", "uid", "keyword",
                     name="uq_campaign_keywords_place_keyword"),
    Index("ix_campaign_keywords_state_next", "state", "next_attempt"),
)
