"""Inbound SMTP (RFC 5321): mail from the Internet for the domains we serve.

Never an open relay: a recipient outside `domains` gets 550 5.7.1 (this
port takes no logins; relaying is submission's job, for authenticated users).
SIZE is advertised and enforced, and 8BITMIME, SMTPUTF8, PIPELINING and
STARTTLS are offered. SMTP has one reply for the whole message, so a
recipient that can't take it after DATA can't be refused alone: quotas are
checked for everyone before anything is stored (a full mailbox gets 452,
and the sender's retry, with SIZE=, is refused at that RCPT only); and if a
store failure hits some recipients after others got the message, the reply
is 451, so the sender retries: a duplicate for some is better than a loss.
"""
from __future__ import annotations

import logging

from aiosmtpd.smtp import SMTP

from .deliver import mailbox_full, new_ident, trace_headers
from .esmtp import DeliveryHandler, Listeners, Tuned, Refusal, peer_address, received_protocol
from .recipients import over_quota

log = logging.getLogger("posthouse.smtp")


class SmtpHandler(DeliveryHandler):
    async def deliver_locally(self, raw: bytes, recipients, mail_from: str, ident: str) -> str:
        """Deliver to local recipients with SMTP's one reply: quotas checked for
        everyone first; on a partial failure, 451 (a retry may duplicate for
        some, which beats losing it for others)."""
        full = [r for r in recipients if await over_quota(self.service, r, len(raw))]
        if full:
            if len(full) == len(recipients):
                return mailbox_full(full[0], self.config.quota_full_tempfail).reply()
            return "452 4.2.2 A recipient's mailbox is full; try again later"
        results = await self.deliverer.deliver(raw, recipients, mail_from, ident=ident)
        failed = [r for r in results if not r.ok]
        if not failed:
            return f"250 2.0.0 Delivered as {ident}"
        for r in failed:
            log.warning("smtp %s: delivery to %s failed: %s", ident, r.recipient.address, r.reply())
        if len(failed) == len(results):
            return failed[0].reply()
        return "451 4.3.0 Delivery failed for some recipients; try again later"

    async def accept_recipient(self, session, envelope, address):
        if not self.config.serves(address):
            raise Refusal(f"550 5.7.1 <{address}>: relay access denied")
        return await self.local_recipient(envelope, address)

    async def handle_DATA(self, server, session, envelope):
        recipients = getattr(envelope, "recipients", [])
        if not recipients:
            return "503 5.5.1 No valid recipients"
        ident = new_ident()
        raw = trace_headers(envelope.mail_from, session.host_name, peer_address(session), server.hostname,
                            received_protocol(server, session), ident) + envelope.original_content
        return await self.deliver_locally(raw, recipients, envelope.mail_from, ident)


class _SMTP(Tuned, SMTP):
    pass


class SmtpServer:
    """Inbound SMTP on smtp_host:smtp_port (25 in production), STARTTLS offered."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.handler = SmtpHandler(ctx.service, ctx.config, ctx.deliverer)
        self.listeners = Listeners()

    def _protocol(self):
        config = self.ctx.config
        # Lines past RFC 5321's 1,000 octets are taken (real mail has them), up to
        # the IMAP line limit. No AUTH here: every mechanism is left out.
        return _SMTP(self.handler, config.max_line, limits=self.ctx.limits, login_timeout=config.login_timeout,
                     line_timeout=config.line_timeout, data_size_limit=config.max_message_size,
                     enable_SMTPUTF8=True, decode_data=False, hostname=config.hostname or None,
                     ident="Posthouse ESMTP", timeout=config.smtp_timeout, tls_context=self.ctx.tls_context,
                     auth_exclude_mechanism=["LOGIN", "PLAIN"])

    async def start(self) -> None:
        await self.listeners.tcp(self._protocol, self.ctx.config.smtp_host, self.ctx.config.smtp_port)

    @property
    def ports(self) -> list[int]:
        return self.listeners.ports()

    async def close(self) -> None:
        await self.listeners.close()
