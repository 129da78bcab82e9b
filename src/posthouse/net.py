"""Facts about a connection's peer that every protocol asks."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from .limits import Admission

log = logging.getLogger("posthouse")

# Connections the kernel holds for us until they are accepted. asyncio's
# default, 100, overflowed under 200 clients that log in and out while the
# loop was busy with their sessions: the kernel dropped the handshake's last
# ACK and the client waited a second or three (TCP's retransmission) for a
# greeting. The kernel caps it at net.core.somaxconn (4096 on current Linux).
LISTEN_BACKLOG = 4096


def peer_of(writer) -> tuple[str, bool]:
    """("host:port", whether the peer is on loopback) for a stream writer or transport."""
    peer = writer.get_extra_info("peername")
    if peer:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else peer[0]     # "[v6]:port" stays readable
        text = f"{host}:{peer[1]}"
    else:
        text = "?"
    try:
        loopback = bool(peer) and ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:      # a unix socket, or something else without an address
        loopback = False
    return text, loopback


class TimedOut(Exception):
    """The client took too long; the text says what it was waited for."""


class Clock:
    """One connection's timeouts (POP3, ManageSieve): before login, everything
    must happen by login_timeout after connecting; after it, a command may be
    awaited for `idle` seconds; and a line, once its first byte is here, must be
    whole within line_timeout (a client trickling it in is cut off)."""

    def __init__(self, config, idle: float | None):
        self.login_deadline = time.monotonic() + config.login_timeout if config.login_timeout else None
        self.idle = idle or None
        self.line_timeout = config.line_timeout or None

    def logged_in(self) -> None:
        self.login_deadline = None

    def _left(self, limit: float | None, what: str) -> tuple[float | None, str]:
        if self.login_deadline is not None:
            left = max(0.0, self.login_deadline - time.monotonic())
            if limit is None or left < limit:
                return left, "Login timed out"
        return limit, what

    async def first_byte(self, reader: asyncio.StreamReader) -> bytes:
        """The first byte of the next command (b"" at EOF)."""
        timeout, what = self._left(self.idle, "Idle for too long")
        try:
            return await asyncio.wait_for(reader.read(1), timeout)
        except asyncio.TimeoutError:
            raise TimedOut(what) from None

    async def rest(self, awaitable):
        """The rest of a command begun, within line_timeout."""
        timeout, what = self._left(self.line_timeout, "Command took too long to arrive")
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except asyncio.TimeoutError:
            raise TimedOut(what) from None

    async def readline(self, reader: asyncio.StreamReader) -> bytes:
        """A line with its ending (b"" at EOF); asyncio's LimitOverrunError and
        IncompleteReadError as readuntil raises them."""
        first = await self.first_byte(reader)
        if first in (b"", b"\n"):
            return first
        return first + await self.rest(reader.readuntil(b"\n"))


def tls_failed(protocol: str, peer: str, exc: BaseException) -> None:
    """A TLS handshake that the client aborted or botched (scanners, clients
    that dislike the certificate, port probes): one line, no traceback."""
    reason = str(exc) or type(exc).__name__
    log.info("%s: TLS handshake with %s failed: %s", protocol, peer, reason)


class ImplicitTls(asyncio.Protocol):
    """The first protocol of a connection to an implicit-TLS port. It puts
    asyncio's TLS layer over the socket itself, as create_server(ssl=) does,
    but hears how the handshake ended: a failure is one INFO line (asyncio's
    own ssl= listeners drop it silently, or log a traceback), a success makes
    the real protocol (inner_factory) and hands it the encrypted transport.
    All of it happens in callbacks, before the next read: no byte the client
    sends can arrive before its reader is in place."""

    def __init__(self, inner_factory, context, name: str):
        self.inner_factory = inner_factory
        self.context = context
        self.name = name
        self.peer = "?"

    def connection_made(self, transport) -> None:
        from asyncio import sslproto
        loop = asyncio.get_running_loop()
        self.peer, _ = peer_of(transport)
        waiter = loop.create_future()
        waiter.add_done_callback(self._handshake_done)
        tls = sslproto.SSLProtocol(loop, _Handshaken(self.inner_factory), self.context, waiter, server_side=True)
        transport.set_protocol(tls)
        tls.connection_made(transport)

    def _handshake_done(self, waiter: asyncio.Future) -> None:
        exc = None if waiter.cancelled() else waiter.exception()
        if exc is not None:
            tls_failed(f"{self.name} (implicit TLS)", self.peer, exc)

    def connection_lost(self, exc) -> None:
        pass        # the TLS layer took the socket over in connection_made


class _Handshaken(asyncio.Protocol):
    """Told of the encrypted transport once the handshake is done: the real
    protocol takes its place at once, then and only then made and connected."""

    def __init__(self, inner_factory):
        self.inner_factory = inner_factory

    def connection_made(self, transport) -> None:
        inner = self.inner_factory()
        transport.set_protocol(inner)
        inner.connection_made(transport)

    def connection_lost(self, exc) -> None:
        pass        # a handshake that failed: nothing was made


# Several session processes (workers.py) listen on the same ports: the kernel
# spreads new connections over them (SO_REUSEPORT), and a worker that ends
# takes only the connections it had.
REUSE_PORT = False


async def listen_tcp(factory, host: str, port: int, ssl=None, name: str = "TLS"):
    """loop.create_server, with implicit TLS done by ImplicitTls when ssl is given."""
    loop = asyncio.get_running_loop()
    reuse = True if REUSE_PORT else None
    if ssl is None:
        return await loop.create_server(factory, host, port, backlog=LISTEN_BACKLOG, reuse_port=reuse)
    return await loop.create_server(lambda: ImplicitTls(factory, ssl, name), host, port, backlog=LISTEN_BACKLOG,
                                    reuse_port=reuse)


class StreamServers:
    """The listeners of a line protocol run over asyncio streams (POP3,
    ManageSieve): each connection runs session(reader, writer, tls) to the
    end; close() stops listening and ends the sessions by closing their writers.
    A connection over the limits (limits.ConnectionLimits) is told
    refuse(reason) and closed instead."""

    def __init__(self, session, name: str, limit: int, limits=None, refuse=None):
        self.session = session
        self.name = name
        self.limit = limit
        self.limits = limits
        self.refuse = refuse
        self.servers: list[asyncio.AbstractServer] = []
        self.writers: set[asyncio.StreamWriter] = set()

    async def listen(self, host: str, port: int | None, ssl=None) -> None:
        if port is not None:
            tls = ssl is not None
            loop = asyncio.get_running_loop()

            def stream_protocol():      # what asyncio.start_server makes per connection
                reader = asyncio.StreamReader(limit=self.limit, loop=loop)
                return asyncio.StreamReaderProtocol(reader, lambda r, w: self._serve(r, w, tls), loop=loop)
            self.servers.append(await listen_tcp(stream_protocol, host, port, ssl, self.name))

    async def _serve(self, reader, writer, tls: bool) -> None:
        admission = Admission(self.limits, writer.transport, self.name.lower())
        if admission.refusal is not None:
            try:
                writer.write(self.refuse(admission.refusal))
                writer.close()
            except Exception:
                pass
            return
        self.writers.add(writer)
        try:
            await self.session(reader, writer, tls)
        except Exception:
            log.exception("%s session crashed", self.name)
        finally:
            self.writers.discard(writer)
            admission.release()

    @property
    def ports(self) -> list[int]:
        return [s.sockets[0].getsockname()[1] for s in self.servers]

    async def close(self) -> None:
        for s in self.servers:
            s.close()
        for writer in list(self.writers):
            writer.close()          # each session's next read ends, and it finishes
        for s in self.servers:
            await s.wait_closed()
        self.servers.clear()
