"""IMAP strings as ENVELOPE and BODYSTRUCTURE carry them, rendered once at delivery.

Here rather than in imap/ so that mime/ needs nothing above it; the IMAP
protocol writer uses these same functions.
"""
from __future__ import annotations


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


def paren(items) -> bytes:
    return b"(" + b" ".join(items) + b")"
