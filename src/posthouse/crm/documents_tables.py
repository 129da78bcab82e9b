"""The documents attached to contacts (a resume imported from an email): the
file itself, and its extracted text for search."""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, LargeBinary, String, Table, Text

from ..db.metadata import metadata

documents = Table(
    "documents", metadata,
    Column("id", Integer, primary_key=True),
    # (The ForeignKey to contacts.id is added at integration: that table is built in parallel.)
    Column("contact_id", Integer, nullable=False, index=True),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("text", Text, nullable=False),
    # The text lower-cased by Python: SQLite's lower() and LIKE fold ASCII only,
    # so searching "müller" must not depend on the database's notion of case.
    Column("text_lower", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
