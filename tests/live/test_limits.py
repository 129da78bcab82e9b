"""Hostile clients: connections over the limits are refused in each
protocol's own words; a client that never logs in, or trickles a line in,
is closed; before login IMAP takes small literals only."""
from __future__ import annotations

import base64
import socket
import time

import pytest

from tests.conftest import RawClient, RunningServer, raw_login

PROTOCOLS = ("imap", "pop3", "managesieve", "smtp", "lmtp", "submission")


def port_of(srv: RunningServer, protocol: str) -> int:
    return {"imap": srv.port, "pop3": srv.pop3_port, "managesieve": srv.sieve_port, "smtp": srv.smtp_port,
            "lmtp": srv.lmtp_port, "submission": srv.submission_port}[protocol]


def connect(srv: RunningServer, protocol: str, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection((srv.host, port_of(srv, protocol)), timeout=10,
                                    source_address=(source, 0))


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (bounded by the socket's timeout)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def last_line(data: bytes) -> bytes:
    return data.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]


# -- connection limits ----------------------------------------------------------------

@pytest.fixture(scope="module")
def limited(live_store, tmp_path_factory):
    srv = RunningServer(str(tmp_path_factory.mktemp("limited")), max_connections_per_ip=3, max_connections=5)
    yield srv
    srv.stop()


REFUSALS = {
    "imap": b"* BYE [UNAVAILABLE] Too many connections from your address",
    "pop3": b"-ERR [SYS/TEMP] Too many connections from your address",
    "managesieve": b'BYE (TRYLATER) "Too many connections from your address',
    "smtp": b"421 4.7.0 Too many connections from your address",
    "lmtp": b"421 4.7.0 Too many connections from your address",
    "submission": b"421 4.7.0 Too many connections from your address",
}


def open_greeted(srv, protocol, source="127.0.0.1") -> RawClient:
    c = RawClient.__new__(RawClient)
    c.sock, c.buf = connect(srv, protocol, source), b""
    c.greeting = c.readline()
    assert c.greeting and not c.greeting.startswith((b"* BYE", b"-ERR", b"BYE", b"421")), c.greeting
    return c


def wait_admitted(srv, protocol, source="127.0.0.1", tries=50) -> RawClient:
    """A new connection once the server has counted the ones just closed."""
    for _ in range(tries):
        sock = connect(srv, protocol, source)
        first = sock.recv(65536)
        if not first.startswith((b"* BYE", b"-ERR", b"BYE", b"421")):
            c = RawClient.__new__(RawClient)
            c.sock, c.buf, c.greeting = sock, first, b""
            return c
        sock.close()
        time.sleep(0.1)
    raise AssertionError("never admitted")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_connection_past_the_per_address_limit_is_refused(limited, protocol):
    held = [open_greeted(limited, "imap") for _ in range(3)]     # the limit counts every protocol
    try:
        refused = connect(limited, protocol)
        try:
            answer = read_to_end(refused)
        finally:
            refused.close()
        assert answer.startswith(REFUSALS[protocol]) and answer.count(b"\r\n") == 1, answer
        # Another address is not held back by this one's.
        other = open_greeted(limited, protocol, "127.0.0.2")
        other.close()
    finally:
        for c in held:
            c.close()
    wait_admitted(limited, protocol).close()       # the closed ones are no longer counted


def test_the_connection_past_the_global_limit_is_refused(limited):
    held = [open_greeted(limited, "imap", "127.0.0.1") for _ in range(3)]
    held += [open_greeted(limited, "pop3", "127.0.0.2") for _ in range(2)]
    try:
        for protocol in PROTOCOLS:
            refused = connect(limited, protocol, "127.0.0.3")
            try:
                answer = read_to_end(refused)
            finally:
                refused.close()
            assert b"Too many connections to this server" in answer, answer
    finally:
        for c in held:
            c.close()
    wait_admitted(limited, "imap", "127.0.0.3").close()


# -- timeouts ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def impatient(live_store, tmp_path_factory):
    srv = RunningServer(str(tmp_path_factory.mktemp("impatient")), login_timeout=3, line_timeout=0.3,
                        idle_timeout=4, pop3_timeout=4)     # past the login deadline: it comes first
    yield srv
    srv.stop()


TIMED_OUT = {
    "imap": b"* BYE Login timed out",
    "pop3": b"-ERR Login timed out",
    "managesieve": b'BYE (TRYLATER) "Login timed out"',
    "smtp": b"421 4.4.2 Login timed out; closing",
    "lmtp": b"421 4.4.2 Login timed out; closing",
    "submission": b"421 4.4.2 Login timed out; closing",
}


def test_a_client_that_never_logs_in_is_closed(impatient):
    socks = {p: connect(impatient, p) for p in PROTOCOLS}       # all wait at once
    try:
        for protocol, sock in socks.items():
            assert last_line(read_to_end(sock)) == TIMED_OUT[protocol], protocol
    finally:
        for sock in socks.values():
            sock.close()


def test_a_client_that_keeps_talking_without_logging_in_is_closed(impatient):
    c = RawClient(impatient.host, impatient.port)
    try:
        for i in range(100):            # a NOOP every 0.1 s: far past the login deadline
            c.send(f"n{i} NOOP\r\n")
            line = c.readline()
            if not line.startswith(f"n{i} OK".encode()):
                break
            time.sleep(0.1)
        assert line == b"* BYE Login timed out\r\n"
        assert c.readline() == b""
    finally:
        c.close()


def test_a_logged_in_client_idle_too_long_is_logged_out(impatient):
    user = impatient.add_user()
    imap = raw_login(impatient, user)
    pop3 = RawClient(impatient.host, impatient.pop3_port)
    try:
        pop3.send(f"USER {user[0]}\r\nPASS {user[1]}\r\n")
        assert pop3.readline().startswith(b"+OK") and pop3.readline().startswith(b"+OK")
        imap.sock.settimeout(15)
        pop3.sock.settimeout(15)
        assert last_line(read_to_end(imap.sock)) == b"* BYE [UNAVAILABLE] Autologout; idle for too long"
        assert last_line(read_to_end(pop3.sock)) == b"-ERR Idle for too long"
    finally:
        imap.close()
        pop3.close()


def trickle(sock: socket.socket, data: bytes, then: bytes = b"x") -> bytes:
    """Send data a byte at a time, then more bytes, one every 0.05 s, never
    ending the line; what the server answered once it closed."""
    got = b""
    for i in range(200):
        try:
            sock.sendall(data[i:i + 1] if i < len(data) else then)
        except OSError:
            break
        time.sleep(0.05)
        sock.setblocking(False)
        try:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        except BlockingIOError:
            pass
        finally:
            sock.setblocking(True)
    else:
        raise AssertionError("still open after 200 bytes: " + repr(got))
    sock.settimeout(10)
    try:
        got += read_to_end(sock)
    except OSError:
        pass
    return got


def plain(user) -> str:
    return base64.b64encode(f"\0{user[0]}\0{user[1]}".encode()).decode()


def test_slow_loris_imap(impatient):
    user = impatient.add_user()
    c = raw_login(impatient, user)
    try:
        assert last_line(trickle(c.sock, b"a NOOP ")) == b"* BYE Command took too long to arrive"
    finally:
        c.close()


def test_slow_loris_imap_literal_stalled(impatient):
    user = impatient.add_user()
    c = raw_login(impatient, user)
    try:
        c.send("a APPEND INBOX {100}\r\n")
        assert c.readline().startswith(b"+")
        c.send("Subject: half\r\n")     # and then nothing
        c.sock.settimeout(10)
        assert last_line(read_to_end(c.sock)) == b"* BYE Command took too long to arrive"
    finally:
        c.close()


def test_slow_loris_pop3(impatient):
    user = impatient.add_user()
    c = RawClient(impatient.host, impatient.pop3_port)
    try:
        c.send(f"USER {user[0]}\r\n")
        assert c.readline().startswith(b"+OK")
        c.send(f"PASS {user[1]}\r\n")
        assert c.readline().startswith(b"+OK")
        assert last_line(trickle(c.sock, b"STAT")) == b"-ERR Command took too long to arrive"
    finally:
        c.close()


def test_slow_loris_managesieve(impatient):
    user = impatient.add_user()
    c = RawClient(impatient.host, impatient.sieve_port)
    try:
        while not c.readline().startswith(b"OK"):
            pass
        c.send(f'AUTHENTICATE "PLAIN" "{plain(user)}"\r\n')
        assert c.readline().startswith(b"OK")
        assert last_line(trickle(c.sock, b'PUTSCRIPT "a"')) == b'BYE (TRYLATER) "Command took too long to arrive"'
    finally:
        c.close()


@pytest.mark.parametrize("protocol", ("smtp", "lmtp", "submission"))
def test_slow_loris_smtp_like(impatient, protocol):
    c = RawClient(impatient.host, port_of(impatient, protocol))
    try:
        c.send(("LHLO" if protocol == "lmtp" else "EHLO") + " client.test\r\n")
        while not c.readline().startswith(b"250 "):
            pass
        if protocol == "submission":
            user = impatient.add_user()
            c.send(f"AUTH PLAIN {plain(user)}\r\n")
            assert c.readline().startswith(b"235")
        assert last_line(trickle(c.sock, b"MAIL FROM:<")) == b"421 4.4.2 Line took too long to arrive; closing"
    finally:
        c.close()


# -- literals before login (IMAP) ---------------------------------------------------------

def test_before_login_a_big_literal_is_refused_unread(server, user):
    c = RawClient(server.host, server.port)
    try:
        c.send("a LOGIN {100000}\r\n")
        assert c.readline() == b"a NO [TOOBIG] Literal of 100000 bytes is over the limit\r\n"
        # The connection goes on: a login with small literals works.
        c.send(f"b LOGIN {{{len(user[0])}+}}\r\n{user[0]} {user[1]}\r\n")
        assert c.readline().startswith(b"b OK")
    finally:
        c.close()


def test_before_login_a_big_nonsync_literal_ends_the_connection(server):
    c = RawClient(server.host, server.port)
    try:
        c.send("a LOGIN {100000+}\r\n" + "x" * 1000)
        assert c.readline() == b"a BAD [TOOBIG] Literal too big\r\n"
        assert c.readline().startswith(b"* BYE")
        assert c.readline() == b""
    finally:
        c.close()


def test_literals_of_one_command_are_bounded_together_after_login(server, raw):
    half = server.config.max_message_size // 2 + 1
    raw.send(f"a APPEND INBOX {{{half}}}\r\n")
    assert raw.readline().startswith(b"+")
    raw.send(b"x" * half + f" {{{half}}}\r\n".encode())
    assert raw.readline().startswith(b"a NO [TOOBIG]")
    assert raw.cmd("n", "NOOP")[-1] == b"n OK NOOP completed\r\n"


def test_managesieve_before_login_takes_no_script_sized_literal(server):
    c = RawClient(server.host, server.sieve_port)
    try:
        while not c.readline().startswith(b"OK"):
            pass
        c.send('PUTSCRIPT "a" {20000+}\r\n')       # a script fits after login, not before
        assert c.readline() == b'BYE "Line or literal too long"\r\n'
        assert c.readline() == b""
    finally:
        c.close()
