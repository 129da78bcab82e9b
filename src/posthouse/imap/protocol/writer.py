"""Serialize IMAP response values."""
from __future__ import annotations

from .numbers import decimal_list


def quoted_or_literal(value: bytes | str, utf8: bool = True) -> bytes:
    """A string as "quoted" when it can be, else as a {n} literal."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    # Octets as ints: `13 in value` is several times cheaper than `b"\r" in value`,
    # and this runs for every string of every envelope and body structure.
    if len(value) < 1024 and 13 not in value and 10 not in value and 0 not in value and (
            utf8 or value.isascii()):
        if 92 in value or 34 in value:      # backslash, double quote
            value = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + value + b'"'
    return b"{%d}\r\n" % len(value) + value


def nstring(value: bytes | str | None, utf8: bool = True) -> bytes:
    return b"NIL" if value is None else quoted_or_literal(value, utf8)


def literal(value: bytes, binary: bool = False) -> bytes:
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % len(value) + value


def astring(value: str, utf8: bool = True) -> bytes:
    """An atom when safe (mailbox names like INBOX look nicer bare), else quoted."""
    raw = value.encode("utf-8", "surrogateescape")
    if raw and all(0x21 <= b <= 0x7E and b not in b'(){%*"\\]' for b in raw):
        return raw
    return quoted_or_literal(raw, utf8)


def paren(items) -> bytes:
    return b"(" + b" ".join(items) + b")"


def number_line(name: bytes, numbers, modseq: int | None = None, ascending: bool = False) -> bytes:
    """An untagged "* SEARCH 1 2 3" line, with CONDSTORE's "(MODSEQ n)" after
    the numbers when given. ascending: the numbers are known to rise."""
    if not len(numbers):
        return b"* " + name + b"\r\n"
    tail = b"" if modseq is None else b" (MODSEQ %d)" % modseq
    return b"* " + name + b" " + decimal_list(numbers, ascending) + tail + b"\r\n"
