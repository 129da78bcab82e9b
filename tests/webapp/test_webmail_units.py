"""The webmail's small parsers with garbage: the search form's fields, the
conversation's Message-IDs, an attachment of a broken message, the remembered
image senders' file. Nothing crashes; bad input is refused or left out."""
from __future__ import annotations

import json
import random

import pytest

from posthouse.web.pages import attachments, conversation, search
from posthouse.web.pages.image_senders import ImageSenders


def test_search_fields_checked():
    assert search.fields_of({"from": " a@b ", "subject": "", "since": "2026-01-02", "attachment": "on"}) == {
        "from": "a@b", "since": "2026-01-02", "attachment": "1"}
    for bad in ({"since": "2026-13-01"}, {"until": "9999-12-31"}, {"to": "x\r\nA1 LOGOUT"}, {"text": "y" * 201}):
        assert search.fields_of(bad) == {}
        with pytest.raises(ValueError):
            search.fields_of(bad, strict=True)
    parts = search.criteria({"subject": 'a "b" \\ c', "from": "zoë", "until": "2026-02-28", "attachment": "1"})
    flat = b"".join(p if isinstance(p, bytes) else b"<lit:" + p.data + b">" for p in parts)
    assert b'SUBJECT "a \\"b\\" \\\\ c"' in flat and "zoë".encode() in flat and b"BEFORE 1-Mar-2026" in flat
    assert search.criteria({}) == [b"ALL"]


def test_conversation_ids_from_garbage():
    assert conversation.ids_of(b"") == ("", [])
    assert conversation.ids_of(b"\xff\xfe\x00garbage") == ("", [])
    own, refs = conversation.ids_of(b"Message-ID: <a@x>\r\nReferences: <r1@x> <a@x>\r\n <r2@x>\r\n"
                                    b"In-Reply-To: <r2@x>\r\n\r\n<body@x>")
    assert own == "a@x" and refs == ["r1@x", "r2@x"]
    many = b"References: " + b" ".join(b"<r%d@x>" % i for i in range(500)) + b"\r\nMessage-ID: <me@x>\r\n\r\n"
    own, refs = conversation.ids_of(many)
    criteria = conversation.criteria_for(own, refs)
    assert sum(1 for p in criteria if p == b"HEADER Message-ID ") == conversation.MAX_IDS
    rng = random.Random(7)
    for _ in range(200):
        conversation.ids_of(bytes(rng.randrange(256) for _ in range(rng.randrange(200))))


def test_attachment_of_broken_message():
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
           b"--b\r\nContent-Type: image/png; name=\"x\r\n\tevil\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"%%%not base64\r\n--b--\r\n")
    name, kind, data = attachments.take(raw, 2)
    assert kind == "image/png" and "\r" not in attachments._disposition("inline", name).split(";")[1]
    assert attachments.take(raw, 99) is None and attachments.take(b"", 0) is not None
    assert not attachments.previewable("image/svg+xml") and not attachments.previewable("text")
    assert attachments.previewable("text/html") and attachments.previewable("application/pdf")


def test_image_senders_file(tmp_path):
    path = str(tmp_path / "senders.json")
    senders = ImageSenders(path)
    senders.set("alice", "News@Example.org", True)
    assert ImageSenders(path).allowed("alice", "news@example.org")
    assert not ImageSenders(path).allowed("bob", "news@example.org")
    with pytest.raises(ValueError):
        senders.set("alice", "not an address", True)
    (tmp_path / "senders.json").write_text("{not json")
    assert not ImageSenders(path).allowed("alice", "news@example.org")     # unreadable: blocked again
    (tmp_path / "senders.json").write_text(json.dumps({"alice": "a string", "bob": [1, "b@x"]}))
    broken = ImageSenders(path)
    assert not broken.allowed("alice", "a") and broken.allowed("bob", "b@x")
