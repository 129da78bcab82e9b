"""Content-transfer-encoding and charset decoding (BINARY fetch, search text)."""
from __future__ import annotations

import base64
import binascii
import re

IDENTITY = frozenset({"7bit", "8bit", "binary", ""})


class UnknownEncoding(ValueError):
    pass


def decode_transfer(data: bytes, encoding: str) -> bytes:
    enc = encoding.strip().lower()
    if enc in IDENTITY:
        return data
    if enc == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return b""
    if enc == "quoted-printable":
        return decode_qp(data)
    raise UnknownEncoding(encoding)


_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_qp(data: bytes) -> bytes:
    """Quoted-printable as RFC 2045 6.7 says: white space at the end of a line is
    transport padding and goes, so a "=" then padding is still a soft line break;
    a malformed "=" stays as it is."""
    out = bytearray()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if line.endswith(b"\r"):
            line = line[:-1]
        line = line.rstrip(b" \t")
        soft = line.endswith(b"=")
        if soft:
            line = line[:-1]
        out += _QP_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), line)
        if not soft and not last:
            out += b"\r\n"
    return bytes(out)


def to_text(data: bytes, charset: str | None) -> str:
    for cs in (charset, "utf-8"):
        if not cs:
            continue
        try:
            return data.decode(cs)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


# No pattern here can scan past a "<": a tag holds none, so a run of
# unclosed "<" costs linear time, not quadratic (a hostile message).
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)?[^<>]*>")
# Tags inside a line of text (<b>hel</b>lo is "hello"): they go without a
# trace; any other tag (a paragraph, a cell, a line break) parts words.
_INLINE_TAGS = frozenset("a abbr b bdi bdo big cite code data del dfn em font i ins kbd mark q s samp small "
                         "span strike strong sub sup time tt u var wbr".split())


def _tag_gap(m: re.Match) -> str:
    name = m.group(1)
    return "" if name is not None and name.lower() in _INLINE_TAGS else " "


_HIDDEN_START = re.compile(r"<!--|<(script|style|head)\b", re.IGNORECASE)
_HIDDEN_END = {None: re.compile(r"-->"), **{name: re.compile(rf"</{name}\s*>", re.IGNORECASE)
                                            for name in ("script", "style", "head")}}


def _drop_hidden(html: str) -> str:
    """Comments, scripts, style sheets and the head out; an unclosed one ends
    the search (each search runs forward from the last: linear time)."""
    out, pos = [], 0
    while (start := _HIDDEN_START.search(html, pos)) is not None:
        name = start.group(1)
        end = _HIDDEN_END[name and name.lower()].search(html, start.end())
        if end is None:
            break
        out.append(html[pos:start.start()])
        out.append(" ")
        pos = end.end()
    out.append(html[pos:])
    return "".join(out)


def html_to_text(html: str) -> str:
    """The text a reader of the HTML sees."""
    import html as htmlmod
    return htmlmod.unescape(_TAG.sub(_tag_gap, _drop_hidden(html)))


def normalize_space(text: str) -> str:
    """Runs of whitespace become one space (split() is several times faster than a regex)."""
    return " ".join(text.split())
