"""Issue 20, search and parser faults: deep nesting in any command, SEARCHRES
SAVE with MIN/MAX, SEARCH BODY over HTML and other text parts."""
from __future__ import annotations

import logging

import pytest

from tests.conftest import raw_login


def _append(c, msg: bytes, tag: str = "ap") -> None:
    c.send(b"%s APPEND INBOX {%d+}\r\n" % (tag.encode(), len(msg)) + msg + b"\r\n")
    assert c.read_until_tag(tag)[-1].startswith(tag.encode() + b" OK")


def _garbage(n: int) -> dict[str, str]:
    L, R = "(" * n, ")" * n
    return {
        "search parens": f"SEARCH {L}ALL{R}",
        "search not-or": "SEARCH " + "NOT OR ALL " * n + "ALL",
        "search return": f"SEARCH RETURN {L}MIN{R} ALL",
        "uid search": f"UID SEARCH {L}ALL{R}",
        "sort criteria": f"SORT {L}ARRIVAL{R} UTF-8 ALL",
        "sort keys": f"SORT (ARRIVAL) UTF-8 {L}ALL{R}",
        "thread": "THREAD REFERENCES UTF-8 " + "OR NOT " * n + "ALL ALL",
        "store flags": f"STORE 1 +FLAGS {L}\\Seen{R}",
        "store modifier": f"STORE 1 (UNCHANGEDSINCE {L}1{R}) +FLAGS (\\Seen)",
        "fetch items": f"FETCH 1 {L}FLAGS{R}",
        "fetch modifier": f"FETCH 1 (FLAGS) (CHANGEDSINCE {L}1{R})",
        "fetch fields": f"FETCH 1 (BODY.PEEK[HEADER.FIELDS {L}FROM{R}])",
        "append flags": f"APPEND INBOX {L}\\Seen{R} {{1+}}\r\nx",
        "catenate": f"APPEND INBOX CATENATE (TEXT {L}x{R})",
        "notify": f"NOTIFY SET (SELECTED {L}MessageNew{R})",
        "notify mailboxes": f"NOTIFY SET (MAILBOXES {L}INBOX{R} (MessageNew))",
        "list selection": f"LIST {L}SUBSCRIBED{R} \"\" *",
        "list return": f"LIST \"\" * RETURN (STATUS {L}MESSAGES{R})",
        "status": f"STATUS INBOX {L}MESSAGES{R}",
        "select params": f"EXAMINE INBOX (QRESYNC {L}1 2{R})",
        "create use": f"CREATE nest (USE {L}\\Drafts{R})",
        "enable": f"ENABLE {L}CONDSTORE{R}",
        "id": f"ID {L}\"a\" \"b\"{R}",
        "copy": f"COPY {L}1{R} INBOX",
        "urlfetch": f"URLFETCH {L}x BODY{R}",
    }


# Searches that are valid at a nesting within the bounds (answered OK there).
_VALID_WHEN_SHALLOW = {"search parens", "search not-or", "uid search", "sort keys", "thread"}


@pytest.mark.parametrize("depth", [3000, 20])
def test_nested_garbage_in_every_command_is_bad_and_logs_nothing(server, user, depth, caplog):
    """Thousands of levels: BAD from the tokenizer or the search parser. A
    few levels (within the bounds): BAD for a list where none may be, never an
    internal error, and the connection goes on either way."""
    c = raw_login(server, user)
    try:
        _append(c, b"From: a@example.com\r\nSubject: nest\r\n\r\nhello\r\n")
        assert c.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
        with caplog.at_level(logging.WARNING):
            for name, text in _garbage(depth).items():
                lines = c.cmd("t", text)
                assert not any(b"SERVERBUG" in ln or ln.startswith(b"* BYE") for ln in lines), (name, lines)
                if depth > 100 or name not in _VALID_WHEN_SHALLOW:
                    assert lines[-1].startswith(b"t BAD"), (name, lines[-1])
                assert c.cmd("n", "NOOP")[-1].startswith(b"n OK"), name
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    finally:
        c.close()


def test_long_or_and_not_chains_are_answered(server, user):
    """A chain of 2,000 ORs (or NOTs) nests nothing: it is a search like any other."""
    c = raw_login(server, user)
    try:
        for i in range(3):
            _append(c, b"Subject: m%d\r\n\r\nbody\r\n" % i)
        c.cmd("s", "SELECT INBOX")
        c.cmd("f", "STORE 2 +FLAGS (\\Flagged)")
        ors = "OR " * 2000 + "DRAFT " * 2000 + "FLAGGED"
        assert c.cmd("t", "SEARCH " + ors)[0] == b"* SEARCH 2\r\n"
        assert c.cmd("t", "SEARCH " + "NOT " * 2001 + "FLAGGED")[0] == b"* SEARCH 1 3\r\n"
        assert c.cmd("t", "SEARCH " + "OR ANSWERED " * 2000 + "FLAGGED")[0] == b"* SEARCH 2\r\n"
    finally:
        c.close()


