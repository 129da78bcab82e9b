"""The asyncio transport: sockets in, bytes to the codec, events to the session."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ..auth.authenticator import Authenticator
from ..config import Config
from ..limits import Admission
from ..net import listen_tcp, peer_of, tls_failed
from ..store.service import StoreService
from .protocol.reader import BadCommand, CommandReader, Fatal, LiteralTooBig, NeedContinuation, RawLine
from .protocol.tokens import Command
from .registry import MailboxRegistry
from .session import LOGOUT, NOT_AUTH, Session

log = logging.getLogger("posthouse.imap")

_FLUSH_AT = 64 * 1024
# drain() leaves less than this for the moment the session next waits: a
# client's pipelined commands are then answered in one write, not one each.
_FLUSH_SOON = 16 * 1024
_READ_AHEAD = 2 * 1024 * 1024     # unread bytes from a client before its socket is paused
# Before login a client needs a few KB of literals (LOGIN's, ID's): one that
# may send more could make the server hold 64 MiB a literal for nobody.
# Literals (all of one command's together) and read-ahead are kept to these
# until it logs in; lines are max_line long (an ID command with RFC 2971's
# 30 pairs of 1,024 octets is 32 KB).
PRE_LOGIN_LITERALS = 8 * 1024
PRE_LOGIN_READ_AHEAD = 64 * 1024


@dataclass
class ServerContext:
    config: Config
    service: StoreService
    registry: MailboxRegistry
    authenticator: Authenticator
    tls_context: object = None
    deliverer: object = None        # delivery.deliver.Deliverer
    queue: object = None            # delivery.queue.OutboundQueue
    limits: object = None           # limits.ConnectionLimits, shared by every protocol


class Connection(asyncio.Protocol):
    """What a Session needs from its socket, and nothing more. It is the
    socket's protocol itself: bytes go straight into the command reader, and
    the session is woken only when it waits for more (no stream in between)."""

    def __init__(self, config: Config, tls: bool, start_session, limits=None):
        self.config = config
        self.logged_in = False
        self.reader = self._new_reader()
        self._read_ahead = PRE_LOGIN_READ_AHEAD
        self.limits = limits
        self.admission: Admission | None = None
        self.tls = tls
        self.peer, self.is_loopback, self.local_host = "?", False, None
        self.closed = False
        self._start_session = start_session     # called with this connection once it is made
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future | None = None    # the session waits for bytes
        self._eof = False
        self._paused_reading = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future | None = None
        # Responses are gathered and sent in one write when the session next
        # waits (see drain()): one system call per burst of pipelined commands.
        self._out: list[bytes] = []
        self._out_size = 0
        self._flush_scheduled = False
        # Timeouts: log in by login_deadline; a command begun at _command_began
        # (or a literal last fed at _literal_fed) must be here line_timeout later.
        self.login_deadline = time.monotonic() + config.login_timeout if config.login_timeout else None
        self._command_began: float | None = None
        self._literal_fed = 0.0
        self._wait_began = 0.0      # when the session last began to wait for the client
        # One timer for the read deadline (see _watch), not one per command.
        self._read_timer: asyncio.TimerHandle | None = None
        self._read_timer_at = 0.0

    def _new_reader(self) -> CommandReader:
        cfg = self.config
        if self.logged_in:
            return CommandReader(max_line=cfg.max_line, max_literal=cfg.max_message_size,
                                 max_command_literals=cfg.max_message_size)
        return CommandReader(max_line=cfg.max_line,
                             max_literal=min(cfg.max_message_size, PRE_LOGIN_LITERALS),
                             max_command_literals=min(cfg.max_message_size, PRE_LOGIN_LITERALS))

    def log_in(self) -> None:
        """The session has logged in: the full limits apply from its next command."""
        if not self.logged_in:
            self.logged_in = True
            full = self._new_reader()       # its limits; the reader keeps what it holds
            self.reader.max_line, self.reader.max_literal = full.max_line, full.max_literal
            self.reader.max_command_literals = full.max_command_literals
            self._read_ahead = _READ_AHEAD
            if self._paused_reading:
                self._paused_reading = False
                self._transport.resume_reading()

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport) -> None:
        self._transport = transport
        self.peer, self.is_loopback = peer_of(transport)
        local = transport.get_extra_info("sockname")
        self.local_host = local[0] if isinstance(local, tuple) else None   # URLs may name us by it
        self.admission = Admission(self.limits, transport, "imap")
        if self.admission.refusal is not None:
            self.closed = True
            transport.write(f"* BYE [UNAVAILABLE] {self.admission.refusal}; try again later\r\n".encode())
            transport.close()
            return
        self._start_session(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.reader.in_literal:
            self._literal_fed = time.monotonic()
        self.reader.feed(data)
        if self.reader.pending_bytes > self._read_ahead and not self._paused_reading:
            # The session is busy and the client keeps sending: stop reading until it catches up.
            self._paused_reading = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self):
        self._eof = True
        self._wake()
        # Keep writing after the client's half-close: commands it sent before
        # are still answered (TLS can't half-close).
        return not self.tls

    def connection_lost(self, exc) -> None:
        self._eof = True
        self.closed = True
        self._stop_read_timer()
        if self.admission is not None:
            self.admission.release()
        self._wake()
        self._write_paused = False
        self._wake_drain()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- for the session ----------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not self.closed:
            self._out.append(data)
            self._out_size += len(data)
            if self._out_size >= _FLUSH_AT:
                self._flush()

    def _flush(self) -> None:
        if self._out:
            self._transport.write(b"".join(self._out))
            self._out.clear()
            self._out_size = 0

    def _deadline(self) -> tuple[float | None, bytes]:
        """When waiting for the client's next bytes must end, and the BYE then."""
        now = self._wait_began
        cfg = self.config
        if self.reader.mid_command and cfg.line_timeout:
            if self._command_began is None:
                self._command_began = now
            began = max(self._command_began, self._literal_fed)
            line_end = began + cfg.line_timeout
            if self.logged_in or self.login_deadline is None or line_end < self.login_deadline:
                return line_end, b"* BYE Command took too long to arrive\r\n"
        if not self.logged_in and self.login_deadline is not None:
            return self.login_deadline, b"* BYE Login timed out\r\n"
        if cfg.idle_timeout:
            return now + cfg.idle_timeout, b"* BYE [UNAVAILABLE] Autologout; idle for too long\r\n"
        return None, b""

    def _time_out(self, bye: bytes) -> None:
        if not self.closed:
            log.info("timeout peer=%s: %s", self.peer, bye.decode().strip() or "not reading")
            if bye:
                self._out.append(bye)
            self.close()

    def flush(self) -> None:
        """Send what was written, now (the greeting, from connection_made)."""
        if not self.closed:
            self._flush()

    async def drain(self) -> None:
        if self.closed:
            return
        if self._out_size < _FLUSH_SOON and not self._write_paused:
            # A little output: sent once this session's task waits for
            # anything (a loop turn later), with whatever it writes until then.
            if self._out and not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._scheduled_flush)
            return
        try:
            self._flush()
        except (ConnectionError, OSError, RuntimeError):
            self.close()
            return
        while self._write_paused and not self.closed:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            # A client that reads nothing holds the connection no longer than one that sends nothing.
            if not self.logged_in and self.login_deadline is not None:
                timer = self._arm(self.login_deadline, b"")
            elif self.config.idle_timeout:
                timer = self._arm(time.monotonic() + self.config.idle_timeout, b"")
            else:
                timer = None
            try:
                await self._drain_waiter
            finally:
                if timer is not None:
                    timer.cancel()

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        if not self.closed:
            try:
                self._flush()
            except (ConnectionError, OSError, RuntimeError):
                self.close()

    def close(self) -> None:
        if not self.closed:
            try:
                self._flush()
            except Exception:
                pass
            self.closed = True
            self._stop_read_timer()
            try:
                self._transport.close()
            except Exception:
                pass
            self._wake()
            self._wake_drain()

    async def next_event(self):
        """The next codec event, reading from the socket as needed; None at EOF."""
        while True:
            event = self.reader.next_event()
            if event is not None:
                if not self.reader.mid_command:
                    self._command_began = None
                if self._paused_reading and self.reader.pending_bytes <= self._read_ahead // 2:
                    self._paused_reading = False
                    self._transport.resume_reading()
                return event
            if self.closed or self._eof:
                return None
            if self._paused_reading:
                self._paused_reading = False
                self._transport.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            self._wait_began = time.monotonic()
            self._watch()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _watch(self) -> None:
        """Keep the read deadline's timer: moved only when a deadline comes
        sooner than it; a later one is left for the timer to find when it
        fires (arming and cancelling a timer on every command cost ~4 us)."""
        deadline, _bye = self._deadline()
        if deadline is None:
            return
        if self._read_timer is not None:
            if self._read_timer_at <= deadline:
                return
            self._read_timer.cancel()
        self._read_timer_at = deadline
        self._read_timer = asyncio.get_running_loop().call_later(
            max(0.0, deadline - time.monotonic()), self._read_timer_fired)

    def _read_timer_fired(self) -> None:
        self._read_timer = None
        if self.closed or self._waiter is None:
            return      # busy with a command: its next wait for the client arms it again
        deadline, bye = self._deadline()
        if deadline is None:
            return
        if deadline <= time.monotonic():
            self._time_out(bye)
        else:
            self._watch()

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()       # (it holds this connection until it fires)
            self._read_timer = None

    def _arm(self, deadline: float | None, bye: bytes) -> asyncio.TimerHandle | None:
        if deadline is None:
            return None
        return asyncio.get_running_loop().call_later(max(0.0, deadline - time.monotonic()), self._time_out, bye)

    async def start_tls(self, context) -> None:
        # Anything pipelined after STARTTLS in cleartext is discarded (CVE-2011-0411 class).
        self.reader = self._new_reader()
        self._command_began = None
        self._flush()
        loop = asyncio.get_running_loop()
        try:
            self._transport = await loop.start_tls(self._transport, self, context, server_side=True)
        except (OSError, asyncio.TimeoutError) as e:   # the client gave up or spoke no TLS
            tls_failed("IMAP STARTTLS", self.peer, e)
            self.close()
            return
        self.tls = True


