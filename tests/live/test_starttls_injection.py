"""STARTTLS command injection (the CVE-2011-0411 class): a command sent in
cleartext in the same packet as STARTTLS must not be run inside the TLS
session, on any protocol that offers STARTTLS."""
from __future__ import annotations

import ssl

from tests.conftest import RawClient


def _handshake(c: RawClient) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.buf = b""     # whatever came in cleartext after the go-ahead is not trusted either
    c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")


def _read_until(c: RawClient, prefix: bytes) -> list[bytes]:
    lines = []
    while True:
        line = c.readline()
        assert line, f"closed; got {lines!r}"
        lines.append(line)
        if line.startswith(prefix):
            return lines


def test_imap(server):
    c = RawClient(server.host, server.port)
    try:
        c.send("a STARTTLS\r\nb CAPABILITY\r\n")
        assert c.readline().startswith(b"a OK")
        _handshake(c)
        c.send("c NOOP\r\n")
        assert c.readline() == b"c OK NOOP completed\r\n"   # nothing for "b"
    finally:
        c.close()


def test_pop3(server):
    c = RawClient(server.host, server.pop3_port)
    try:
        c.send("STLS\r\nUSER injected\r\n")
        assert c.readline().startswith(b"+OK")
        _handshake(c)
        c.send("NOOP\r\n")
        # "+OK Send PASS" would be the injected USER's answer.
        assert c.readline().startswith(b"-ERR Not logged in")
    finally:
        c.close()


def test_managesieve(server):
    c = RawClient(server.host, server.sieve_port)
    try:
        _read_until(c, b"OK")
        c.send('STARTTLS\r\nNOOP "injected"\r\n')
        assert c.readline().startswith(b"OK")
        _handshake(c)
        lines = _read_until(c, b"OK")        # the capabilities again, then OK (RFC 5804 2.2)
        assert lines[-1].startswith(b'OK "TLS is active"'), lines
        c.send('NOOP "marker"\r\n')
        answer = c.readline()
        assert b"marker" in answer and b"injected" not in answer, answer
    finally:
        c.close()


def _smtp_like(port: int) -> None:
    from tests.conftest import RawClient as _Raw
    c = _Raw("127.0.0.1", port)
    try:
        c.send("EHLO client.test\r\n")
        _read_until(c, b"250 ")
        c.send("STARTTLS\r\nHELP\r\n")
        assert c.readline().startswith(b"220")
        _handshake(c)
        c.send("EHLO client.test\r\n")
        first = c.readline()
        # "250 Supported commands ..." would be the injected HELP's answer.
        assert first.startswith(b"250-"), first
    finally:
        c.close()


def test_smtp(server):
    _smtp_like(server.smtp_port)


def test_submission(server):
    _smtp_like(server.submission_port)


def test_lmtp_offers_no_starttls(server):
    c = RawClient(server.host, server.lmtp_port)
    try:
        c.send("LHLO client.test\r\n")
        lines = _read_until(c, b"250 ")
        assert not any(b"STARTTLS" in line for line in lines)
    finally:
        c.close()
