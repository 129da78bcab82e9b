"""Notes on contacts: who wrote what, and when (a contact's page lists them)."""
from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from ..db.metadata import metadata
from .tables import UtcDateTime, utcnow

contact_notes = Table(
    "contact_notes", metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("author", String(255), nullable=False),          # the Posthouse user who wrote it
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("updated_at", UtcDateTime),                      # set when edited
    Index("ix_contact_notes_contact", "contact_id", "id"),
)
