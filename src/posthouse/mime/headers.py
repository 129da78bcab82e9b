"""Header blocks: split into fields, unfold, decode RFC 2047 for search."""
from __future__ import annotations

import email.header
import re


def header_end(raw: bytes, start: int, end: int) -> int:
    """Offset just past the blank line that ends the header block at raw[start:end].

    A message with no blank line is all header.
    """
    # Bounded by end: an empty part must not reach into the delimiter after it.
    if raw.startswith(b"\r\n", start, end):
        return start + 2
    if raw.startswith(b"\n", start, end):
        return start + 1
    i = raw.find(b"\n\r\n", start, end)
    j = raw.find(b"\n\n", start, end)
    candidates = [p + 3 for p in (i,) if p >= 0] + [p + 2 for p in (j,) if p >= 0]
    return min(candidates) if candidates else end


def split_fields(block: bytes) -> list[tuple[str, bytes]]:
    """(lower-cased name, raw unfolded value) for each field, in order."""
    fields: list[tuple[str, bytes]] = []
    name = None
    value: list[bytes] = []
    for line in block.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t") and name is not None:
            value.append(line)
            continue
        if name is not None:
            fields.append((name, b"".join(value)))
            name = None
        colon = line.find(b":")
        if colon <= 0:
            continue  # blank line or garbage: not a field
        key = line[:colon].strip()
        if not key or any(c <= 0x20 or c >= 0x7F for c in key):
            continue
        name = key.decode("ascii").lower()
        value = [line[colon + 1:]]
    if name is not None:
        fields.append((name, b"".join(value)))
    return fields


def read_quoted(text: str, i: int) -> tuple[str, int]:
    """The quoted-string opening at text[i] == '"': (unescaped value, index past its end)."""
    i += 1
    n = len(text)
    buf = []
    while i < n and text[i] != '"':
        if text[i] == "\\" and i + 1 < n:
            i += 1
        buf.append(text[i])
        i += 1
    return "".join(buf), i + 1


def raw_text(value: bytes) -> str:
    """A raw header value as text (UTF-8 per RFC 6532, else Latin-1)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; leave anything undecodable as it was."""
    if "=?" not in value or not _ENCODED_WORD.search(value):
        return value
    try:
        parts = email.header.decode_header(value)
    except Exception:
        return value
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            try:
                chunk = chunk.decode(charset or "ascii", "replace")
            except LookupError:
                chunk = chunk.decode("utf-8", "replace")
        out.append(chunk)
    return "".join(out)


class HeaderBlock:
    """Fields of one header block with first-value lookup."""
    __slots__ = ("fields", "_first")

    def __init__(self, block: bytes):
        self.fields = split_fields(block)
        self._first: dict | None = None

    def first(self, name: str) -> bytes | None:
        if self._first is None:
            # Built on first use; reversed, so the first of repeated fields wins.
            self._first = dict(reversed(self.fields))
        return self._first.get(name)

    def text(self, name: str) -> str | None:
        v = self.first(name)
        return None if v is None else raw_text(v).strip()