# -- SEARCHRES: what SAVE keeps with MIN/MAX (RFC 5182 2.4) ----------------------

def _saved(c, returns: str, command: str = "SEARCH", rest: str = "2:4") -> bytes:
    c.cmd("r", f"{command} RETURN ({returns}) {rest}")
    return c.cmd("f", "UID SEARCH UID $")[0]


@pytest.mark.parametrize("returns, saved", [
    ("MIN SAVE", b"* SEARCH 2\r\n"),
    ("SAVE MAX", b"* SEARCH 4\r\n"),
    ("MIN MAX SAVE", b"* SEARCH 2 4\r\n"),
    ("MIN SAVE COUNT", b"* SEARCH 2 3 4\r\n"),       # with COUNT or ALL: every match
    ("MAX ALL SAVE", b"* SEARCH 2 3 4\r\n"),
    ("SAVE", b"* SEARCH 2 3 4\r\n"),
    ("COUNT SAVE", b"* SEARCH 2 3 4\r\n"),
    ("SAVE PARTIAL 2:3", b"* SEARCH 3 4\r\n"),             # RFC 9394 3.2: the window
    ("MIN SAVE PARTIAL 2:2", b"* SEARCH 2 3\r\n"),          # ... and the MIN
    ("COUNT SAVE PARTIAL 1:1", b"* SEARCH 2 3 4\r\n"),      # ... but all with COUNT
])
def test_save_with_min_max_keeps_only_those(server, user, returns, saved):
    c = raw_login(server, user)
    try:
        for i in range(5):
            _append(c, b"Subject: s%d\r\n\r\nx\r\n" % i)
        c.cmd("s", "SELECT INBOX")
        assert _saved(c, returns) == saved
        assert _saved(c, returns, "UID SEARCH") == saved
        c.cmd("e", "SEARCH RETURN (SAVE MIN) 99")                     # no match: '$' is empty
        assert c.cmd("f", "UID SEARCH UID $")[0] == b"* SEARCH\r\n"
    finally:
        c.close()


def test_sort_save_with_min_keeps_the_first_in_sort_order(server, user):
    c = raw_login(server, user)
    try:
        for subject in (b"b", b"c", b"a"):
            _append(c, b"Subject: " + subject + b"\r\n\r\nx\r\n")
        c.cmd("s", "SELECT INBOX")
        assert _saved(c, "MIN SAVE", "SORT", "(SUBJECT) UTF-8 ALL") == b"* SEARCH 3\r\n"
        assert _saved(c, "MAX SAVE", "SORT", "(SUBJECT) UTF-8 ALL") == b"* SEARCH 2\r\n"
        assert _saved(c, "SAVE", "SORT", "(SUBJECT) UTF-8 ALL") == b"* SEARCH 1 2 3\r\n"
    finally:
        c.close()


# -- SEARCH BODY: HTML (visible text and markup) and other textual parts ---------

def _mime(ctype: str, body: bytes, cte: str = "7bit") -> bytes:
    return (b"From: a@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
            b"Content-Type: text/plain\r\n\r\nplain words here\r\n--XX\r\n"
            b"Content-Type: " + ctype.encode() + b"\r\nContent-Transfer-Encoding: " + cte.encode()
            + b"\r\n\r\n" + body + b"\r\n--XX--\r\n")


_HTML = (b"<html><head><title>Head title</title><style>.x{color:#abcdef}</style></head><body>"
         b"<p>Dear <b>cust</b>omer,</p><p>Please <a href=\"https://shop.example.net/unsub?u=42\">click</a>"
         b" here &amp; now</p><img alt=\"Spring catalogue\" src=\"cid:1\"><!-- tracking-id-77 --></body></html>")


