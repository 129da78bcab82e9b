"""Protocol fixes of issue 20, each against its RFC, on a live server."""
from __future__ import annotations

import re

MULTI = (b"From: a@example.com\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
         b"--B\r\nContent-Type: text/plain\r\n\r\none\r\n--B\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--B--\r\n")


def _append(raw, mailbox: bytes, message: bytes, flags: bytes = b"", binary: bool = False) -> None:
    head = b"~{%d+}" if binary else b"{%d+}"
    flag_text = b"(" + flags + b") " if flags else b""
    raw.send(b"a APPEND " + mailbox + b" " + flag_text + head % len(message) + b"\r\n" + message + b"\r\n")
    assert raw.read_until_tag("a")[-1].startswith(b"a OK")


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
