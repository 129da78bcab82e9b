"""A small asyncio LMTP client (RFC 2033) for the delivery workload: one
session per connection, one transaction after another, each waited for."""
from __future__ import annotations

import asyncio


class LmtpError(Exception):
    pass


class LmtpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.pipelining = False

    @classmethod
    async def connect(cls, host: str, port: int) -> "LmtpClient":
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        await client._reply(b"220")
        writer.write(b"LHLO bench.example\r\n")
        lines = await client._reply(b"250")
        client.pipelining = any(line[4:].strip().upper() == b"PIPELINING" for line in lines)
        return client

    async def _reply(self, want: bytes) -> list[bytes]:
        """One (possibly multi-line) reply's lines; raises unless its code is want."""
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise LmtpError("connection closed")
            lines.append(line)
            if line[3:4] != b"-":
                break
        if not line.startswith(want):
            raise LmtpError(b"".join(lines).decode("utf-8", "replace"))
        return lines

    async def deliver(self, sender: str, recipients: list[str], message: bytes) -> None:
        """MAIL, RCPTs and DATA; waits for every recipient's reply after the dot.
        With PIPELINING (RFC 2920) the envelope and DATA go in one packet, as
        Postfix's LMTP client sends them; otherwise each waits for its reply."""
        commands = [b"MAIL FROM:<%s>\r\n" % sender.encode()]
        commands += [b"RCPT TO:<%s>\r\n" % rcpt.encode() for rcpt in recipients]
        if self.pipelining:
            self.writer.writelines(commands + [b"DATA\r\n"])
            for _ in commands:
                await self._reply(b"250")
        else:
            for command in commands:
                self.writer.write(command)
                await self._reply(b"250")
            self.writer.write(b"DATA\r\n")
        await self._reply(b"354")
        body = message.replace(b"\r\n.", b"\r\n..")
        if body.startswith(b"."):
            body = b"." + body
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.writer.writelines([body, b".\r\n"])
        for _ in recipients:
            await self._reply(b"250")

    async def quit(self) -> None:
        self.writer.write(b"QUIT\r\n")
        try:
            await self._reply(b"221")
        finally:
            self.writer.close()
