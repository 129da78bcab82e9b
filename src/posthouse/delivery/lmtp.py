"""LMTP (RFC 2033): how an MTA such as Postfix hands mail to Posthouse.

aiosmtpd speaks the protocol; this module decides. RCPT TO is answered at
once (an unknown user gets 550 there), and after DATA each accepted
recipient gets its own reply, in RCPT order, once the message is durably in
their INBOX.
"""
from __future__ import annotations

import asyncio
import logging
import os

from aiosmtpd.lmtp import LMTP

from .deliver import Deliverer, mailbox_full, new_ident, trace_headers
from .recipients import over_quota, resolve

log = logging.getLogger("posthouse.lmtp")

MAX_RECIPIENTS = 1000


class LmtpHandler:
    def __init__(self, service, config):
        self.service = service
        self.config = config
        self.deliverer = Deliverer(service, config)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads pipelined commands in turn; say so (RFC 2920), as MTAs
        # then send MAIL, RCPT and DATA in one packet.
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.recipients = []
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        recipients = getattr(envelope, "recipients", None)
        if recipients is None:
            recipients = envelope.recipients = []
        if len(recipients) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        try:
            recipient = await resolve(self.service, address, self.config.recipient_delimiter)
        except Exception:
            log.exception("recipient lookup for %r failed", address)
            return "451 4.3.0 Temporary lookup failure"
        if recipient is None:
            return f"550 5.1.1 <{address}>: no such user here"
        if await over_quota(self.service, recipient, _declared_size(envelope.mail_options)):
            return mailbox_full(recipient, self.config.quota_full_tempfail).reply()
        recipients.append(recipient)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server, session, envelope):
        recipients = getattr(envelope, "recipients", [])
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "local")
        raw = trace_headers(envelope.mail_from, session.host_name, peer, server.hostname, "LMTP",
                            new_ident()) + envelope.original_content
        results = await self.deliverer.deliver(raw, recipients)
        lines = [r.reply() for r in results]
        # One reply per accepted recipient, in order (RFC 2033 4.2): several lines in one push.
        return "\r\n".join(lines) if lines else "503 5.5.1 No valid recipients"


def _declared_size(mail_options) -> int:
    """MAIL FROM's SIZE= (RFC 1870), or 0."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


# aiosmtpd's refusals of an oversized message or line, sent once after the
# data: LMTP owes a reply per accepted recipient (RFC 2033 4.2), or the
# client waits for the rest forever.
_DATA_REFUSALS = ("500 Line too long (see RFC5321", "552 Error: Too much mail data")


class _LMTP(LMTP):
    def __init__(self, handler, line_length_limit: int, **kwargs):
        self.line_length_limit = line_length_limit      # before the stream reader is made
        super().__init__(handler, **kwargs)

    async def push(self, status):
        if isinstance(status, str) and status.startswith(_DATA_REFUSALS) and self.envelope is not None:
            status = "\r\n".join([status] * max(1, len(self.envelope.rcpt_tos)))
        return await super().push(status)


class LmtpServer:
    """LMTP on a TCP port (loopback by default) and/or a unix socket."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.handler = LmtpHandler(ctx.service, ctx.config)
        self._servers: list[asyncio.AbstractServer] = []

    def _protocol(self):
        config = self.ctx.config
        # The MTA has accepted the message already: take lines longer than
        # RFC 5321's 1,000 octets (real mail has them), up to the IMAP line limit.
        return _LMTP(self.handler, max(config.max_line, 1001), data_size_limit=config.max_message_size,
                     enable_SMTPUTF8=True, decode_data=False, hostname=config.hostname or None,
                     ident="Posthouse LMTP", timeout=config.lmtp_timeout)

    async def start(self) -> None:
        config = self.ctx.config
        loop = asyncio.get_running_loop()
        if config.lmtp_port is not None:
            self._servers.append(await loop.create_server(self._protocol, config.lmtp_host, config.lmtp_port))
        if config.lmtp_socket:
            if os.path.exists(config.lmtp_socket):
                os.unlink(config.lmtp_socket)       # left by an earlier run
            self._servers.append(await loop.create_unix_server(self._protocol, config.lmtp_socket))

    @property
    def ports(self) -> list[int]:
        out = []
        for srv in self._servers:
            for sock in srv.sockets:
                name = sock.getsockname()
                if isinstance(name, tuple):
                    out.append(name[1])
        return out

    async def close(self) -> None:
        for srv in self._servers:
            srv.close()
        for srv in self._servers:
            await srv.wait_closed()
        self._servers.clear()
