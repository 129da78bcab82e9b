"""The CRM's tables: contacts and companies, the tracker's message index
(one row per distinct message, however many places hold it), the activities
that tie a contact to a message, and the private lists.

Portable between SQLite and PostgreSQL: JSON columns, timestamps stored in
UTC and read back timezone-aware on both."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer, JSON,
                        String, Table, Text, UniqueConstraint)
from sqlalchemy.types import TypeDecorator

from ..db.metadata import metadata


class UtcDateTime(TypeDecorator):
    """A timezone-aware datetime, stored as UTC. SQLite keeps no zone, so a
    naive value read back is UTC by construction; naive input is refused."""
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime for a timezone-aware column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


companies = Table(
    "companies", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(300), nullable=False),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
)

company_domains = Table(
    "company_domains", metadata,
    Column("id", Integer, primary_key=True),
    Column("company_id", Integer, ForeignKey("companies.id", ondelete="CASCADE"), nullable=False),
    Column("domain", String(255), nullable=False, unique=True),     # canonical (lower-case, Unicode)
    Index("ix_company_domains_company", "company_id"),
)

contacts = Table(
    "contacts", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(300)),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("phone", String(100)),
    Column("title", String(300)),
    Column("notes", Text),
    Column("company_id", Integer, ForeignKey("companies.id", ondelete="SET NULL")),
    Column("opted_out", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("last_contacted", UtcDateTime),
    Index("ix_contacts_company", "company_id"),
)

contact_emails = Table(
    "contact_emails", metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("address", String(320), nullable=False, unique=True),    # canonical (addresses.canonical)
    Column("bouncing", Boolean, nullable=False, default=False),
    Column("bounce_reason", String(200)),
    Index("ix_contact_emails_contact", "contact_id"),
)

contact_tags = Table(
    "contact_tags", metadata,
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(100), primary_key=True),
    Index("ix_contact_tags_tag", "tag"),
)

# The tracker's index: one row per distinct message. `identity` is "m:" +
# Message-ID (hashed when very long), else "h:" + the content hash, so that a
# copy in another folder or account, or seen again after a UIDVALIDITY reset,
# finds the same row.
messages = Table(
    "messages", metadata,
    Column("id", Integer, primary_key=True),
    Column("identity", String(600), nullable=False, unique=True),
    Column("message_id", Text),
    Column("content_hash", String(64), nullable=False),
    Column("subject", Text),
    Column("date", UtcDateTime, nullable=False),
    Column("direction", String(8), nullable=False),         # 'received' | 'sent'
    Column("participants", JSON, nullable=False),           # [{role, name, address}], canonical addresses
    Column("in_reply_to", Text),
    Column("references", JSON),                             # [message-id, ...]
    Column("snippet", Text),                                # by the privacy level
    Column("text", Text),                                   # only at privacy level 'full'
    Column("privacy", String(10), nullable=False),          # the level snippet/text were stored at
    Column("size", BigInteger),
    Column("attachments", JSON),                            # [{name, content_type, size, section}]
    Column("kind", String(20)),                             # the reply sorter's kind (received mail)
    Column("classification", JSON),
    Column("first_seen", UtcDateTime, nullable=False, default=utcnow),
    Index("ix_messages_message_id", "message_id", postgresql_using="hash"),
    Index("ix_messages_content_hash", "content_hash"),
)

# Every participant of a message, canonical, for matching contacts to earlier mail.
message_addresses = Table(
    "message_addresses", metadata,
    Column("message", Integer, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("address", String(320), primary_key=True),
    Column("role", String(12), primary_key=True),           # from sender reply-to to cc bcc bounced
    Index("ix_message_addresses_address", "address"),
)

# Where copies of a message are (or were: gone_at).
message_places = Table(
    "message_places", metadata,
    Column("id", Integer, primary_key=True),
    Column("message", Integer, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", Integer, nullable=False),
    Column("folder", String(1000), nullable=False),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("emailid", String(300)),
    Column("flags", JSON),
    Column("modseq", BigInteger),
    Column("special_use", String(20)),
    Column("seen_at", UtcDateTime, nullable=False, default=utcnow),
    Column("gone_at", UtcDateTime),
    UniqueConstraint("account_id", "folder", "uidvalidity", "uid"),
    Index("ix_message_places_message", "message"),
)

activities = Table(
    "activities", metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("message", Integer, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("date", UtcDateTime, nullable=False),
    UniqueConstraint("contact_id", "message"),
    Index("ix_activities_contact_date", "contact_id", "date"),
    Index("ix_activities_message", "message"),
    Index("ix_activities_date", "date"),
)

# Addresses and domains whose mail is never logged: owner None = the whole server.
private_entries = Table(
    "private_entries", metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(200)),
    Column("entry", String(320), nullable=False),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Index("ix_private_entries_owner", "owner"),
)
