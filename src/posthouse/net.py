"""Facts about a connection's peer that every protocol asks."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from .limits import Admission

log = logging.getLogger("posthouse")


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
            self.servers.append(await asyncio.start_server(
                lambda r, w: self._serve(r, w, tls), host, port, ssl=ssl, limit=self.limit))

    async def _serve(self, reader, writer, tls: bool) -> None:
        admission = Admission(self.limits, writer.transport)
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
