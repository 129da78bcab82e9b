"""The IMAP connection itself: its socket protocol, flow control, half-close, STARTTLS."""
from __future__ import annotations

import asyncio
import socket
import ssl
import threading

from posthouse.config import Config
from posthouse.imap.protocol.reader import RawLine
from posthouse.imap.protocol.tokens import Command
from posthouse.imap.server import _READ_AHEAD, Connection
from tests.conftest import RawClient, raw_login


def test_commands_sent_before_a_half_close_are_all_answered(server, user):
    c = raw_login(server, user)
    try:
        c.send("s SELECT INBOX\r\nn NOOP\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        text = b""
        while chunk := c.sock.recv(65536):
            text += chunk
        text = c.buf + text
        assert b"\r\ns OK [READ-WRITE]" in text and text.endswith(b"n OK NOOP completed\r\n")
    finally:
        c.close()


def test_cleartext_pipelined_after_starttls_is_discarded(server):
    c = RawClient(server.host, server.port)
    try:
        c.send("a STARTTLS\r\nb LOGIN injected pw\r\n")
        assert c.readline().startswith(b"a OK")
        assert c.buf == b""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
        c.send("c NOOP\r\n")
        assert c.readline() == b"c OK NOOP completed\r\n"   # nothing answered for "b"
    finally:
        c.close()


def test_megabytes_of_pipelined_commands_are_all_answered_in_order(server, user):
    c = raw_login(server, user)
    lines = [f"t{i} NOOP {'x' * 60_000}\r\n".encode() for i in range(60)]   # 3.6 MB
    sender = threading.Thread(target=c.sock.sendall, args=(b"".join(lines),))
    sender.start()
    try:
        for i in range(60):
            assert c.readline().startswith(f"t{i} BAD".encode())
        assert c.cmd("n", "NOOP")[-1] == b"n OK NOOP completed\r\n"
    finally:
        sender.join(10)
        c.close()


class _Transport(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.paused = False
        self.written = b""

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1143) if name in ("peername", "sockname") else default

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False

    def write(self, data):
        self.written += data

    def close(self):
        pass


def test_a_client_that_sends_faster_than_its_session_reads_is_paused_then_resumed():
    async def run():
        started = []
        conn = Connection(Config(data_dir="/nonexistent"), False, started.append)
        transport = _Transport()
        conn.connection_made(transport)
        assert started == [conn] and conn.peer == "127.0.0.1:1143" and conn.is_loopback
        conn.log_in()       # a logged-in session's read-ahead and line length (before login: less)
        line = b"a NOOP " + b"x" * 60_000 + b"\r\n"
        while not transport.paused:
            conn.data_received(line)          # the session is busy: nothing is read
        assert conn.reader.pending_bytes > _READ_AHEAD
        events = 0
        while transport.paused:
            assert isinstance(await conn.next_event(), Command)
            events += 1
        assert conn.reader.pending_bytes <= _READ_AHEAD // 2 and events > 1
        # What is left is read; then the session waits for more, and more wakes it.
        while conn.reader.pending_bytes:
            assert isinstance(await conn.next_event(), Command)
        waiting = asyncio.ensure_future(conn.next_event())
        await asyncio.sleep(0)
        assert not waiting.done()
        conn.data_received(b"b NOOP\r\n")
        assert (await waiting).tag == "b"
        # A waiter given up (IDLE's timeout) leaves the next one working.
        waiting = asyncio.ensure_future(conn.next_event())
        await asyncio.sleep(0)
        waiting.cancel()
        conn.reader.raw_mode = True
        conn.data_received(b"DONE\r\n")
        assert await conn.next_event() == RawLine(b"DONE")
        # At the end of the stream: what came before it, then None.
        conn.data_received(b"c NOOP\r\n")
        assert conn.eof_received() is True       # half-closed: answers still go out
        assert (await conn.next_event()).tag == "c"
        assert await conn.next_event() is None
        conn.connection_lost(None)
        assert conn.closed and await conn.next_event() is None

    asyncio.run(run())


def test_drain_waits_while_the_client_reads_nothing_and_ends_when_it_goes():
    async def run():
        conn = Connection(Config(data_dir="/nonexistent"), False, lambda c: None)
        transport = _Transport()
        conn.connection_made(transport)
        conn.write(b"* 1 EXISTS\r\n")
        conn.pause_writing()                  # the socket's buffer is full
        draining = asyncio.ensure_future(conn.drain())
        await asyncio.sleep(0)
        assert transport.written == b"* 1 EXISTS\r\n" and not draining.done()
        conn.resume_writing()
        await asyncio.wait_for(draining, 1)
        conn.pause_writing()
        draining = asyncio.ensure_future(conn.drain())
        await asyncio.sleep(0)
        assert not draining.done()
        conn.connection_lost(ConnectionResetError())
        await asyncio.wait_for(draining, 1)
        conn.write(b"* 2 EXISTS\r\n")         # after the end: dropped, no error
        await conn.drain()
        assert transport.written == b"* 1 EXISTS\r\n"

    asyncio.run(run())
