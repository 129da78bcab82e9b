"""The base subject of RFC 5256 section 2.1, for SORT SUBJECT and THREAD."""
from __future__ import annotations

import re

_WSP_RUN = re.compile(r"[ \t\r\n]+")
_TRAILER = re.compile(r"(?:\(fwd\)|[ \t])$", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader: *subj-blob subj-refwd, or a single WSP.
_LEADER = re.compile(rf"^(?:(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:|[ \t])", re.IGNORECASE)
_BLOB_PREFIX = re.compile(rf"^{_BLOB}")


def base_subject(decoded: str) -> tuple[str, bool]:
    """(base subject, whether the subject looked like a reply or forward).

    decoded: the Subject with encoded-words already decoded.
    """
    text = _WSP_RUN.sub(" ", decoded)
    is_reply = False
    while True:
        # (2) trailing "(fwd)" and whitespace
        while True:
            stripped = _TRAILER.sub("", text)
            if stripped == text:
                break
            is_reply = is_reply or text.lower().endswith("(fwd)")
            text = stripped
        # (3)-(5) leaders and blobs, until nothing more comes off
        while True:
            changed = False
            m = _LEADER.match(text)
            while m and m.end():
                if m.group(0).rstrip().endswith(":"):
                    is_reply = True
                text = text[m.end():]
                changed = True
                m = _LEADER.match(text)
            m = _BLOB_PREFIX.match(text)
            if m and text[m.end():].strip():
                text = text[m.end():]
                changed = True
            if not changed:
                break
        # (6) "[fwd: ... ]" wrapper
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            is_reply = True
            continue
        return text, is_reply
