"""Documents on contacts (a resume imported from an email): the file, and its
text (document_text.py), extracted once when the document is added, in a child
process under time and memory limits by default, and searched by word."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

from sqlalchemy import and_, delete, func, insert, select

from .document_text import (MAX_DOCUMENT_SIZE, MAX_TEXT, WORKER_TIMEOUT, DocumentError, extract_text,
                            extract_text_isolated)
from .documents_tables import documents

__all__ = ["Documents", "DocumentError", "extract_text", "extract_text_isolated"]

EXCERPT = 300                           # characters of text in add()'s answer


# -- the store ------------------------------------------------------------------------
def _summary(row, text: str | None = None) -> dict:
    text = row.text if text is None else text
    return {"id": row.id, "contact_id": row.contact_id, "filename": row.filename,
            "content_type": row.content_type, "size": row.size, "sha256": row.sha256,
            "created_at": row.created_at.isoformat() if row.created_at else None,
            "text_excerpt": text[:EXCERPT]}


class Documents:
    """Documents on contacts, in the CRM database."""

    def __init__(self, engine, *, max_size: int = MAX_DOCUMENT_SIZE, max_text: int = MAX_TEXT,
                 isolated: bool = True, timeout: float = WORKER_TIMEOUT):
        self.engine = engine
        self.max_size = max_size
        self.max_text = max_text
        self.isolated = isolated        # extract in a child process under time and memory limits
        self.timeout = timeout

    @classmethod
    def from_config(cls, engine, config, **kwargs) -> "Documents":
        return cls(engine, max_size=config.document_max_size, **kwargs)

    def add(self, contact_id: int, filename: str, content_type: str, data: bytes) -> dict:
        """Store a document after extracting its text (DocumentError if it
        can't be read). The same file added to the same contact again is the
        document already there."""
        filename = (filename or "document").replace("\r", " ").replace("\n", " ").strip()[:255] or "document"
        content_type = (content_type or "application/octet-stream").strip()[:255]
        digest = hashlib.sha256(data).hexdigest()
        with self.engine.connect() as conn:
            same = conn.execute(select(documents.c.id).where(documents.c.contact_id == int(contact_id),
                                                             documents.c.sha256 == digest)).scalar()
        if same is not None:
            return self.get(same)
        if self.isolated:
            text = extract_text_isolated(filename, content_type, data, max_size=self.max_size,
                                         max_text=self.max_text, timeout=self.timeout)
        else:
            text = extract_text(filename, content_type, data, max_size=self.max_size, max_text=self.max_text)
        row = {"contact_id": int(contact_id), "filename": filename, "content_type": content_type,
               "size": len(data), "sha256": digest, "data": bytes(data),
               "text": text, "text_lower": text.lower(), "created_at": datetime.now(timezone.utc)}
        with self.engine.begin() as conn:
            row["id"] = conn.execute(insert(documents).values(**row)).inserted_primary_key[0]
        return self.get(row["id"])

    def _meta_columns(self):
        return [documents.c.id, documents.c.contact_id, documents.c.filename, documents.c.content_type,
                documents.c.size, documents.c.sha256, documents.c.created_at]

    def get(self, id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*self._meta_columns(), func.substr(documents.c.text, 1, EXCERPT).label("text"))
                               .where(documents.c.id == id)).first()
        return _summary(row) if row else None

    def text(self, id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(documents.c.text).where(documents.c.id == id)).scalar()

    def data(self, id: int) -> bytes | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(documents.c.data).where(documents.c.id == id)).scalar()
        return bytes(value) if value is not None else None

    def list(self, contact_id: int) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(*self._meta_columns(), func.substr(documents.c.text, 1, EXCERPT).label("text"))
                                .where(documents.c.contact_id == contact_id).order_by(documents.c.id)).all()
        return [_summary(r) for r in rows]

    def delete(self, id: int) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(documents).where(documents.c.id == id)).rowcount > 0

    def delete_for_contact(self, contact_id: int) -> int:
        with self.engine.begin() as conn:
            return conn.execute(delete(documents).where(documents.c.contact_id == contact_id)).rowcount

    def search(self, q: str, *, contact_id: int | None = None, limit: int = 50) -> list[dict]:
        """Documents holding every word of q (whole words, any case): each hit
        with its contact_id and a snippet around the first match."""
        words = [w for w in re.findall(r"\w+", (q or "").lower())][:10]
        if not words:
            return []
        patterns = [re.compile(r"(?<!\w)" + re.escape(w) + r"(?!\w)", re.IGNORECASE) for w in words]
        # LIKE narrows it down in the database; the word boundaries are checked here.
        conditions = [documents.c.text_lower.like("%" + _like_escape(w) + "%", escape="\\") for w in words]
        if contact_id is not None:
            conditions.append(documents.c.contact_id == contact_id)
        hits: list[dict] = []
        query = (select(documents.c.id, documents.c.contact_id, documents.c.filename, documents.c.text)
                 .where(and_(*conditions)).order_by(documents.c.id.desc()))
        with self.engine.connect() as conn:
            for row in conn.execute(query.execution_options(yield_per=20)):
                matches = [p.search(row.text) for p in patterns]
                if not all(matches):
                    continue
                hits.append({"document_id": row.id, "contact_id": row.contact_id, "filename": row.filename,
                             "snippet": _snippet(row.text, matches[0].start(), matches[0].end())})
                if len(hits) >= limit:
                    break
        return hits


def _like_escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _snippet(text: str, start: int, end: int, around: int = 80) -> str:
    left, right = max(0, start - around), min(len(text), end + around)
    snippet = " ".join(text[left:right].split())
    return ("…" if left > 0 else "") + snippet + ("…" if right < len(text) else "")
