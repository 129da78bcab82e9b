"""Password hashing with scrypt (memory-hard; in the standard library).

Hashing costs ~16 MiB and tens of milliseconds by design, so callers on the
event loop must run it in a thread (see auth/authenticator.py).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

# n=2**14, r=8 -> 16 MiB per hash; p=1.
_LOG_N, _R, _P = 14, 8, 1
_PREFIX = "$scrypt$"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=1 << _LOG_N, r=_R, p=_P,
                            maxmem=64 * 1024 * 1024, dklen=32)
    return f"{_PREFIX}ln={_LOG_N},r={_R},p={_P}${_b64(salt)}${_b64(digest)}"


def verify_password(stored: str, password: str) -> bool:
    try:
        if not stored.startswith(_PREFIX):
            return False
        params, salt, digest = stored[len(_PREFIX):].split("$")
        opts = dict(kv.split("=") for kv in params.split(","))
        log_n, r, p = int(opts["ln"]), int(opts["r"]), int(opts["p"])
        if not (1 <= log_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(password.encode("utf-8", "surrogateescape"), salt=_unb64(salt),
                                n=1 << log_n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=len(expected))
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(actual, expected)


# Verified against when the user does not exist, so timing does not reveal accounts.
DUMMY_HASH = hash_password(os.urandom(8).hex())
