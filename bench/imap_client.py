"""A small asyncio IMAP client for load generation.

It does only what the workloads need, with as little work per response as
possible so that the generator is not what is measured: responses are read
as lines cut from big reads, and nothing is parsed beyond the tag.
"""
from __future__ import annotations

import asyncio
import re
from collections import deque

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_READ = 1 << 20
_LINE = re.compile(rb"[^\n]*\n")


class ImapError(Exception):
    pass


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self._tag = 0
        self.literal_bytes = 0      # body bytes received in literals
        self._buf = bytearray()     # bytes read but not yet taken
        self._pos = 0               # where the untaken part of _buf starts
        self._lines: deque = deque()  # lines cut from _buf, not yet taken

    @classmethod
    async def connect(cls, host: str, port: int) -> "Client":
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        client = cls(reader, writer)
        greeting = await client._readline()
        if not greeting.startswith(b"* OK"):
            writer.close()
            raise ImapError(f"bad greeting: {greeting!r}")
        return client

    def _next_tag(self) -> bytes:
        self._tag += 1
        return b"a%d" % self._tag

    async def read_response(self, keep_literals: bool = False) -> bytes:
        """One response, literals included (or counted and dropped)."""
        line = await self._readline()
        if not line.endswith(b"}\r\n"):
            return line
        parts = [line]
        while True:
            m = _LITERAL.search(line)
            if not m:
                break
            n = int(m.group(1))
            data = await self._take(n, keep_literals)
            if keep_literals:
                parts.append(data)
            self.literal_bytes += n
            line = await self._readline()
            parts.append(line)
        return b"".join(parts)

    # Lines are cut from a buffer of our own, filled a big read at a time: a
    # FETCH 1:* on a big mailbox answers 100,000 lines, and one StreamReader
    # readline() each made the generator, not the server, what was measured.
    async def _fill(self) -> None:
        chunk = await self.reader.read(_READ)
        if not chunk:
            raise ImapError("connection closed")
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += chunk

    async def _readline(self) -> bytes:
        lines = self._lines
        if lines:
            return lines.popleft()
        while True:
            buf, pos = self._buf, self._pos
            last = buf.rfind(b"\n", pos)
            if last >= 0:
                # Every whole line up to the first that announces a literal
                # (whose bytes are no lines) is cut at once.
                literal = buf.find(b"}\r\n", pos, last + 1)
                end = last + 1 if literal < 0 else literal + 3
                lines.extend(_LINE.findall(buf, pos, end))
                self._pos = end
                return lines.popleft()
            await self._fill()

    async def _take(self, n: int, keep: bool) -> bytes:
        """The next n bytes (a literal); b"" when not kept, so big ones are never held."""
        have = min(n, len(self._buf) - self._pos)
        kept = [bytes(self._buf[self._pos:self._pos + have])] if keep else []
        self._pos += have
        n -= have
        while n > 0:
            chunk = await self.reader.read(min(n, _READ))
            if not chunk:
                raise ImapError("connection closed in a literal")
            n -= len(chunk)
            if keep:
                kept.append(chunk)
        return b"".join(kept)

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
