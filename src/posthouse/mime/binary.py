"""Binary MIME parts made safe for IMAP's ordinary literals.

A message APPENDed as a ~{n} literal (RFC 3516) may carry parts whose bytes
include NUL, which no IMAP string or {n} literal may hold (RFC 9051 CHAR8).
RFC 3516 lets the server store such content in a content-transfer-encoded
form: each leaf part with a NUL is stored base64-encoded, with its
Content-Transfer-Encoding header saying so. One stored form then serves
everything alike: BODY[1] and BODY[] are plain literals, BODYSTRUCTURE says
"BASE64" with the encoded size, RFC822.SIZE counts the stored bytes, and
BINARY[1] decodes back to the exact octets the client sent.
"""
from __future__ import annotations

import base64

from .structure import Part, parse_part

# Parts already in a 7-bit encoding are left alone: a NUL there is garbage
# the decoder drops, and encoding them twice would change their meaning.
_ENCODED = ("base64", "quoted-printable")


def encode_nul_parts(raw: bytes) -> bytes:
    """raw with each leaf part whose body holds a NUL re-encoded as base64."""
    if b"\x00" not in raw:
        return raw
    leaves: list[Part] = []
    _collect_leaves(parse_part(raw, 0, len(raw)), leaves)
    out = raw
    # From the end backwards, so the offsets of the parts still to do stay valid.
    for part in sorted(leaves, key=lambda p: p.hstart, reverse=True):
        if b"\x00" not in raw[part.bstart:part.end] or part.encoding in _ENCODED:
            continue
        header = _with_base64_cte(raw[part.hstart:part.bstart])
        out = out[:part.hstart] + header + _base64_lines(raw[part.bstart:part.end]) + out[part.end:]
    return out


def _collect_leaves(part: Part, into: list[Part]) -> None:
    if part.children is not None:
        for child in part.children:
            _collect_leaves(child, into)
    elif part.message is not None:
        _collect_leaves(part.message, into)
    else:
        into.append(part)


def _with_base64_cte(block: bytes) -> bytes:
    """The header block with its Content-Transfer-Encoding field(s) replaced by base64."""
    lines = block.splitlines(keepends=True)
    kept: list[bytes] = []
    dropping = False
    blank = b""
    for line in lines:
        if line in (b"\r\n", b"\n"):
            blank = line
            break
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        dropping = name == b"content-transfer-encoding"
        if not dropping:
            if not line.endswith(b"\n"):
                line += b"\r\n"    # a header block that ended without a line break
            kept.append(line)
    kept.append(b"Content-Transfer-Encoding: base64\r\n")
    return b"".join(kept) + (blank or b"\r\n")


def _base64_lines(data: bytes) -> bytes:
    """base64 in lines of 76 characters (RFC 2045 6.8), CRLF between them."""
    text = base64.b64encode(data)
    return b"\r\n".join(text[i:i + 76] for i in range(0, len(text), 76))
