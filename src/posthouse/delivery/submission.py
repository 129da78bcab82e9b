"""Submission (RFC 6409): users' mail clients send mail here.

AUTH (PLAIN, LOGIN) is required before MAIL, over TLS (STARTTLS on the
submission port, or the implicit-TLS port), or in the clear from loopback
peers under the default `plaintext_auth`. A user may send as their own
addresses only: their name, or name[+detail]@ one of `domains`. Mail to
local users is delivered at once (Sieve and quotas apply); mail for other
domains goes into the durable outbound queue and on to the smarthost; with
no smarthost configured it is refused at RCPT. With `submission_save_sent`
a copy is filed in the sender's Sent mailbox (off by default: most clients
APPEND their own copy).
"""
from __future__ import annotations

import ipaddress
import logging
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, Session

from ..logfmt import LoginLog, log_event, quiet_aiosmtpd
from ..auth.sasl import SaslError, decode_response, parse_plain_authz
from ..auth.service_identity import SERVICE_NAME
from ..store.api import DiskFull, StoreError
from .deliver import new_ident, trace_headers
from .esmtp import STORAGE_FULL, Listeners, Tuned, Refusal, over_tls, peer_address, received_protocol
from .from_header import FromRefused, check as check_from
from .smtp import SmtpHandler

log = logging.getLogger("posthouse.submission")


class _NoAuthTlsWarning(logging.Filter):
    """aiosmtpd logs, on every connection, that AUTH is allowed without TLS;
    the handler enforces our own rule (see _plaintext_allowed), so drop that one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "auth_require_tls == False" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_NoAuthTlsWarning())
quiet_aiosmtpd()


class _Session(Session):
    """aiosmtpd's session, whose login_data is a plain attribute: aiosmtpd sets
    that deprecated field itself after every successful AUTH, and its setter
    logs a deprecation WARNING each time (nothing for anyone to act on)."""
    login_data = None

    def __init__(self, loop):
        super().__init__(loop)
        self.login_log: LoginLog | None = None


def _peer_text(session) -> str:
    """"host:port" as the other protocols' log lines have it."""
    peer = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else peer[0]
        return f"{host}:{peer[1]}"
    return peer_address(session)


