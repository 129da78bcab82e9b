"""SASL pieces every protocol shares: base64 responses and PLAIN (RFC 4616)."""
from __future__ import annotations

import base64
import binascii


class SaslError(ValueError):
    """A malformed SASL response; the text is safe to show the client."""


def decode_response(data: bytes) -> bytes:
    """A client's base64 response; "=" is the empty one (RFC 4959, 5034)."""
    data = data.strip()
    if data == b"=":
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError("Invalid base64") from None


def parse_plain(data: bytes) -> tuple[str, str]:
    """authzid NUL authcid NUL password -> (authcid, password). Acting as
    another user (an authzid that differs) is not supported."""
    authzid, authcid, password = parse_plain_authz(data)
    if authzid and authzid != authcid:
        raise SaslError("Proxy authorization is not supported")
    return authcid, password


def parse_plain_authz(data: bytes) -> tuple[str, str, str]:
    """authzid NUL authcid NUL password -> (authzid, authcid, password); an
    authzid that is empty or equals authcid comes back as ""."""
    pieces = data.split(b"\x00")
    if len(pieces) != 3:
        raise SaslError("Invalid PLAIN response")
    authzid, authcid, password = (p.decode("utf-8", "replace") for p in pieces)
    return ("" if authzid == authcid else authzid), authcid, password
