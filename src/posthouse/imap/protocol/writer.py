"""Serialize IMAP response values."""
from __future__ import annotations

from ...mime.imapstrings import nstring, paren, quoted_or_literal  # noqa: F401 (re-exported)
from .numbers import decimal_list


def literal(value: bytes, binary: bool = False) -> bytes:
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % len(value) + value


def astring(value: str, utf8: bool = True) -> bytes:
    """An atom when safe (mailbox names like INBOX look nicer bare), else quoted."""
    raw = value.encode("utf-8", "surrogateescape")
    if raw and all(0x21 <= b <= 0x7E and b not in b'(){%*"\\]' for b in raw):
        return raw
    return quoted_or_literal(raw, utf8)


def number_line(name: bytes, numbers, modseq: int | None = None, ascending: bool = False) -> bytes:
    """An untagged "* SEARCH 1 2 3" line, with CONDSTORE's "(MODSEQ n)" after
    the numbers when given. ascending: the numbers are known to rise."""
    if not len(numbers):
        return b"* " + name + b"\r\n"
    tail = b"" if modseq is None else b" (MODSEQ %d)" % modseq
    return b"* " + name + b" " + decimal_list(numbers, ascending) + tail + b"\r\n"
