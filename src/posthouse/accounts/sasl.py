"""SASL initial responses the client sends: PLAIN (RFC 4616, with an
authorization identity), XOAUTH2 (Google's and Microsoft's format) and
OAUTHBEARER (RFC 7628). Raw bytes; the IMAP client base64-encodes them."""
from __future__ import annotations

import base64
import json

_SOH = "\x01"


def plain(authcid: str, password: str, authzid: str = "") -> bytes:
    """authzid NUL authcid NUL password."""
    for name, value in (("authzid", authzid), ("authcid", authcid), ("password", password)):
        if "\0" in value:
            raise ValueError(f"a SASL PLAIN {name} can't hold a NUL character")
    return f"{authzid}\0{authcid}\0{password}".encode("utf-8")


def xoauth2(user: str, access_token: str) -> bytes:
    """user=USER ^A auth=Bearer TOKEN ^A ^A."""
    _no_soh(user, access_token)
    return f"user={user}{_SOH}auth=Bearer {access_token}{_SOH}{_SOH}".encode("utf-8")


def _saslname(name: str) -> str:
    """RFC 5801 saslname: ',' and '=' escaped as =2C and =3D."""
    return name.replace("=", "=3D").replace(",", "=2C")


def oauthbearer(user: str, access_token: str, host: str | None = None, port: int | None = None) -> bytes:
    """RFC 7628 3.1: gs2 header "n,a=USER," then kvpairs host, port, auth,
    each ended by ^A, and a final ^A."""
    _no_soh(user, access_token, host or "")
    pairs = []
    if host:
        pairs.append(f"host={host}")
    if port:
        pairs.append(f"port={int(port)}")
    pairs.append(f"auth=Bearer {access_token}")
    return (f"n,a={_saslname(user)}," + _SOH + "".join(p + _SOH for p in pairs) + _SOH).encode("utf-8")


def oauth_error(challenge: bytes) -> dict:
    """The JSON error a server sends as a challenge when a bearer token is
    refused (RFC 7628 3.2.2; Google's XOAUTH2 too): {"status", "scope", ...};
    {} if it isn't one. `challenge` may be base64 or already decoded."""
    for data in (challenge, _b64(challenge)):
        try:
            value = json.loads(data)
        except (ValueError, TypeError):
            continue
        if isinstance(value, dict):
            return value
    return {}


def _b64(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return None


def _no_soh(*values: str) -> None:
    if any(_SOH in v for v in values):
        raise ValueError("a user name or token can't hold a ^A (0x01) character")
