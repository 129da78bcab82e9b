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
            self.servers.append(await asyncio.start_server(
                lambda r, w: self._serve(r, w, tls), host, port, ssl=ssl, limit=self.limit))

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
