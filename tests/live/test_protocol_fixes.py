"""Protocol fixes of issue 20, each against its RFC, on a live server."""
from __future__ import annotations

import re

MULTI = (b"From: a@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
         b"--B\r\nContent-Type: text/plain\r\n\r\none\r\n--B\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--B--\r\n")


def _append(raw, mailbox: bytes, message: bytes, flags: bytes = b"", binary: bool = False) -> list[bytes]:
    head = b"~{%d+}" if binary else b"{%d+}"
    flag_text = b"(" + flags + b") " if flags else b""
    raw.send(b"a APPEND " + mailbox + b" " + flag_text + head % len(message) + b"\r\n" + message + b"\r\n")
    lines = raw.read_until_tag("a")
    assert lines[-1].startswith(b"a OK")
    return lines


def test_a_section_the_message_lacks_is_an_empty_string(raw):
    _append(raw, b"INBOX", MULTI)
    raw.cmd("s", "SELECT INBOX")
    flat = b"".join(raw.cmd("f", "FETCH 1 (BODY.PEEK[1.TEXT] BODY.PEEK[3.HEADER] BODY.PEEK[3] BODY.PEEK[1])"))
    assert b'BODY[1.TEXT] ""' in flat and b'BODY[3.HEADER] ""' in flat and b'BODY[3] ""' in flat
    assert b"BODY[1] {3}\r\none" in flat


def test_binary_append_with_nul_is_fetched_encoded_and_described_alike(raw):
    payload = b"\x00-\xe4\n\r\n\n"
    message = (b"From: a@example.com\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: binary\r\n\r\n" + payload)
    _append(raw, b"INBOX", message, binary=True)
    raw.cmd("s", "SELECT INBOX")
    flat = b"".join(raw.cmd("f", "FETCH 1 (BODY.PEEK[1] BODY.PEEK[] BODYSTRUCTURE RFC822.SIZE)"))
    # No NUL outside a ~{n} literal (RFC 9051 CHAR8), and the structure tells how it is encoded.
    assert b"\x00" not in flat
    body = re.search(rb"BODY\[1\] \{(\d+)\}\r\n", flat)
    assert body and b'"BASE64" %s' % body.group(1) in flat
    size = int(re.search(rb"RFC822.SIZE (\d+)", flat).group(1))
    assert b"BODY[] {%d}" % size in flat
    flat = b"".join(raw.cmd("g", "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])"))
    assert b"BINARY[1] ~{7}\r\n" + payload in flat and b"BINARY.SIZE[1] 7" in flat


class FlagsWatcher:
    """What imaptest checks of every session: a keyword in FETCH FLAGS only after a
    FLAGS response has announced it (RFC 9051 7.3.5)."""

    def __init__(self):
        self.announced: set[str] = set()

    def check(self, lines: list[bytes]) -> list[bytes]:
        for line in lines:
            m = re.match(rb"\* FLAGS \(([^)]*)\)", line)
            if m:
                self.announced = set(m.group(1).lower().split())
                continue
            m = re.match(rb"\* \d+ FETCH .*FLAGS \(([^)]*)\)", line)
            if m:
                for flag in m.group(1).lower().split():
                    assert flag.startswith(b"\\") or flag in self.announced, (flag, lines)
        return lines


def test_a_new_keyword_is_announced_before_any_fetch_shows_it(raw_pair):
    a, b = raw_pair
    _append(a, b"INBOX", b"Subject: one\r\n\r\nx\r\n")
    assert a.cmd("c", "CREATE Other")[-1].startswith(b"c OK")
    wa, wb = FlagsWatcher(), FlagsWatcher()
    wa.check(a.cmd("s", "SELECT INBOX"))
    wb.check(b.cmd("s", "SELECT INBOX"))
    # STORE by this session: its own FETCH answer comes after FLAGS.
    lines = wa.check(a.cmd("t", "STORE 1 +FLAGS ($first)"))
    assert any(line.startswith(b"* FLAGS") for line in lines)
    # The other session learns of it by NOOP, and by a FETCH before any NOOP.
    wb.check(b.cmd("n", "NOOP"))
    wa.check(a.cmd("t", "STORE 1 +FLAGS ($second)"))
    lines = wb.check(b.cmd("f", "FETCH 1 FLAGS"))
    assert any(b"$second" in line for line in lines if line.startswith(b"* FLAGS"))
    # APPEND with a new keyword into the selected mailbox, then FETCH.
    wa.check(_append(a, b"INBOX", b"Subject: two\r\n\r\ny\r\n", flags=b"$third"))
    wa.check(a.cmd("f", "FETCH 1:* FLAGS"))
    wb.check(b.cmd("f", "FETCH 1:* FLAGS"))
    # COPY and MOVE into a mailbox another session has selected.
    wb.check(b.cmd("s", "SELECT Other"))
    wa.check(a.cmd("t", "STORE 1 +FLAGS ($fourth)"))
    wa.check(a.cmd("c", "COPY 1 Other"))
    wb.check(b.cmd("n", "NOOP"))
    wa.check(a.cmd("t", "STORE 2 +FLAGS ($fifth)"))
    wa.check(a.cmd("m", "MOVE 2 Other"))
    lines = wb.check(b.cmd("f", "FETCH 1:* FLAGS"))
    assert sum(1 for line in lines if b" FETCH " in line) == 2


def test_savedate_fetch_and_search(raw):
    assert b" SAVEDATE" in b"".join(raw.cmd("c", "CAPABILITY"))
    raw.send(b'a APPEND INBOX "01-Jan-2001 00:00:00 +0000" {20+}\r\nSubject: old\r\n\r\nbody\r\n')
    assert raw.read_until_tag("a")[-1].startswith(b"a OK")
    assert raw.cmd("c", "CREATE Later")[-1].startswith(b"c OK")
    raw.cmd("s", "SELECT INBOX")
    line = raw.cmd("f", "FETCH 1 (INTERNALDATE SAVEDATE)")[0]
    m = re.search(rb'SAVEDATE "(\d\d-\w{3}-(\d{4}) [^"]+)"', line)
    assert m and b'INTERNALDATE "01-Jan-2001 00:00:00 +0000"' in line
    assert int(m.group(2)) >= 2020          # saved now, not at the internal date
    # Saved after 2020, though its internal date is 2001.
    assert raw.cmd("s", "SEARCH SAVEDSINCE 1-Jan-2020")[0] == b"* SEARCH 1\r\n"
    assert raw.cmd("s", "SEARCH SAVEDBEFORE 1-Jan-2020")[0] == b"* SEARCH\r\n"
    assert raw.cmd("s", "SEARCH BEFORE 1-Jan-2020")[0] == b"* SEARCH 1\r\n"
    assert raw.cmd("s", "SEARCH SAVEDATESUPPORTED")[0] == b"* SEARCH 1\r\n"
    assert raw.cmd("s", "SEARCH NOT SAVEDON 1-Jan-2001")[0] == b"* SEARCH 1\r\n"
    # A copy is saved into its new mailbox anew (with its own save date).
    assert raw.cmd("c", "COPY 1 Later")[-1].startswith(b"c OK")
    raw.cmd("s", "SELECT Later")
    assert b"SAVEDATE \"" in raw.cmd("f", "FETCH 1 SAVEDATE")[0]
    assert raw.cmd("b", "FETCH 1 SAVEDATEX")[-1].startswith(b"b BAD")
