"""What LMTP, inbound SMTP and submission share: aiosmtpd speaks the
protocol, a handler here decides about envelopes, and listeners run it.

The base handler resolves recipients at RCPT (an unknown user gets 550
there, a full mailbox 552) and leaves DATA to the protocol: LMTP answers per
recipient, SMTP once for the message.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time

from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError

from aiosmtpd.smtp import MISSING, SMTP, TLSSetupException, syntax

from ..limits import Admission
from ..net import LISTEN_BACKLOG, listen_tcp, tls_failed
from .data_reader import ConnectionLost, read_message
from .deliver import Deliverer, mailbox_full
from .recipients import Recipient, quota_exceeded, resolve

log = logging.getLogger("posthouse.delivery")

MAX_RECIPIENTS = 1000

# The common envelope address, <dot-atom> or <dot-atom@dot-atom> and maybe
# parameters: read with a regex. Anything else (quoted local parts, address
# literals, source routes, comments) goes to the email package's parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_PLAIN_ADDRESS = re.compile(rf"[ \t]*<({_DOT_ATOM}(?:@{_DOT_ATOM})?)>(?:[ \t]+(?![ \t(])(.*))?\Z", re.DOTALL)

# aiosmtpd's refusals of an oversized message or line, sent once after the data.
DATA_REFUSALS = ("500 Line too long (see RFC5321", "552 Error: Too much mail data")


# No room on the disk for more mail (store/space.py): RFC 5321's 452, RFC 3463's 4.3.1.
STORAGE_FULL = "452 4.3.1 Insufficient system storage, try again later"


class Refusal(Exception):
    """An RCPT answered with this reply instead of being accepted."""

    def __init__(self, reply: str):
        super().__init__(reply)
        self.reply = reply


def declared_size(mail_options) -> int:
    """MAIL FROM's SIZE= (RFC 1870), or 0."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


def over_tls(server) -> bool:
    """Whether the SMTP connection is encrypted (STARTTLS or an implicit-TLS port)."""
    transport = server.transport
    return transport is not None and transport.get_extra_info("sslcontext") is not None


def received_protocol(server, session, authenticated: bool = False) -> str:
    """RFC 3848's WITH keywords: SMTP, ESMTP, and S for TLS, A for a login."""
    if not session.extended_smtp:
        return "SMTP"
    return "ESMTP" + ("S" if over_tls(server) else "") + ("A" if authenticated else "")


def peer_text(session) -> str:
    peer = session.peer if session is not None else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer or "local")


def peer_address(session) -> str:
    return session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "local")


class DeliveryHandler:
    """aiosmtpd handler hooks for EHLO, MAIL and RCPT; subclasses add DATA."""

    def __init__(self, service, config, deliverer: Deliverer | None = None):
        self.service = service
        self.config = config
        self.deliverer = deliverer or Deliverer(service, config)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads pipelined commands in turn: say so (RFC 2920), and MTAs
        # send MAIL, RCPT and DATA in one packet. An AUTH line without
        # mechanisms (a port that takes no logins) is left out.
        session.host_name = hostname
        kept = [r for r in responses[:-1] if r.strip() != "250-AUTH"]
        return kept + ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not self.service.space.room_for(declared_size(mail_options)):
            # Said before the message is sent: the sender keeps it and tries again later.
            return STORAGE_FULL
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.recipients = []
        envelope.remote = []
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        recipients = getattr(envelope, "recipients", None)
        if recipients is None:
            recipients = envelope.recipients = []
        if len(recipients) + len(getattr(envelope, "remote", [])) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        try:
            recipient = await self.accept_recipient(session, envelope, address)
        except Refusal as r:
            return r.reply
        except Exception:
            log.exception("recipient lookup for %r failed", address)
            return "451 4.3.0 Temporary lookup failure"
        if recipient is None:           # accepted for relaying (submission)
            envelope.remote = getattr(envelope, "remote", []) + [address]
        else:
            recipients.append(recipient)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def accept_recipient(self, session, envelope, address: str) -> Recipient | None:
        """A local user's Recipient, None for one to relay, or Refusal."""
        return await self.local_recipient(envelope, address)

    async def local_recipient(self, envelope, address: str) -> Recipient:
        recipient = await resolve(self.service, address, self.config.recipient_delimiter, facts=True)
        if recipient is None:
            raise Refusal(f"550 5.1.1 <{address}>: no such user here")
        if quota_exceeded(recipient.facts.quota, declared_size(envelope.mail_options)):
            raise Refusal(mailbox_full(recipient, self.config.quota_full_tempfail).reply())
        return recipient


