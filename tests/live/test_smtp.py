"""Inbound SMTP (RFC 5321) with smtplib, swaks and raw sockets: local
delivery for served domains, no relaying, SIZE, STARTTLS, trace headers."""
from __future__ import annotations

import imaplib
import shutil
import smtplib
import ssl
import subprocess

import pytest

from ..conftest import RawClient


def message(subject: str, body: str = "Over SMTP.\r\n") -> bytes:
    return (f"From: Sender <sender@example.org>\r\nTo: someone@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.org>\r\n\r\n{body}").encode()


def fetch_all(server, user, subject):
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    c.select("INBOX")
    found = c.search(None, "SUBJECT", subject)[1][0].split()
    data = [c.fetch(n, "(BODY.PEEK[])")[1][0][1] for n in found]
    c.logout()
    return data


@pytest.fixture
def smtp(server):
    client = smtplib.SMTP(server.host, server.smtp_port, timeout=10)
    yield client
    try:
        client.quit()
    except smtplib.SMTPException:
        pass


def test_ehlo_offers_the_extensions(smtp, server):
    code, _ = smtp.ehlo("client.example.org")
    assert code == 250
    for ext in ("size", "8bitmime", "smtputf8", "pipelining", "starttls", "enhancedstatuscodes"):
        assert smtp.has_extn(ext), ext
    assert smtp.esmtp_features["size"] == str(server.config.max_message_size)
    assert not smtp.has_extn("auth")


def test_delivery_for_a_served_domain(server, user, smtp):
    other = server.add_user()
    refused = smtp.sendmail("sender@example.org", [f"{user[0]}@example.com", f"{other[0]}@MAIL.TEST"],
                            message("smtp-in"))
    assert refused == {}
    for who in (user, other):
        [data] = fetch_all(server, who, "smtp-in")
        head = data.split(b"\r\n\r\n")[0]
        assert head.startswith(b"Return-Path: <sender@example.org>\r\nReceived: from ")
        assert b"with ESMTP id" in head and b"by mx.test (Posthouse)" in head


def test_no_open_relay(server, user, smtp):
    smtp.ehlo("client.example.org")
    smtp.mail("sender@example.org")
    code, text = smtp.rcpt("victim@elsewhere.example")
    assert code == 550 and text.startswith(b"5.7.1")
    code, text = smtp.rcpt(user[0])             # no domain at all: not ours either
    assert code == 550 and text.startswith(b"5.7.1")
    code, text = smtp.rcpt("nobody-here@example.com")
    assert code == 550 and text.startswith(b"5.1.1")
    code, _ = smtp.rcpt(f"{user[0]}+tag@example.com")
    assert code == 250


def test_size_is_enforced(server, user, smtp):
    smtp.ehlo("client.example.org")
    big = message("big", ("x" * 998 + "\r\n") * 1100)     # over the 1 MiB test limit
    with pytest.raises(smtplib.SMTPException) as info:
        smtp.sendmail("sender@example.org", [f"{user[0]}@example.com"], big)
    assert "552" in str(info.value)
    # Declared up front, refused before any data.
    code, _ = smtp.docmd("MAIL", f"FROM:<s@example.org> SIZE={2 * 1024 * 1024}")
    assert code == 552
    assert fetch_all(server, user, "big") == []


def test_starttls_then_delivery(server, user, smtp):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    smtp.ehlo("client.example.org")
    smtp.starttls(context=ctx)
    smtp.ehlo("client.example.org")
    assert not smtp.has_extn("starttls")
    assert smtp.sendmail("s@example.org", [f"{user[0]}@example.com"], message("over-tls")) == {}
    [data] = fetch_all(server, user, "over-tls")
    assert b"with ESMTPS id" in data


def test_pipelined_envelope_and_8bit(server, user):
    raw = RawClient(server.host, server.smtp_port)
    assert raw.greeting.startswith(b"220 ")
    raw.send("EHLO client.example.org\r\n")
    while raw.readline()[3:4] == b"-":
        pass
    raw.send(f"MAIL FROM:<s@example.org> BODY=8BITMIME\r\nRCPT TO:<x@elsewhere.example>\r\n"
             f"RCPT TO:<{user[0]}@example.com>\r\nDATA\r\n")
    assert [raw.readline()[:3] for _ in range(4)] == [b"250", b"550", b"250", b"354"]
    raw.send("Subject: pipelined\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße\r\n.\r\n".encode())
    assert raw.readline().startswith(b"250 2.0.0")
    raw.send("QUIT\r\n")
    assert raw.readline().startswith(b"221")
    raw.close()
    [data] = fetch_all(server, user, "pipelined")
    assert "Grüße".encode() in data


def test_garbage_and_the_server_lives(server, user):
    raw = RawClient(server.host, server.smtp_port)
    for line in (b"\x00\xff\xfe garbage\r\n", b"MAIL FROM:<<<>>>\r\n", b"RCPT TO:<a@example.com>\r\n",
                 b"DATA\r\n", b"X" * 5000 + b"\r\n", b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"):
        raw.send(line)
        reply = raw.readline()
        assert reply[:1] in (b"4", b"5"), (line[:20], reply)
    raw.send("EHLO ok\r\n")
    assert raw.readline().startswith(b"250")
    raw.close()


def swaks_tls() -> None:
    """Skip unless swaks and its TLS modules (Debian: libnet-ssleay-perl) are here."""
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed (Debian package swaks)")
    support = subprocess.run(["swaks", "--support"], capture_output=True, text=True, timeout=30)
    if "=== TLS supported" not in support.stdout:
        pytest.skip("swaks has no TLS here (Debian package libnet-ssleay-perl)")


def test_swaks_delivers_and_is_refused_relay(server, user):
    swaks_tls()
    out = subprocess.run(["swaks", "--server", server.host, "--port", str(server.smtp_port),
                          "--to", f"{user[0]}@example.com", "--from", "s@example.org",
                          "--header", "Subject: swaks-smtp", "--tls", "--ehlo", "swaks.test"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(fetch_all(server, user, "swaks-smtp")) == 1
    out = subprocess.run(["swaks", "--server", server.host, "--port", str(server.smtp_port),
                          "--to", "someone@gmail.example", "--from", "s@example.org"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "5.7.1" in out.stdout
