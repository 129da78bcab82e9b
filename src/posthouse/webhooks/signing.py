"""The signature on each delivery (documented in the README, "Webhooks"):

    X-Posthouse-Timestamp: 1733356800            (Unix seconds)
    X-Posthouse-Signature: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + raw body))

The timestamp is signed with the body so that a captured delivery can't be
replayed later under a new time; a receiver checks the signature in constant
time and refuses timestamps too far from its clock."""
from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "sha256="


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return PREFIX + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str, *, now: float | None = None,
           tolerance: float = 300.0) -> bool:
    """What a receiver does: the signature matches, and the timestamp is recent."""
    import time
    try:
        when = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - when) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, when, body), header or "")
