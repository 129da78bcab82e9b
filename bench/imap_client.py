"""A small asyncio IMAP client for load generation.

It does only what the workloads need, with as little work per response as
possible so that the generator is not what is measured: responses are read
as lines, literals with readexactly, and nothing is parsed beyond the tag.
"""
from __future__ import annotations

import asyncio
import re

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


class ImapError(Exception):
    pass


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self._tag = 0
        self.literal_bytes = 0      # body bytes received in literals

    @classmethod
    async def connect(cls, host: str, port: int) -> "Client":
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        client = cls(reader, writer)
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            writer.close()
            raise ImapError(f"bad greeting: {greeting!r}")
        return client

    def _next_tag(self) -> bytes:
        self._tag += 1
        return b"a%d" % self._tag

    async def read_response(self, keep_literals: bool = False) -> bytes:
        """One response, literals included (or counted and dropped)."""
        line = await self.reader.readline()
        if not line:
            raise ImapError("connection closed")
        if not line.endswith(b"}\r\n"):
            return line
        parts = [line]
        while True:
            m = _LITERAL.search(line)
            if not m:
                break
            n = int(m.group(1))
            if keep_literals:
                parts.append(await self.reader.readexactly(n))
            else:
                await _skip(self.reader, n)
            self.literal_bytes += n
            line = await self.reader.readline()
            parts.append(line)
        return b"".join(parts)

    async def command(self, text: bytes, literal: bytes | None = None,
                      keep_literals: bool = False, untagged: list | None = None) -> bytes:
        """Send one command (with one non-synchronizing literal at its end); return the tagged line."""
        tag = self._next_tag()
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        else:
            self.writer.writelines([tag, b" ", text, b" {%d+}\r\n" % len(literal), literal, b"\r\n"])
        prefix = tag + b" "
        while True:
            resp = await self.read_response(keep_literals)
            if resp.startswith(prefix):
                if not resp.startswith(b"OK", len(prefix)):
                    raise ImapError(f"{text[:60]!r}: {resp!r}")
                return resp
            if untagged is not None:
                untagged.append(resp)

    async def login(self, user: str, password: str) -> None:
        await self.command(b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))

    async def idle_start(self) -> None:
        self.writer.write(b"i1 IDLE\r\n")
        while True:
            line = await self.read_response()
            if line.startswith(b"+"):
                return
            if line.startswith(b"i1 "):
                raise ImapError(f"IDLE refused: {line!r}")

    async def wait_for(self, needle: bytes) -> bytes:
        while True:
            line = await self.read_response()
            if needle in line:
                return line

    async def logout(self) -> None:
        try:
            await self.command(b"LOGOUT")
        except (ImapError, ConnectionError):
            pass
        self.close()

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


async def _skip(reader: asyncio.StreamReader, n: int) -> None:
    while n > 0:
        chunk = await reader.read(min(n, 1 << 20))
        if not chunk:
            raise ImapError("connection closed in a literal")
        n -= len(chunk)
