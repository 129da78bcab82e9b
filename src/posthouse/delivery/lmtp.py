"""LMTP (RFC 2033): how an MTA such as Postfix hands mail to Posthouse.

RCPT TO is answered at once (esmtp.DeliveryHandler), and after DATA each
accepted recipient gets its own reply, in RCPT order, once the message is
durably in their mailbox.
"""
from __future__ import annotations

import logging

from aiosmtpd.lmtp import LMTP

from .deliver import new_ident, trace_headers
from .esmtp import DeliveryHandler, Listeners, Tuned, one_reply_per_recipient, peer_address

log = logging.getLogger("posthouse.lmtp")


class LmtpHandler(DeliveryHandler):
    async def handle_DATA(self, server, session, envelope):
        recipients = getattr(envelope, "recipients", [])
        ident = new_ident()
        raw = trace_headers(envelope.mail_from, session.host_name, peer_address(session), server.hostname,
                            "LMTP", ident) + envelope.original_content
        results = await self.deliverer.deliver(raw, recipients, envelope.mail_from, ident=ident)
        # One reply per accepted recipient, in order (RFC 2033 4.2): several lines in one push.
        return "\r\n".join(r.reply() for r in results) if results else "503 5.5.1 No valid recipients"


class _LMTP(Tuned, LMTP):
    protocol_name = "LMTP"

    async def push(self, status):
        return await super().push(one_reply_per_recipient(self, status))


class LmtpServer:
    """LMTP on a TCP port (loopback by default) and/or a unix socket."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.handler = LmtpHandler(ctx.service, ctx.config, ctx.deliverer)
        self.listeners = Listeners()

    def _protocol(self):
        config = self.ctx.config
        # The MTA has accepted the message already: take lines longer than
        # RFC 5321's 1,000 octets (real mail has them), up to the IMAP line limit.
        return _LMTP(self.handler, config.max_line, limits=self.ctx.limits, login_timeout=config.login_timeout,
                     line_timeout=config.line_timeout, data_size_limit=config.max_message_size,
                     enable_SMTPUTF8=True, decode_data=False, hostname=config.hostname or None,
                     ident="Posthouse LMTP", timeout=config.lmtp_timeout)

    async def start(self) -> None:
        config = self.ctx.config
        await self.listeners.tcp(self._protocol, config.lmtp_host, config.lmtp_port)
        if config.lmtp_socket:
            await self.listeners.unix(self._protocol, config.lmtp_socket)

    @property
    def ports(self) -> list[int]:
        return self.listeners.ports()

    async def close(self) -> None:
        await self.listeners.close()
