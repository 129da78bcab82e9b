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


_TAG = re.compile(r"<[^>]*>")


def html_to_text(html: str) -> str:
    import html as htmlmod
    html = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    return htmlmod.unescape(_TAG.sub(" ", html))


def normalize_space(text: str) -> str:
    """Runs of whitespace become one space (split() is several times faster than a regex)."""
    return " ".join(text.split())
