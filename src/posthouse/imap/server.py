"""The asyncio transport: sockets in, bytes to the codec, events to the session."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ..auth.authenticator import Authenticator
from ..config import Config
from ..net import peer_of
from ..store.service import StoreService
from .protocol.reader import BadCommand, CommandReader, Fatal, LiteralTooBig, NeedContinuation, RawLine
from .protocol.tokens import Command
from .registry import MailboxRegistry
from .session import LOGOUT, Session

log = logging.getLogger("posthouse.imap")

_FLUSH_AT = 64 * 1024


@dataclass
class ServerContext:
    config: Config
    service: StoreService
    registry: MailboxRegistry
    authenticator: Authenticator
    tls_context: object = None
    deliverer: object = None        # delivery.deliver.Deliverer
    queue: object = None            # delivery.queue.OutboundQueue


class Connection:
    """What a Session needs from its socket, and nothing more."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: Config, tls: bool):
        self._reader = reader
        self._writer = writer
        self.reader = CommandReader(max_line=config.max_line, max_literal=config.max_message_size)
        self.tls = tls
        self.peer, self.is_loopback = peer_of(writer)
        local = writer.get_extra_info("sockname")
        self.local_host = local[0] if isinstance(local, tuple) else None   # URLs may name us by it
        self.closed = False
        # Responses are gathered and sent in one write at drain(): one system
        # call per command instead of one per response line.
        self._out: list[bytes] = []
        self._out_size = 0

    def write(self, data: bytes) -> None:
        if not self.closed:
            self._out.append(data)
            self._out_size += len(data)
            if self._out_size >= _FLUSH_AT:
                self._flush()

    def _flush(self) -> None:
        if self._out:
            self._writer.write(b"".join(self._out))
            self._out.clear()
            self._out_size = 0

    async def drain(self) -> None:
        if not self.closed:
            self._flush()
            try:
                await self._writer.drain()
            except (ConnectionError, OSError):
                self.close()

    def close(self) -> None:
        if not self.closed:
            try:
                self._flush()
            except Exception:
                pass
            self.closed = True
            try:
                self._writer.close()
            except Exception:
                pass

    async def next_event(self):
        """The next codec event, reading from the socket as needed; None at EOF."""
        while True:
            event = self.reader.next_event()
            if event is not None:
                return event
            if self.closed:
                return None
            try:
                data = await self._reader.read(65536)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                return None
            self.reader.feed(data)

    async def start_tls(self, context) -> None:
        # Anything pipelined after STARTTLS in cleartext is discarded (CVE-2011-0411 class).
        self.reader = CommandReader(max_line=self.reader.max_line, max_literal=self.reader.max_literal)
        await self._writer.start_tls(context)
        self.tls = True


class ImapServer:
    def __init__(self, ctx: ServerContext):
        self.ctx = ctx
        self.servers: list[asyncio.base_events.Server] = []
        self.sessions: set[Session] = set()

    async def start(self) -> None:
        cfg = self.ctx.config
        self.servers.append(await asyncio.start_server(
            lambda r, w: self._serve(r, w, tls=False), cfg.imap_host, cfg.imap_port, limit=2**20))
        if cfg.imap_tls_port is not None and self.ctx.tls_context is not None:
            self.servers.append(await asyncio.start_server(
                lambda r, w: self._serve(r, w, tls=True), cfg.imap_host, cfg.imap_tls_port,
                ssl=self.ctx.tls_context, limit=2**20))

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

    async def _serve(self, reader, writer, tls: bool) -> None:
        conn = Connection(reader, writer, self.ctx.config, tls)
        session = Session(conn, self.ctx)
        self.sessions.add(session)
        log.debug("connect %s", conn.peer)
        try:
            session.greeting()
            await conn.drain()
            await self._loop(conn, session)
        except Exception:
            log.exception("session crashed peer=%s", conn.peer)
            conn.write(b"* BYE Internal server error\r\n")
        finally:
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
            elif isinstance(event, BadCommand):
                await session.flush_updates(False)
                conn.write(f"{event.tag or '*'} BAD {event.reason}\r\n".encode())
            elif isinstance(event, LiteralTooBig):
                conn.write(f"{event.tag or '*'} NO [TOOBIG] Literal of {event.size} bytes is over the limit\r\n".encode())
            elif isinstance(event, Fatal):
                conn.write(f"* BYE {event.reason}\r\n".encode())
                await conn.drain()
                return
            elif isinstance(event, RawLine):
                conn.write(b"* BAD Unexpected line\r\n")
            await conn.drain()
