"""Content-transfer-encoding and charset decoding (BINARY fetch, search text)."""
from __future__ import annotations

import base64
import binascii
import quopri
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
        return quopri.decodestring(data)
    raise UnknownEncoding(encoding)


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