def test_search_body_finds_html_text_and_markup_and_other_text_parts(server, user):
    import base64
    c = raw_login(server, user)
    try:
        _append(c, _mime("text/html; charset=utf-8", _HTML))                                  # 1
        _append(c, _mime("application/xhtml+xml", b"<html><body><p>xhtml <i>onl</i>y words</p></body></html>"))  # 2
        _append(c, _mime("message/delivery-status",
                         b"Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; gone@example.org\r\n"
                         b"Status: 5.1.1"))                                                    # 3
        latin = "<p>Gr\u00fc\u00dfe aus K\u00f6ln</p>".encode("iso-8859-1")
        _append(c, _mime("text/html; charset=iso-8859-1", base64.encodebytes(latin), "base64"))  # 4
        _append(c, _mime("application/octet-stream", b"customer opaque bytes"))               # 5
        c.cmd("s", "SELECT INBOX")

        def body(needle: str) -> bytes:
            return c.cmd("b", f'SEARCH BODY "{needle}"')[0]

        assert body("customer") == b"* SEARCH 1\r\n"               # <b>cust</b>omer, as a reader sees it
        assert body("dear customer,") == b"* SEARCH 1\r\n"
        assert body("here & now") == b"* SEARCH 1\r\n"             # the entity decoded
        assert body("&amp;") == b"* SEARCH 1\r\n"                  # ... and as written
        assert body("shop.example.net/unsub") == b"* SEARCH 1\r\n"  # a link's target
        assert body("Spring catalogue") == b"* SEARCH 1\r\n"       # an attribute
        assert body("tracking-id-77") == b"* SEARCH 1\r\n"         # a comment, in the markup
        assert body("<b>cust</b>") == b"* SEARCH 1\r\n"            # the markup itself
        assert body("xhtml only words") == b"* SEARCH 2\r\n"
        assert body("gone@example.org") == b"* SEARCH 3\r\n"
        assert body("Status: 5.1.1") == b"* SEARCH 3\r\n"
        assert body("gr\u00fc\u00dfe aus k\u00f6ln") == b"* SEARCH 4\r\n"   # base64 and Latin-1 decoded
        assert body("opaque") == b"* SEARCH\r\n"                   # not text: not searched
        assert body("plain words") == b"* SEARCH 1 2 3 4 5\r\n"
    finally:
        c.close()


def test_html_to_text_reads_like_a_reader():
    from posthouse.mime.decode import html_to_text
    text = " ".join(html_to_text(_HTML.decode()).split())
    assert text == "Dear customer, Please click here & now"
    # Block tags part words, inline ones don't; case and unclosed tags don't matter.
    assert html_to_text("a<BR>b<SPAN class=x>c</Span>d<td>e").split() == ["a", "bcd", "e"]
    assert html_to_text("x <script>never</SCRIPT > y").split() == ["x", "y"]


def test_html_to_text_stays_linear_on_hostile_markup():
    """Runs of unclosed '<', '<!--' or '<style' (quadratic for a regex that
    scans to the end from each one): 100,000 of each are read at once."""
    from posthouse.mime.decode import html_to_text
    for unit in ("<", "<a", "<!--", "<style", "</"):
        assert html_to_text("x" + unit * 100_000 + "y")


def test_an_older_store_makes_its_html_search_texts_again_when_idle(tmp_path):
    """Texts made by the parser before SEARCH_TEXT_VERSION 2 (HTML tags as
    spaces, no markup) are made again, a few per step of idle work."""
    from posthouse.mime.message import parse_message
    from posthouse.store.sqlite.backend import SQLiteStore
    store = SQLiteStore(str(tmp_path), fsync=False)
    store.create_user("old", "x", [("INBOX", None)])
    box = store.get_mailbox(store.get_user("old").id, "INBOX").id
    html = _mime("text/html", _HTML)
    plain = b"Subject: p\r\n\r\nplain customer\r\n"
    for i in range(30):
        parsed = parse_message(html + b"x-%d\r\n" % i)
        parsed.body_text = "plain words here dear cust omer, please click here & now"    # as version 1 made it
        store.append(box, html + b"x-%d\r\n" % i, parsed, set(), 0)
        store.append(box, plain + b"%d\r\n" % i, parse_message(plain + b"%d\r\n" % i), set(), 0)
    while store.idle_work():
        pass
    assert len(store.search_body(box, None, "customer")) == 30                  # the plain ones only
    store.db.execute("DELETE FROM meta WHERE key='search_text_version'")        # a store from before
    store.close()

    store = SQLiteStore(str(tmp_path), fsync=False)
    steps = 0
    while store.idle_work():
        steps += 1
    assert steps >= 2                                                           # in steps
    assert len(store.search_body(box, None, "customer")) == 60
    assert len(store.search_body(box, None, "shop.example.net")) == 30
    assert store.db.execute("SELECT value FROM meta WHERE key='search_text_version'").fetchone()[0] == 2
    store.close()
    store = SQLiteStore(str(tmp_path), fsync=False)                             # done: nothing more to do
    assert not store.idle_work()
    store.close()
