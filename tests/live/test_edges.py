"""Edges of the protocols: bytes that are not UTF-8 in SMTP, LMTP and
submission commands, POP3 commands with the wrong number of arguments,
aborted TLS handshakes, the TLS profile and the generated certificate."""
from __future__ import annotations

import logging
import socket

import pytest

from ..conftest import RawClient


def smtp_reply(client: RawClient) -> bytes:
    """One (maybe multiline) SMTP reply; its last line."""
    while True:
        line = client.readline()
        if not line or line[3:4] != b"-":
            return line


def smtp_say(client: RawClient, line: bytes) -> bytes:
    client.send(line + b"\r\n")
    return smtp_reply(client)


def no_tracebacks(caplog) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


# -- bytes that are not UTF-8 ---------------------------------------------------------

@pytest.mark.parametrize("service", ["smtp", "lmtp"])
def test_invalid_utf8_in_envelope_commands(server, user, service, caplog):
    port = server.smtp_port if service == "smtp" else server.lmtp_port
    hello = b"EHLO" if service == "smtp" else b"LHLO"
    c = RawClient(server.host, port)
    try:
        assert smtp_say(c, hello + b" \xff\xfe.example").startswith(b"501 5.5.2")
        assert smtp_say(c, hello + b" client.example").startswith(b"250 ")
        assert smtp_say(c, b"MAIL FROM:<\xc3\x28@example.org>").startswith(b"553 5.1.7")
        assert smtp_say(c, b"MAIL FROM:<a@example.org> BODY=8BIT\xff").startswith(b"501 5.5.4")
        assert smtp_say(c, b"MAIL FROM:<a@example.org>").startswith(b"250 ")
        # The reported case: 451 4.3.0 and a traceback before.
        assert smtp_say(c, b"RCPT TO:<\xff\xfe@example.com>").startswith(b"553 5.1.3")
        assert smtp_say(c, b"RCPT TO:<" + user[0].encode() + b"\xed\xa0\x80@example.com>").startswith(b"553 5.1.3")
        assert smtp_say(c, b"RCPT TO:<" + user[0].encode() + b"@example.com> NOTIFY=\xff").startswith(b"501 5.5.4")
        assert smtp_say(c, b"VRFY \xff").startswith(b"501 5.5.2")
        # Real UTF-8 (SMTPUTF8) is still an address: unknown here, so 550.
        assert smtp_say(c, "RCPT TO:<jörg@example.com>".encode()).startswith(b"550 5.1.1")
        assert smtp_say(c, b"RCPT TO:<" + user[0].encode() + b"@example.com>").startswith(b"250 ")
        assert smtp_say(c, b"QUIT").startswith(b"221")
    finally:
        c.close()
    no_tracebacks(caplog)


def test_invalid_utf8_in_submission_auth(server, user, caplog):
    c = RawClient(server.host, server.submission_port)
    try:
        assert smtp_say(c, b"EHLO client.example").startswith(b"250 ")
        assert smtp_say(c, b"AUTH PLAIN \xff\xfe").startswith(b"501 5.5.2")
        assert smtp_say(c, b"AUTH LOGIN \xff").startswith(b"501 5.5.2")
        assert smtp_say(c, b"AUTH \xffPLAIN").startswith(b"501 5.5.2")
        assert smtp_say(c, b"MAIL FROM:<\xff@example.com>").startswith(b"553 5.1.7")
        assert smtp_say(c, b"QUIT").startswith(b"221")
    finally:
        c.close()
    no_tracebacks(caplog)


# -- POP3 arguments are exact (RFC 1939) ------------------------------------------------

def pop3_say(client: RawClient, line: bytes) -> bytes:
    client.send(line + b"\r\n")
    return client.readline()


def test_pop3_commands_take_exactly_their_arguments(server, caplog):
    from .test_pop3 import deliver
    name, password = server.add_user(password="pass with spaces")
    deliver(server, (name, password), "arity")
    c = RawClient(server.host, server.pop3_port)
    try:
        for line in (b"CAPA x", b"STLS now", b"USER", b"USER a b", b"APOP a", b"APOP a b c",
                     b"AUTH PLAIN a b", b"QUIT now"):
            assert pop3_say(c, line).startswith(b"-ERR"), line
        assert pop3_say(c, b"CAPA").startswith(b"+OK")
        while c.readline() != b".\r\n":
            pass
        assert pop3_say(c, b"USER " + name.encode()).startswith(b"+OK")
        # PASS takes the whole rest of the line: a password may hold spaces.
        assert pop3_say(c, b"PASS " + password.encode()).startswith(b"+OK")
        for line in (b"STAT 1", b"LIST 1 1", b"RETR 1 1", b"RETR", b"DELE 1 1", b"DELE", b"NOOP x",
                     b"RSET x", b"TOP 1", b"TOP 1 0 0", b"UIDL 1 1", b"QUIT now", b"RETR \xff"):
            assert pop3_say(c, line).startswith(b"-ERR"), line
        assert pop3_say(c, b"STAT").startswith(b"+OK 1 ")
        assert pop3_say(c, b"LIST 1").startswith(b"+OK 1 ")
        assert pop3_say(c, b"UIDL 1").startswith(b"+OK 1 ")
        assert pop3_say(c, b"NOOP").startswith(b"+OK")
        assert pop3_say(c, b"QUIT").startswith(b"+OK")
    finally:
        c.close()
    no_tracebacks(caplog)
