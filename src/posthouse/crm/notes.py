"""Notes on contacts: any user of the organisation reads them (contacts are
shared); only a note's author edits or deletes it."""
from __future__ import annotations

from sqlalchemy import delete, insert, select, update

from .errors import CrmError, NotFound
from .notes_tables import contact_notes
from .sqlutil import iso
from .tables import contacts, utcnow

MAX_NOTE = 20_000       # characters


def _body(text) -> str:
    if not isinstance(text, str) or not text.strip():
        raise CrmError("a note needs some text")
    text = text.replace("\r\n", "\n").strip()
    if len(text) > MAX_NOTE:
        raise CrmError(f"a note is at most {MAX_NOTE} characters")
    if "\x00" in text:
        raise CrmError("a note can't hold NUL characters")
    return text


def _out(row) -> dict:
    return {"id": row.id, "contact_id": row.contact_id, "author": row.author, "body": row.body,
            "created_at": iso(row.created_at), "updated_at": iso(row.updated_at)}


class Notes:
    def __init__(self, engine):
        self.engine = engine

    def list(self, contact_id: int, limit: int = 500) -> list[dict]:
        """Newest first (the latest `limit`)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(contact_notes).where(contact_notes.c.contact_id == contact_id)
                                .order_by(contact_notes.c.id.desc()).limit(max(1, int(limit)))).all()
        return [_out(r) for r in rows]

    def get(self, note_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(contact_notes).where(contact_notes.c.id == note_id)).first()
        return _out(row) if row else None

    def add(self, contact_id: int, author: str, text: str) -> dict:
        body = _body(text)
        with self.engine.begin() as conn:
            if conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).scalar() is None:
                raise NotFound(f"no contact {contact_id}")
            note_id = conn.execute(insert(contact_notes).values(
                contact_id=contact_id, author=author, body=body, created_at=utcnow())
                .returning(contact_notes.c.id)).scalar_one()
        return self.get(note_id)

    def _mine(self, conn, note_id: int, author: str):
        row = conn.execute(select(contact_notes).where(contact_notes.c.id == note_id)).first()
        if row is None:
            raise NotFound(f"no note {note_id}")
        if row.author != author:
            raise CrmError(f"note {note_id} is {row.author}'s: only its author changes it")
        return row

    def edit(self, note_id: int, author: str, text: str) -> dict:
        body = _body(text)
        with self.engine.begin() as conn:
            self._mine(conn, note_id, author)
            conn.execute(update(contact_notes).where(contact_notes.c.id == note_id)
                         .values(body=body, updated_at=utcnow()))
        return self.get(note_id)

    def delete(self, note_id: int, author: str) -> dict:
        with self.engine.begin() as conn:
            row = self._mine(conn, note_id, author)
            conn.execute(delete(contact_notes).where(contact_notes.c.id == note_id))
        return _out(row)
