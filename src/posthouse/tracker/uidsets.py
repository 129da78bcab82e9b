"""Sets of UIDs as IMAP sequence-set text ("1:40,42"): how the known UIDs of
a folder are stored, and how a batch is asked for."""
from __future__ import annotations


def to_text(uids) -> str:
    """Ascending ranges: {1, 2, 3, 7} -> "1:3,7"; empty -> ""."""
    out: list[str] = []
    start = prev = None
    for uid in sorted(uids):
        if prev is not None and uid == prev + 1:
            prev = uid
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    if start is not None:
        out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)


def from_text(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, (text or "").split(",")):
        lo, _, hi = part.partition(":")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out