class SubmissionHandler(SmtpHandler):
    def __init__(self, service, config, authenticator, queue, deliverer=None):
        super().__init__(service, config, deliverer)
        self.authenticator = authenticator
        self.queue = queue

    # -- login ----------------------------------------------------------------------
    def _plaintext_allowed(self, server, session) -> bool:
        mode = self.config.plaintext_auth
        if over_tls(server) or mode == "always":
            return True
        try:
            return mode == "loopback" and ipaddress.ip_address(peer_address(session)).is_loopback
        except ValueError:
            return False

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        if not self._plaintext_allowed(server, session):
            responses = [r for r in responses if not r.startswith("250-AUTH")]
        return responses

    async def _login(self, server, name: str, password: str, authzid: str = "") -> AuthResult:
        if not self._plaintext_allowed(server, server.session):
            await server.push("538 5.7.11 Encryption required; use STARTTLS")
            return AuthResult(success=False, handled=True)
        session = server.session
        if authzid:     # only the service identity may act as a user (auth/service_identity.py)
            user = await self.authenticator.check_service(authzid, name, password, peer_address(session))
        else:
            user = await self.authenticator.check(name, password, peer_address(session))
        login_log = getattr(session, "login_log", None) or LoginLog("submission", _peer_text(session))
        session.login_log = login_log
        if user is None:
            login_log.failed(name, over_tls(server))
            return AuthResult(success=False, handled=False)
        login_log.login(user.name, over_tls(server))
        return AuthResult(success=True, auth_data=user)

    async def auth_PLAIN(self, server, args) -> AuthResult:
        if len(args) == 1:
            response = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(response, bytes):
                return AuthResult(success=False, handled=True)
            data = response
        else:
            try:
                data = decode_response(args[1].encode())
            except SaslError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        try:
            authzid, name, password = parse_plain_authz(data)
            if authzid and name != SERVICE_NAME:
                raise SaslError("Proxy authorization is not supported")
        except SaslError as e:
            await server.push(f"501 5.5.2 {e}")
            return AuthResult(success=False, handled=True)
        return await self._login(server, name, password, authzid)

    async def auth_LOGIN(self, server, args) -> AuthResult:
        if len(args) == 2:
            try:
                name = decode_response(args[1].encode())
            except SaslError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            name = await server.challenge_auth("Username:")
        if not isinstance(name, bytes):
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth("Password:")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._login(server, name.decode("utf-8", "replace"), password.decode("utf-8", "replace"))

    # -- the envelope ---------------------------------------------------------------
    def owns(self, user, address: str) -> bool:
        """Whether user may send as address (their name, or name[+detail]@ a served domain)."""
        if address.lower() == user.name.lower():
            return True
        local = address.rpartition("@")[0]
        delimiter = self.config.recipient_delimiter
        base = local.partition(delimiter)[0] if delimiter else local
        return self.config.serves(address) and base.lower() == user.name.lower()

    def own_address(self, user, mail_from: str) -> str:
        """The address a rewritten From: gets: the envelope sender (checked to
        be the user's), else the user's name as an address in our first domain."""
        if mail_from:
            return mail_from
        if "@" in user.name or not self.config.domains:
            return user.name
        return f"{user.name}@{self.config.domains[0]}"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        user = session.auth_data
        if address and not self.owns(user, address):
            return f"553 5.7.1 <{address}>: not an address of {user.name}"
        return await super().handle_MAIL(server, session, envelope, address, mail_options)

    async def accept_recipient(self, session, envelope, address):
        if self.config.serves(address):
            return await self.local_recipient(envelope, address)
        if "@" not in address:
            raise Refusal(f"550 5.1.2 <{address}>: an address needs a domain")
        if not self.queue.enabled:
            raise Refusal(f"550 5.7.1 <{address}>: no relay is configured for other domains")
        return None

    async def handle_DATA(self, server, session, envelope):
        user = session.auth_data
        local = getattr(envelope, "recipients", [])
        remote = getattr(envelope, "remote", [])
        if not local and not remote:
            return "503 5.5.1 No valid recipients"
        try:
            content = check_from(envelope.original_content, lambda a: self.owns(user, a),
                                 self.own_address(user, envelope.mail_from), self.config.submission_from_policy)
        except FromRefused as e:
            log.info("submission from %s refused: %s", user.name, e.reply)
            return e.reply
        ident = new_ident()
        raw = trace_headers(envelope.mail_from, session.host_name, peer_address(session), server.hostname,
                            received_protocol(server, session, authenticated=True), ident) + content
        if remote:
            if not self.service.space.room_for(len(raw)):
                return STORAGE_FULL
            try:
                await self.queue.enqueue(user.id, envelope.mail_from or "", remote, raw)
            except DiskFull:
                return STORAGE_FULL
            except Exception:
                log.exception("submission %s: could not queue the message", ident)
                return "451 4.3.0 Could not queue the message; try again later"
        reply = f"250 2.0.0 Queued as {ident}"
        if local:
            reply = await self.deliver_locally(raw, local, envelope.mail_from, ident)
        if reply.startswith("250") and self.config.submission_save_sent:
            await self._save_sent(user, raw)
        log_event(log, logging.INFO, "submission",
                  {"id": ident, "user": user.name, "local": len(local), "queued": len(remote), "reply": reply})
        return reply

    async def _save_sent(self, user, raw: bytes) -> None:
        """A copy in the user's \\Sent mailbox (the one with that special use, else "Sent")."""
        try:
            boxes = await self.service.call("list_mailboxes", user.id)
            sent = next((m for m in boxes if m.special_use == "\\Sent"), None) or next(
                (m for m in boxes if m.name == "Sent"), None)
            if sent is None:
                log.warning("submission: %s has no Sent mailbox; no copy kept", user.name)
                return
            await self.service.append(sent.id, [(raw, frozenset({"\\Seen"}), time.time())])
        except StoreError as e:
            log.warning("submission: no copy in Sent for %s: %s", user.name, e)


class _Submission(Tuned, SMTP):
    protocol_name = "Submission"

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def connection_lost(self, exc) -> None:
        login_log = getattr(self.session, "login_log", None)
        if login_log is not None:
            login_log.logout()
        super().connection_lost(exc)


class SubmissionServer:
    """Submission with STARTTLS (587 in production) and implicit TLS (465)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.handler = SubmissionHandler(ctx.service, ctx.config, ctx.authenticator, ctx.queue, ctx.deliverer)
        self.listeners = Listeners("Submission")

    def _protocol(self):
        config = self.ctx.config
        with warnings.catch_warnings():
            # aiosmtpd warns of AUTH without TLS: the handler enforces our own
            # rule (TLS, or loopback under plaintext_auth = "loopback").
            warnings.simplefilter("ignore", UserWarning)
            return self._make(config)

    def _make(self, config):
        return _Submission(self.handler, config.max_line, limits=self.ctx.limits, login=True,
                           login_timeout=config.login_timeout, line_timeout=config.line_timeout,
                           data_size_limit=config.max_message_size,
                           enable_SMTPUTF8=True, decode_data=False, hostname=config.hostname or None,
                           ident="Posthouse ESMTP submission", timeout=config.smtp_timeout,
                           tls_context=self.ctx.tls_context, auth_required=True, auth_require_tls=False)

    async def start(self) -> None:
        config = self.ctx.config
        await self.listeners.tcp(self._protocol, config.submission_host, config.submission_port)
        if self.ctx.tls_context is not None:
            await self.listeners.tcp(self._protocol, config.submission_host, config.submission_tls_port,
                                     ssl=self.ctx.tls_context)

    @property
    def ports(self) -> list[int]:
        return self.listeners.ports()

    async def close(self) -> None:
        await self.listeners.close()