class Listeners:
    """The TCP (and unix socket) listeners of one protocol."""

    def __init__(self, name: str = "SMTP"):
        self.name = name
        self.servers: list[asyncio.AbstractServer] = []

    async def tcp(self, factory, host: str, port: int | None, ssl=None) -> None:
        if port is not None:
            self.servers.append(await listen_tcp(factory, host, port, ssl, self.name))

    async def unix(self, factory, path: str) -> None:
        import os
        if os.path.exists(path):
            os.unlink(path)       # left by an earlier run
        self.servers.append(await asyncio.get_running_loop().create_unix_server(factory, path,
                                                                                backlog=LISTEN_BACKLOG))

    def ports(self) -> list[int]:
        return [sock.getsockname()[1] for srv in self.servers for sock in srv.sockets
                if isinstance(sock.getsockname(), tuple)]

    async def close(self) -> None:
        for srv in self.servers:
            srv.close()
        for srv in self.servers:
            await srv.wait_closed()
        self.servers.clear()


class Tuned:
    """Mixed into aiosmtpd's protocol classes (LMTP, SMTP, submission).

    Against hostile clients: a connection over the limits (limits.py) is
    answered 421 and closed; until its first command (or, with login=True,
    until it has authenticated) a client has login_timeout seconds in all,
    then aiosmtpd's timeout between commands; and a line once begun must be
    whole within line_timeout (a client trickling it in is cut off)."""

    protocol_name = "SMTP"      # for the log

    def __init__(self, handler, line_length_limit: int, limits=None, login_timeout: float = 0,
                 line_timeout: float = 0, login: bool = False, **kwargs):
        # A line limit of our choosing (real mail has lines past RFC 5321's
        # 1,000 octets), set before the stream reader is made.
        self.line_length_limit = max(line_length_limit, 1001)
        self._held_replies: list[bytes] = []
        self._limits = limits
        self._admission: Admission | None = None
        self._refused = False
        self._login = login
        self._login_timeout = login_timeout
        self._login_deadline: float | None = None
        self._timer_resets = 0
        self._line_timeout = line_timeout
        self._line_timer: asyncio.TimerHandle | None = None
        super().__init__(handler, **kwargs)
        # aiosmtpd decodes a command's argument as UTF-8 with surrogateescape,
        # so bytes that are not UTF-8 reach the handlers (and the store, which
        # can't encode them). Every command is checked here, once, instead.
        self._smtp_methods = {name: _utf8_checked(name, method, self.push)
                              for name, method in self._smtp_methods.items()}

    # -- limits and timeouts ------------------------------------------------------
    def connection_made(self, transport) -> None:
        if self._original_transport is None:        # not the second call, after STARTTLS
            self._admission = Admission(self._limits, transport, self.protocol_name.lower())
            if self._admission.refusal is not None:
                self._refused = True
                transport.write(f"421 4.7.0 {self._admission.refusal}; try again later\r\n".encode())
                transport.close()
                return
            if self._login_timeout:
                self._login_deadline = time.monotonic() + self._login_timeout
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self._refused:
            return
        self._cancel_line_timer()
        if self._admission is not None:
            self._admission.release()
        super().connection_lost(error)

    def eof_received(self):
        if self._refused:
            return False
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if self._line_timeout:
            buffered = getattr(self._reader, "_buffer", None)
            if buffered and buffered[-1:] != b"\n":
                if self._line_timer is None:
                    self._line_timer = self.loop.call_later(self._line_timeout, self._line_timed_out)
            else:
                self._cancel_line_timer()

    def _cancel_line_timer(self) -> None:
        if self._line_timer is not None:
            self._line_timer.cancel()
            self._line_timer = None

    def _line_timed_out(self) -> None:
        self._line_timer = None
        buffered = getattr(self._reader, "_buffer", None)
        if self.transport is None or not buffered or buffered[-1:] == b"\n":
            return
        if getattr(self._reader, "_waiter", None) is None:
            # We are busy, not the client slow: look again later.
            self._line_timer = self.loop.call_later(self._line_timeout, self._line_timed_out)
            return
        log.info("%r: a line took over %s s to arrive; closing", self.session.peer, self._line_timeout)
        self.transport.write(b"421 4.4.2 Line took too long to arrive; closing\r\n")
        self.transport.close()

    def _reset_timeout(self, duration=None) -> None:
        # aiosmtpd calls this when the connection is made and after each valid command.
        self._timer_resets += 1
        deadline = self._login_deadline
        if deadline is not None:
            done = self.session is not None and self.session.authenticated if self._login \
                else self._timer_resets > 1
            if done:
                self._login_deadline = None
            else:
                duration = min(duration or self._timeout_duration, max(0.001, deadline - time.monotonic()))
        super()._reset_timeout(duration)

    def _timeout_cb(self):
        if self._login_deadline is not None and self.session is not None and self.session.authenticated:
            self._reset_timeout()       # logged in since the timer was set: the usual timeout now
            return
        if self.transport is not None:
            what = "Login timed out" if self._login_deadline is not None else "Timeout"
            self.transport.write(f"421 4.4.2 {what}; closing\r\n".encode())
        super()._timeout_cb()

    async def push(self, status):
        """Replies to pipelined commands (RFC 2920) go out together: a reply
        waits while the client's next command line is already here, and
        leaves with the first reply after which none is (Postfix's rule).
        MAIL, RCPT and DATA cost one write, one packet, instead of three.
        Only 25x, 45x and 55x replies (those of MAIL, RCPT and the end of
        DATA) wait: 220 (TLS starts next), 221, 421 and 502 (the connection
        closes) and the rest go at once."""
        if isinstance(status, str):
            status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
        held = self._held_replies
        held.append(status + b"\r\n")
        if status[:2] in (b"25", b"45", b"55") and self._command_waiting():
            return
        self._writer.write(b"".join(held))
        held.clear()
        await self._writer.drain()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, but the message is read in bulk (data_reader)."""
        if "DATA" not in self._handle_hooks or self._decode_data:
            return await super().smtp_DATA(arg)
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content, refusal = await read_message(self._reader, self.line_length_limit, self.data_size_limit)
        except (ConnectionLost, asyncio.CancelledError):
            log.info("connection lost during DATA")
            self._writer.close()
            raise asyncio.CancelledError() from None
        if refusal is not None:
            await self.push(refusal)
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # A STARTTLS handshake the client aborted: one line, no traceback
            # (aiosmtpd logs each as an ERROR with two). No reply is sent:
            # aiosmtpd closes the connection.
            tls_failed(f"{self.protocol_name} STARTTLS", peer_text(self.session), error.__cause__ or error)
            return "454 4.7.0 TLS handshake failed"
        return await super().handle_exception(error)

    def _command_waiting(self) -> bool:
        buffered = getattr(self._reader, "_buffer", None)
        return buffered is not None and b"\n" in buffered

    def _getaddr(self, arg: str):
        """aiosmtpd's address parse without its cost: it defines a typing
        class on every call (a tenth of a millisecond per MAIL and RCPT)."""
        if not arg:
            return "", ""
        plain = _PLAIN_ADDRESS.match(arg)
        if plain is not None:
            addr, rest = plain.group(1), plain.group(2) or ""
            if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
                return None, None
            return addr, rest
        parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
        try:
            address, rest = parse(arg)
        except HeaderParseError:
            return None, None
        addr = address.addr_spec
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest


def invalid_utf8_reply(command: str, arg: str | None) -> str | None:
    """The refusal of a command whose argument has bytes that are not UTF-8
    (decoded by aiosmtpd as lone surrogates), or None if it is all UTF-8.

    A permanent 5xx, not 4xx: the same bytes would fail again. In the address
    of MAIL or RCPT it is a mailbox of bad syntax: 553 (RFC 5321 4.2.2,
    "mailbox syntax incorrect"), with RFC 3463's X.1.7 (sender) or X.1.3
    (destination); SMTPUTF8 (RFC 6531 3.3) widens addresses to UTF-8, never
    to arbitrary bytes. Anywhere else it is a syntax error in the arguments:
    501 with X.5.4 (invalid command arguments) for MAIL/RCPT parameters, or
    X.5.2 (syntax error) for other commands (EHLO, AUTH, ...)."""
    if not arg:
        return None
    try:
        arg.encode("utf-8")
        return None
    except UnicodeEncodeError as e:
        at = e.start
    if command in ("MAIL", "RCPT"):
        closing = arg.find(">")
        if closing < 0 or at < closing:
            enhanced = "5.1.7" if command == "MAIL" else "5.1.3"
            whose = "sender" if command == "MAIL" else "recipient"
            return f"553 {enhanced} The {whose} address is not valid UTF-8"
        return "501 5.5.4 The parameters are not valid UTF-8"
    return f"501 5.5.2 The argument of {command} is not valid UTF-8"


def _utf8_checked(command: str, method, push):
    async def checked(arg):
        refusal = invalid_utf8_reply(command, arg)
        if refusal is not None:
            await push(refusal)
            return
        await method(arg)
    return checked


def one_reply_per_recipient(protocol: SMTP, status):
    """For LMTP: aiosmtpd refuses oversized data with one reply; repeat it for each recipient."""
    if isinstance(status, str) and status.startswith(DATA_REFUSALS) and protocol.envelope is not None:
        return "\r\n".join([status] * max(1, len(protocol.envelope.rcpt_tos)))
    return status
