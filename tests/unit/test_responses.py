"""The client direction of the codec: server responses parsed without a socket."""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from posthouse.imap.protocol.responses import (
    Capability, Continuation, ESearch, Exists, Expunge, Fetch, ListEntry, ResponseError,
    ResponseReader, Search, Status, Vanished)
from posthouse.imap.protocol.tokens import Atom, ParenList


def parse_all(data: bytes, chunk: int | None = None) -> list:
    reader = ResponseReader()
    out = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        reader.feed(piece)
        while (r := reader.next_response()) is not None:
            out.append(r)
    return out


def one(data: bytes):
    got = parse_all(data)
    assert len(got) == 1, got
    return got[0]


def test_tagged_status_with_codes():
    r = one(b"A1 OK [READ-ONLY] SELECT completed\r\n")
    assert (r.tag, r.status, r.code, r.text) == ("A1", "OK", "READ-ONLY", "SELECT completed")
    r = one(b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n")
    assert r.tag is None and r.code == "UIDVALIDITY" and r.code_number() == 3857529045
    r = one(b"* OK [HIGHESTMODSEQ 715194045007] Highest\r\n")
    assert r.code_number() == 715194045007
    r = one(b"A3 OK [APPENDUID 38505 3955] APPEND completed\r\n")
    assert r.code == "APPENDUID" and (r.code_number(0), r.code_number(1)) == (38505, 3955)
    r = one(b"A NO [UNAVAILABLE] try later\r\n")
    assert (r.status, r.code) == ("NO", "UNAVAILABLE")
    r = one(b"A NO [LIMIT] too many\r\n")
    assert r.code == "LIMIT"
    r = one(b"* OK [CLOSED] Previous mailbox closed.\r\n")
    assert r.code == "CLOSED" and r.code_args == []
    r = one(b"* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] ready {5}\r\n")
    assert r.code == "CAPABILITY" and Atom("LITERAL+") in r.code_args
    assert r.text == "ready {5}"        # text ending like a literal is text
    r = one(b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n")
    assert isinstance(r.code_args[0], ParenList)
    r = one(b"* BYE shutting down\r\n")
    assert (r.status, r.code, r.text) == ("BYE", None, "shutting down")


def test_continuation():
    assert one(b"+ Ready for literal\r\n") == Continuation(b"Ready for literal")
    assert one(b"+\r\n") == Continuation(b"")


def test_fetch_with_literals_and_attributes():
    data = (b'* 12 FETCH (UID 4827313 FLAGS (\\Seen $Forwarded) MODSEQ (624140003) '
            b'INTERNALDATE "17-Jul-1996 02:44:25 -0700" RFC822.SIZE 4286 EMAILID (M6d99ac3275bb4e) '
            b'X-GM-MSGID 1278455344230334865 BODY[HEADER] {11}\r\nSubject: x\n'
            b' BODY[1]<0> ~{3}\r\n\x00ab BODY[2.MIME] NIL BINARY.SIZE[1] 40)\r\n')
    for chunk in (None, 1, 7):
        r = parse_all(data, chunk)[0]
        assert isinstance(r, Fetch) and r.seq == 12 and r.uid == 4827313
        a = r.attrs
        assert a["FLAGS"] == ("\\Seen", "$Forwarded")
        assert a["MODSEQ"] == 624140003 and a["RFC822.SIZE"] == 4286
        assert a["INTERNALDATE"] == datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))
        assert a["EMAILID"] == "M6d99ac3275bb4e"
        assert a["X-GM-MSGID"] == 1278455344230334865
        assert a["BODY[HEADER]"] == b"Subject: x\n"
        assert a["BODY[1]"] == b"\x00ab"
        assert a["BODY[2.MIME]"] is None
        assert a["BINARY.SIZE[1]"] == 40


def test_fetch_bodystructure_kept_as_tokens():
    r = one(b'* 1 FETCH (UID 5 BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 3 1)'
            b' ("APPLICATION" "PDF" ("NAME" "a.pdf") NIL NIL "BASE64" 400) "MIXED"))\r\n')
    assert isinstance(r.attrs["BODYSTRUCTURE"], ParenList)


