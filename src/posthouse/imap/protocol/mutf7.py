"""Modified UTF-7 mailbox names (RFC 3501 section 5.1.3), for IMAP4rev1 clients."""
from __future__ import annotations

import base64


def encode(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush():
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


class MUTF7Error(ValueError):
    pass


def decode(name: str) -> str:
    if "&" not in name and name.isascii() and name.isprintable():
        return name     # the common case: printable ASCII only, nothing to decode
    out: list[str] = []
    i, n = 0, len(name)
    while i < n:
        ch = name[i]
        if ord(ch) > 0x7E or ord(ch) < 0x20:
            raise MUTF7Error("mailbox name is not modified UTF-7")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i)
        if end < 0:
            raise MUTF7Error("unterminated &-sequence in mailbox name")
        chunk = name[i + 1:end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                text = base64.b64decode(b64, validate=True).decode("utf-16-be")
            except Exception:
                raise MUTF7Error("invalid modified UTF-7 in mailbox name") from None
            # Printable ASCII must not be base64-encoded; a strict decoder refuses it.
            if any(0x20 <= ord(c) <= 0x7E for c in text):
                raise MUTF7Error("needlessly encoded ASCII in mailbox name")
            out.append(text)
        i = end + 1
    return "".join(out)
