"""STARTTLS, LOGIN, AUTHENTICATE (PLAIN, LOGIN; SASL-IR; PLAIN with an
authorization identity for the service identity only)."""
from __future__ import annotations

import base64

from ...logfmt import LoginLog
from ...auth.service_identity import SERVICE_NAME
from ...auth.sasl import SaslError, decode_response, parse_plain_authz
from ..capabilities import plaintext_allowed
from ..errors import CommandError, bad, no
from ..protocol.reader import RawLine
from ..session import ANSWERED, AUTH


async def starttls(session, cmd):
    session.args(cmd).end()
    if session.ctx.tls_context is None:
        raise no("TLS is not configured")
    if session.conn.tls:
        raise bad("TLS is already active")
    session.tagged(cmd.tag, "OK", "Begin TLS negotiation now")
    await session.conn.drain()
    await session.conn.start_tls(session.ctx.tls_context)
    return ANSWERED


async def _finish_login(session, user, name: str = ""):
    login_log = getattr(session, "login_log", None) or LoginLog("imap", session.conn.peer)
    session.login_log = login_log       # its logout line comes at the session's end (server._serve)
    if user is None:
        login_log.failed(name, session.conn.tls)
        session.auth_failures += 1
        if session.auth_failures >= session.ctx.config.max_auth_failures:
            session.bye_after = "Too many failed logins"
        raise no("Authentication failed.", "AUTHENTICATIONFAILED")
    session.user = user
    session.state = AUTH
    login_log.login(user.name, session.conn.tls)
    caps = " ".join(session.capability_list())
    return f"CAPABILITY {caps}", "Logged in"


def _require_plaintext(session):
    if not plaintext_allowed(session):
        raise no("Plaintext authentication is disabled here; use STARTTLS first", "PRIVACYREQUIRED")


async def login(session, cmd):
    args = session.args(cmd)
    username = args.astring("user name")
    password = args.astring("password")
    args.end()
    _require_plaintext(session)
    user = await session.ctx.authenticator.check(username, password, session.conn.peer)
    return await _finish_login(session, user, username)


async def _sasl_read(session, challenge: bytes) -> bytes:
    session.conn.write(b"+ " + base64.b64encode(challenge) + b"\r\n")
    await session.conn.drain()
    session.conn.reader.raw_mode = True
    event = await session.conn.next_event()
    if not isinstance(event, RawLine):
        raise CommandError("BAD", "Authentication exchange broken")
    line = event.line.strip()
    if line == b"*":
        raise bad("Authentication cancelled")
    return _b64(line)


def _b64(data: bytes) -> bytes:
    try:
        return decode_response(data)
    except SaslError as e:
        raise bad(str(e)) from None


async def authenticate(session, cmd):
    args = session.args(cmd)
    mechanism = args.atom("mechanism").upper()
    initial = args.astring_bytes() if args.more() else None
    args.end()
    if mechanism not in ("PLAIN", "LOGIN"):
        raise no("Unsupported authentication mechanism")
    _require_plaintext(session)
    if mechanism == "PLAIN":
        data = _b64(initial) if initial is not None else await _sasl_read(session, b"")
        try:
            authzid, authcid, password = parse_plain_authz(data)
        except SaslError as e:
            raise bad(str(e)) from None
        if authzid:
            if authcid != SERVICE_NAME:
                raise no("Proxy authorization is not supported", "AUTHORIZATIONFAILED")
            user = await session.ctx.authenticator.check_service(authzid, authcid, password, session.conn.peer)
            return await _finish_login(session, user, authcid)
    else:
        authcid = (_b64(initial) if initial is not None else await _sasl_read(session, b"Username:")).decode(
            "utf-8", "replace")
        password = (await _sasl_read(session, b"Password:")).decode("utf-8", "replace")
    user = await session.ctx.authenticator.check(authcid, password, session.conn.peer)
    return await _finish_login(session, user, authcid)
