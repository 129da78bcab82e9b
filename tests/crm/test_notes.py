"""Notes on contacts: added, listed newest first, edited and deleted by their
author only; bad text refused; gone with their contact."""
from __future__ import annotations

import pytest

from posthouse.crm.errors import CrmError, NotFound
from posthouse.crm.notes import Notes
from posthouse.crm.service import Crm


def test_notes_by_their_author(crm_engine):
    crm, notes = Crm(crm_engine), Notes(crm_engine)
    c = crm.add_contact(name="Noted Person", emails=["noted@acme.com"])
    first = notes.add(c["id"], "alice", "  met at the fair\r\nlikes tea ")
    second = notes.add(c["id"], "bob", "<script>alert(1)</script>")
    assert first["body"] == "met at the fair\nlikes tea" and first["author"] == "alice" and first["created_at"]
    assert [n["id"] for n in notes.list(c["id"])] == [second["id"], first["id"]]
    edited = notes.edit(first["id"], "alice", "likes coffee")
    assert edited["body"] == "likes coffee" and edited["updated_at"]
    with pytest.raises(CrmError, match="only its author"):
        notes.edit(second["id"], "alice", "changed by someone else")
    with pytest.raises(CrmError, match="only its author"):
        notes.delete(second["id"], "alice")
    for bad in ("", "   ", None, 42, "x" * 20_001, "nul\x00"):
        with pytest.raises(CrmError):
            notes.add(c["id"], "alice", bad)
    with pytest.raises(NotFound):
        notes.add(c["id"] + 100, "alice", "no such contact")
    with pytest.raises(NotFound):
        notes.edit(999, "alice", "no such note")
    notes.delete(second["id"], "bob")
    assert [n["id"] for n in notes.list(c["id"])] == [first["id"]]
    crm.delete_contact(c["id"])       # the contact's notes go with it
    assert notes.get(first["id"]) is None
