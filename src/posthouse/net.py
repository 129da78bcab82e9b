"""Facts about a connection's peer that every protocol asks."""
from __future__ import annotations

import asyncio
import ipaddress
import logging

log = logging.getLogger("posthouse")


def peer_of(writer) -> tuple[str, bool]:
    """("host:port", whether the peer is on loopback) for a stream writer or transport."""
    peer = writer.get_extra_info("peername")
    text = f"{peer[0]}:{peer[1]}" if peer else "?"
    try:
        loopback = bool(peer) and ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:      # a unix socket, or something else without an address
        loopback = False
    return text, loopback


def tls_failed(protocol: str, peer: str, exc: BaseException) -> None:
    """A TLS handshake that the client aborted or botched (scanners, clients
    that dislike the certificate, port probes): one line, no traceback."""
    reason = str(exc) or type(exc).__name__
    log.info("%s: TLS handshake with %s failed: %s", protocol, peer, reason)


class _Handshaking(asyncio.Protocol):
    """Stands in for the real protocol during the handshake: asyncio tells
    the protocol given to start_tls of a failed handshake's connection loss
    though it never made it; the real one must not hear of a connection it
    never had. What arrives between the handshake and the swap is kept."""

    def __init__(self):
        self.received: list[bytes] = []
        self.eof = False

    def data_received(self, data: bytes) -> None:
        self.received.append(data)

    def eof_received(self):
        self.eof = True
        return True

    def connection_lost(self, exc) -> None:
        pass


class ImplicitTls(asyncio.Protocol):
    """The first protocol of a connection to an implicit-TLS port: it does
    the handshake itself (loop.start_tls) and hands the encrypted transport
    to the protocol made by inner_factory. asyncio's own ssl= listeners drop
    a failed handshake silently (or, in some loops and paths, log a
    traceback); here each failure is one INFO line, and the server's other
    connections never see it."""

    def __init__(self, inner_factory, context, name: str):
        self.inner_factory = inner_factory
        self.context = context
        self.name = name
        self._task: asyncio.Task | None = None

    def connection_made(self, transport) -> None:
        # Nothing is read until start_tls has put its own protocol in place.
        transport.pause_reading()
        self._task = asyncio.get_running_loop().create_task(self._handshake(transport))

    async def _handshake(self, transport) -> None:
        peer, _ = peer_of(transport)
        standin = _Handshaking()
        try:
            tls = await asyncio.get_running_loop().start_tls(transport, standin, self.context, server_side=True)
        except (OSError, asyncio.TimeoutError) as e:   # ssl.SSLError and ConnectionError are OSErrors
            tls_failed(f"{self.name} (implicit TLS)", peer, e)
            transport.abort()
            return
        inner = self.inner_factory()
        tls.set_protocol(inner)
        inner.connection_made(tls)
        for data in standin.received:
            inner.data_received(data)
        if standin.eof and not inner.eof_received():
            tls.close()

    def connection_lost(self, exc) -> None:
        # Only before start_tls took the transport over: the handshake task
        # sees the same loss and logs it.
        pass


async def listen_tcp(factory, host: str, port: int, ssl=None, name: str = "TLS"):
    """loop.create_server, with implicit TLS done by ImplicitTls when ssl is given."""
    loop = asyncio.get_running_loop()
    if ssl is None:
        return await loop.create_server(factory, host, port)
    return await loop.create_server(lambda: ImplicitTls(factory, ssl, name), host, port)


class StreamServers:
    """The listeners of a line protocol run over asyncio streams (POP3,
    ManageSieve): each connection runs session(reader, writer, tls) to the
    end; close() stops listening and ends the sessions by closing their writers."""

    def __init__(self, session, name: str, limit: int):
        self.session = session
        self.name = name
        self.limit = limit
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
        self.writers.add(writer)
        try:
            await self.session(reader, writer, tls)
        except Exception:
            log.exception("%s session crashed", self.name)
        finally:
            self.writers.discard(writer)

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