def test_data_responses():
    assert one(b"* 23 EXISTS\r\n") == Exists(23)
    assert one(b"* 5 EXPUNGE\r\n") == Expunge(5)
    v = one(b"* VANISHED (EARLIER) 300:310,405,411\r\n")
    assert isinstance(v, Vanished) and v.earlier and len(v.uids) == 13 and 405 in v.uids and 404 not in v.uids
    v = one(b"* VANISHED 1:4294967295\r\n")
    assert not v.earlier and len(v.uids) == 4294967295     # never expanded
    assert one(b"* SEARCH 2 84 882\r\n") == Search([2, 84, 882])
    assert one(b"* SEARCH\r\n") == Search([])
    assert one(b"* SEARCH 2 5 (MODSEQ 917162500)\r\n") == Search([2, 5], 917162500)
    e = one(b'* ESEARCH (TAG "A285") UID MIN 7 MAX 3800 COUNT 15 ALL 7,10:12\r\n')
    assert isinstance(e, ESearch) and e.tag == "A285" and e.uid and (e.min, e.max, e.count) == (7, 3800, 15)
    assert list(e.all) == [7, 10, 11, 12]
    s = one(b'* STATUS "blurdybloop" (MESSAGES 231 UIDNEXT 44292 HIGHESTMODSEQ 7011231777)\r\n')
    assert s == Status("blurdybloop", {"MESSAGES": 231, "UIDNEXT": 44292, "HIGHESTMODSEQ": 7011231777})
    s = one(b"* STATUS {4}\r\nSent (UIDVALIDITY 9)\r\n")
    assert s == Status("Sent", {"UIDVALIDITY": 9})
    entry = one(b'* LIST (\\HasNoChildren \\Sent) "/" "Sent Items"\r\n')
    assert entry == ListEntry(frozenset({"\\HasNoChildren", "\\Sent"}), "/", "Sent Items", b"Sent Items")
    entry = one(b'* LIST () "." Entw&APw-rfe\r\n')
    assert entry.name == "Entwürfe"
    entry = one(b'* LIST (\\Noselect) NIL inbox\r\n')
    assert entry.name == "INBOX" and entry.delimiter is None
    caps = one(b"* CAPABILITY IMAP4rev1 condstore Idle\r\n")
    assert caps == Capability(frozenset({"IMAP4REV1", "CONDSTORE", "IDLE"}))


def test_several_responses_in_one_feed():
    got = parse_all(b"* 1 EXISTS\r\n* 0 RECENT\r\nA OK done\r\n")
    assert [type(r).__name__ for r in got] == ["Exists", "Recent", "StatusResponse"]


@pytest.mark.parametrize("bad", [
    b"\r\n", b"A1\r\n", b"A1 FETCH (UID 1)\r\n", b"* 1 FETCH UID\r\n", b"* 1 FETCH (UID)\r\n",
    b"* 1 FETCH (UID x)\r\n", b"* VANISHED 1:a\r\n", b"* LIST ()\r\n", b"* STATUS x\r\n",
    b"* 1 FETCH (INTERNALDATE \"31-Feb-2020 00:00:00 +0000\")\r\n", b"* OK [UIDNEXT 4\r\n",
    b"* 1 FETCH ((((\r\n", b"* \xff\xfe\r\n", b"* 3\r\n",
])
def test_garbage_is_a_typed_error(bad):
    with pytest.raises(ResponseError):
        parse_all(bad)


def test_oversized_literal_refused_before_reading():
    reader = ResponseReader(max_literal=10)
    reader.feed(b"* 1 FETCH (BODY[] {11}\r\n")
    with pytest.raises(ResponseError):
        reader.next_response()


def test_line_too_long():
    reader = ResponseReader(max_line=100)
    reader.feed(b"* " + b"x" * 200)
    with pytest.raises(ResponseError):
        reader.next_response()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_never_crashes(data):
    reader = ResponseReader(max_line=1000, max_literal=1000)
    reader.feed(data + b"\r\n")
    for _ in range(50):
        try:
            if reader.next_response() is None:
                break
        except ResponseError:
            pass


_pieces = st.sampled_from([b"* ", b"A1 ", b"OK ", b"FETCH ", b"1 ", b"(", b")", b"[", b"]", b"UID ", b"{3}\r\n",
                           b"~{2}\r\n", b"\"q\" ", b"NIL ", b"BODY[1]<0> ", b"\\Seen ", b"\r\n", b"VANISHED ",
                           b"(EARLIER) ", b"1:5,7 ", b"ESEARCH ", b"LIST ", b"STATUS ", b"abc", b"\xff"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_pieces, max_size=40))
def test_fuzz_structured_never_crashes(pieces):
    reader = ResponseReader(max_line=1000, max_literal=1000)
    reader.feed(b"".join(pieces) + b"\r\n")
    for _ in range(60):
        try:
            if reader.next_response() is None:
                break
        except ResponseError:
            pass
