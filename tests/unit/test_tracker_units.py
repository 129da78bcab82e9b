"""Pure parts of the tracker: BODYSTRUCTURE trees, skeleton plans, UID sets."""
import pytest
from hypothesis import given, settings, strategies as st

from posthouse.imap.protocol.responses import ResponseError, ResponseReader
from posthouse.imap_client.bodystructure import parse_bodystructure
from posthouse.tracker import skeleton, uidsets


def bodystructure(text: bytes):
    reader = ResponseReader()
    reader.feed(b"* 1 FETCH (BODYSTRUCTURE " + text + b")\r\n")
    return parse_bodystructure(reader.next_response().attrs["BODYSTRUCTURE"])


def test_nested_multipart_sections_and_plan():
    root = bodystructure(
        b'((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 10 1 NIL NIL NIL)'
        b' ("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 20 1 NIL NIL NIL) "ALTERNATIVE")'
        b' ("APPLICATION" "PDF" ("NAME" "x.pdf") NIL NIL "BASE64" 4000 NIL ("ATTACHMENT" ("FILENAME*" "utf-8\'\'%C3%A9t%C3%A9.pdf")) NIL NIL)'
        b' ("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 300 (NIL "s" NIL NIL NIL NIL NIL NIL NIL NIL)'
        b' ("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1) 9) "MIXED" ("BOUNDARY" "b") NIL NIL)')
    assert root.is_multipart and root.params["boundary"] == "b"
    assert [p.section for p in root.walk()] == ["", "1", "1.1", "1.2", "2", "3"]
    assert root.children[1].filename == "été.pdf" and root.children[1].disposition == "attachment"
    plan = skeleton.plan(root)
    assert "BODY.PEEK[1.1]<0.262144>" in plan and "BODY.PEEK[1.2]<0.262144>" in plan
    assert "BODY.PEEK[3.HEADER]" in plan and "BODY.PEEK[2.MIME]" in plan
    assert not any(item.startswith("BODY.PEEK[2]") for item in plan)
    assert [(a.name, a.section) for a in skeleton.attachments(root)] == [("été.pdf", "2"), (None, "3")]


def test_single_part_message():
    root = bodystructure(b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 3 1)')
    assert not root.is_multipart and skeleton.plan(root) == ["BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]<0.262144>"]
    assert skeleton.build(root, {"BODY[HEADER]": b"Subject: a\r\n\r\n", "BODY[TEXT]": b"hi\r\n"}) == \
        b"Subject: a\r\n\r\nhi\r\n"


@pytest.mark.parametrize("bad", [b'("TEXT")', b"NIL", b'("TEXT" "PLAIN" NIL NIL NIL "7BIT")'])
def test_malformed_bodystructure(bad):
    with pytest.raises(ResponseError):
        bodystructure(bad)


def test_message_id_and_hash():
    fields = skeleton.header_fields(b"Message-ID:  <a@b>  \r\nSubject: x\r\n\r\n")
    assert skeleton.message_id(fields) == "a@b"
    assert skeleton.content_hash(fields, b"a  b\r\n") == skeleton.content_hash(fields, b"a b\n")


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(1, 500), max_size=60))
def test_uidsets_round_trip(uids):
    assert uidsets.from_text(uidsets.to_text(uids)) == uids