class ImapServer:
    def __init__(self, ctx: ServerContext):
        self.ctx = ctx
        self.servers: list[asyncio.base_events.Server] = []
        self.sessions: set[Session] = set()
        self._tasks: set[asyncio.Task] = set()      # sessions running (kept referenced)

    async def start(self) -> None:
        cfg = self.ctx.config
        self.servers.append(await listen_tcp(
            lambda: Connection(cfg, False, self._start, self.ctx.limits), cfg.imap_host, cfg.imap_port))
        if cfg.imap_tls_port is not None and self.ctx.tls_context is not None:
            self.servers.append(await listen_tcp(
                lambda: Connection(cfg, True, self._start, self.ctx.limits), cfg.imap_host, cfg.imap_tls_port,
                self.ctx.tls_context, "IMAP"))

    @property
    def ports(self) -> list[int]:
        return [s.sockets[0].getsockname()[1] for s in self.servers]

    async def close(self) -> None:
        for s in self.servers:
            s.close()
        for s in self.servers:
            await s.wait_closed()
        for session in list(self.sessions):
            session.conn.close()

    def _start(self, conn: Connection) -> None:
        # The greeting is sent here, in connection_made, before anything else:
        # from the session's task it waited behind every callback a busy loop
        # had queued (hundreds of sessions' reads), after the accept itself.
        session = Session(conn, self.ctx)
        self.sessions.add(session)
        session.greeting()
        conn.flush()
        task = asyncio.get_running_loop().create_task(self._serve(conn, session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: Connection, session: Session) -> None:
        log.debug("connect %s", conn.peer)
        try:
            await conn.drain()
            await self._loop(conn, session)
        except Exception:
            log.exception("session crashed peer=%s", conn.peer)
            conn.write(b"* BYE Internal server error\r\n")
        finally:
            login_log = getattr(session, "login_log", None)     # set at login (commands/auth.py)
            if login_log is not None:
                login_log.logout()
            await session.close()
            conn.close()
            self.sessions.discard(session)

    async def _loop(self, conn: Connection, session: Session) -> None:
        while session.state != LOGOUT and not conn.closed:
            event = await conn.next_event()
            if event is None:
                return
            if isinstance(event, NeedContinuation):
                conn.write(b"+ Ready for literal data\r\n")
            elif isinstance(event, Command):
                await session.handle(event)
                if session.state not in (NOT_AUTH, LOGOUT) and not conn.logged_in:
                    conn.log_in()
            elif isinstance(event, BadCommand):
                await session.flush_updates(False)
                conn.write(f"{event.tag or '*'} BAD {event.reason}\r\n".encode())
            elif isinstance(event, LiteralTooBig):
                conn.write(f"{event.tag or '*'} NO [TOOBIG] Literal of {event.size} bytes is over the limit\r\n".encode())
            elif isinstance(event, Fatal):
                if event.tag is not None:       # RFC 7888 4: a non-synchronizing literal over the limit
                    conn.write(f"{event.tag} BAD [TOOBIG] {event.reason}\r\n".encode())
                conn.write(f"* BYE {event.reason}\r\n".encode())
                await conn.drain()
                return
            elif isinstance(event, RawLine):
                conn.write(b"* BAD Unexpected line\r\n")
            await conn.drain()
