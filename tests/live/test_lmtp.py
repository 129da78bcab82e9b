"""LMTP (RFC 2033) with Python's smtplib.LMTP and raw sockets: per-recipient
replies, delivery visible over IMAP at once, refusals, and garbage."""
from __future__ import annotations

import imaplib
import shutil
import smtplib
import socket
import subprocess

import pytest

from ..conftest import RawClient


def message(subject: str = "hello", body: str = "Delivered by LMTP.\r\n") -> bytes:
    return (f"From: Sender <sender@example.org>\r\nTo: someone@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.org>\r\n\r\n{body}").encode()


@pytest.fixture
def lmtp(server):
    client = smtplib.LMTP(server.host, server.lmtp_port, timeout=10)
    yield client
    try:
        client.quit()
    except smtplib.SMTPException:
        pass


def inbox_of(server, user):
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    c.select("INBOX")
    return c


def test_lhlo_advertises_and_rejects_helo(server):
    raw = RawClient(server.host, server.lmtp_port)
    assert raw.greeting.startswith(b"220 ") and b"LMTP" in raw.greeting
    raw.send("HELO me\r\n")
    assert raw.readline().startswith(b"500")
    raw.send("LHLO me\r\n")
    lines = [raw.readline()]
    while lines[-1][3:4] == b"-":
        lines.append(raw.readline())
    caps = b"".join(lines)
    assert b"250" in lines[-1] and b"SIZE 1048576" in caps and b"8BITMIME" in caps and b"SMTPUTF8" in caps
    raw.close()


def test_delivery_lands_in_inbox_with_trace_headers(server, user, lmtp):
    name, _ = user
    refused = lmtp.sendmail("sender@example.org", [f"{name}@example.com"], message("first"))
    assert refused == {}
    c = inbox_of(server, user)
    _, data = c.fetch("1", "(BODY.PEEK[])")
    raw = data[0][1]
    assert raw.startswith(b"Return-Path: <sender@example.org>\r\nReceived: from ")
    assert b"by mx.test (Posthouse) with LMTP id " in raw and b"Subject: first" in raw
    _, data = c.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    c.logout()


def test_idle_session_sees_delivery(server, user, lmtp):
    name, _ = user
    c = inbox_of(server, user)
    tag = c._new_tag().decode()
    c.send(f"{tag} IDLE\r\n".encode())
    assert c.readline().startswith(b"+")
    lmtp.sendmail("", [name], message("wake"))         # null sender, bare user name
    assert c.readline() == b"* 1 EXISTS\r\n"
    c.send(b"DONE\r\n")
    c.readline()
    c.logout()


def test_unknown_recipient_is_refused_at_rcpt_and_others_still_get_it(server, lmtp):
    alice, bob = server.add_user(), server.add_user()
    lmtp.ehlo_or_helo_if_needed()
    assert lmtp.mail("s@example.org")[0] == 250
    assert lmtp.rcpt(f"{alice[0]}@example.com")[0] == 250
    code, text = lmtp.rcpt("nobody-here@example.com")
    assert code == 550 and b"5.1.1" in text
    assert lmtp.rcpt(f"{bob[0]}+lists@example.com")[0] == 250     # subaddress
    # smtplib reads one reply after DATA; LMTP sends one per accepted recipient.
    code, _ = lmtp.data(message("two-lmtp"))
    assert code == 250
    code, text = lmtp.getreply()
    assert code == 250 and bob[0].encode() in text
    for who in (alice, bob):
        c = inbox_of(server, who)
        _, data = c.search(None, "SUBJECT", "two-lmtp")
        assert data[0] == b"1"
        c.logout()
    # One stored copy for both: the bytes are the same, so is the blob.
    store = server.ctx.service.store
    assert store.db.execute("SELECT count(*) FROM blobs WHERE subject = 'two-lmtp'").fetchone()[0] == 1


def test_duplicate_recipient_gets_two_replies(server, user):
    name, _ = user
    raw = RawClient(server.host, server.lmtp_port)
    _lhlo(raw)
    raw.send(f"MAIL FROM:<a@b.c>\r\nRCPT TO:<{name}>\r\nRCPT TO:<{name}>\r\nDATA\r\n")
    assert [raw.readline()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
    raw.send(message("dup") + b"\r\n.\r\n")
    assert [raw.readline()[:3] for _ in range(2)] == [b"250", b"250"]
    raw.close()


def test_pipelined_replies_come_together_and_a_pipelined_quit_is_answered(server, user):
    """RFC 2920: the replies to MAIL, RCPT and DATA sent in one packet come
    back in one write (the server holds a reply while the next command is
    already read); after the dot, a pipelined QUIT still gets the
    delivery's 250 and then 221."""
    name, _ = user
    raw = RawClient(server.host, server.lmtp_port)
    _lhlo(raw)
    raw.send(f"MAIL FROM:<a@b.c>\r\nRCPT TO:<nobody-here>\r\nRCPT TO:<{name}>\r\nDATA\r\n")
    first = raw.sock.recv(65536)      # one write: everything up to the 354 at once
    assert [line[:3] for line in first.split(b"\r\n") if line] == [b"250", b"550", b"250", b"354"]
    raw.send(message("pipelined-quit") + b"\r\n.\r\nQUIT\r\n")
    assert raw.readline().startswith(b"250 2.0.0")
    assert raw.readline().startswith(b"221")
    assert raw.readline() == b""      # and the server closed the connection
    raw.close()
    c = inbox_of(server, user)
    _, hits = c.search(None, "SUBJECT", "pipelined-quit")
    assert len(hits[0].split()) == 1
    c.logout()


@pytest.mark.parametrize("body, code", [
    (b"x" * 70000 + b"\r\n", b"500"),                     # a line over the 64 KiB limit
    ((b"x" * 998 + b"\r\n") * 1100, b"552"),               # over the 1 MiB size limit
])
def test_refused_data_gets_a_reply_per_recipient(server, user, body, code):
    """aiosmtpd refuses these once; LMTP owes each recipient its reply."""
    name, _ = user
    other, _ = server.add_user()
    raw = RawClient(server.host, server.lmtp_port)
    _lhlo(raw)
    raw.send(f"MAIL FROM:<a@b.c>\r\nRCPT TO:<{name}>\r\nRCPT TO:<{other}>\r\nDATA\r\n")
    assert [raw.readline()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
    raw.send(b"Subject: long\r\n\r\n" + body + b".\r\n")
    assert [raw.readline()[:3] for _ in range(2)] == [code, code]
    raw.send("NOOP\r\n")
    assert raw.readline()[:3] == b"250"       # and the session goes on
    raw.close()


def test_long_lines_are_accepted(server, user, lmtp):
    """Lines past RFC 5321's 1,000 octets exist in real mail; the MTA took them."""
    name, _ = user
    lmtp.sendmail("s@example.org", [name], message("long", "y" * 5000 + "\r\n"))
    c = inbox_of(server, user)
    typ, data = c.fetch("1", "(RFC822.SIZE)")
    assert typ == "OK" and int(data[0].split()[-1].rstrip(b")")) > 5000
    c.logout()


def test_size_limit_refused(server, user, lmtp):
    name, _ = user
    big = message("big", "x" * 100 + "\r\n") * 12000        # over the 1 MiB test limit
    with pytest.raises(smtplib.SMTPException) as info:
        lmtp.sendmail("s@example.org", [name], big)
    assert "552" in str(info.value) or "size" in str(info.value).lower()


def test_dot_stuffing_and_bare_lf(server, user, lmtp):
    name, _ = user
    body = ".leading dot\r\n..two dots\r\nend\r\n"
    lmtp.sendmail("s@example.org", [name], message("dots", body))
    c = inbox_of(server, user)
    _, data = c.fetch("1", "(BODY.PEEK[TEXT])")
    assert data[0][1] == body.encode()
    c.logout()


def test_garbage_gets_errors_and_the_server_lives(server, user):
    raw = RawClient(server.host, server.lmtp_port)
    for junk in (b"\x00\xff\xfe\r\n", b"RCPT TO:<x>\r\n", b"DATA\r\n", b"MAIL FROM:<<<>>>\r\n",
                 b"X" * 5000 + b"\r\n", b"LHLO\r\n", "LHLO ünïcode\r\n".encode()):
        raw.send(junk)
        reply = raw.readline()
        assert reply[:1] in (b"2", b"4", b"5"), (junk, reply)
    raw.close()
    # still serving
    client = smtplib.LMTP(server.host, server.lmtp_port, timeout=10)
    assert client.sendmail("s@example.org", [user[0]], message("after")) == {}
    client.quit()


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks (Debian package swaks) is not installed")
def test_swaks_delivers_over_lmtp(server, user):
    name, _ = user
    out = subprocess.run(["swaks", "--protocol", "LMTP", "--server", f"{server.host}:{server.lmtp_port}",
                          "--to", f"{name}@example.com", "--from", "swaks@example.org",
                          "--header", "Subject: via swaks"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    c = inbox_of(server, user)
    _, data = c.search(None, "SUBJECT", "swaks")
    assert data[0] == b"1"
    c.logout()


def test_lmtp_over_unix_socket(tmp_path):
    from ..conftest import RunningServer
    path = str(tmp_path / "lmtp.sock")
    srv = RunningServer(str(tmp_path / "data"), lmtp_port=None, lmtp_socket=path)
    try:
        name, pw = srv.add_user()
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        client = smtplib.LMTP()
        client.sock = s
        client.file = None
        assert client.getreply()[0] == 220
        assert client.sendmail("s@example.org", [name], message("unix")) == {}
        client.quit()
        c = inbox_of(srv, (name, pw))
        assert c.search(None, "SUBJECT", "unix")[1][0] == b"1"
        c.logout()
    finally:
        srv.stop()


def _lhlo(raw):
    raw.send("LHLO me\r\n")
    while raw.readline()[3:4] == b"-":
        pass


def test_recipient_without_inbox_gets_451_and_others_250(server, user):
    from posthouse.auth.passwords import hash_password
    boxless = "boxless-user"
    server.call(server.ctx.service.call("create_user", boxless, hash_password("x"), []))
    raw = RawClient(server.host, server.lmtp_port)
    _lhlo(raw)
    raw.send(f"MAIL FROM:<a@b.c>\r\nRCPT TO:<{boxless}>\r\nRCPT TO:<{user[0]}>\r\nDATA\r\n")
    assert [raw.readline()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
    raw.send(message("boxless") + b"\r\n.\r\n")
    first, second = raw.readline(), raw.readline()
    assert first.startswith(b"451 4.2.0") and boxless.encode() in first      # in RCPT order
    assert second.startswith(b"250 2.0.0") and user[0].encode() in second
    raw.close()
    c = inbox_of(server, user)
    assert c.search(None, "SUBJECT", "boxless")[1][0] == b"1"
    c.logout()


def test_too_many_recipients_get_452(server, user, monkeypatch):
    from posthouse.delivery import esmtp as lmtp_module
    monkeypatch.setattr(lmtp_module, "MAX_RECIPIENTS", 2)
    raw = RawClient(server.host, server.lmtp_port)
    _lhlo(raw)
    raw.send("MAIL FROM:<a@b.c>\r\n" + f"RCPT TO:<{user[0]}>\r\n" * 3)
    assert [raw.readline()[:9] for _ in range(4)] == [b"250 2.1.0", b"250 2.1.5", b"250 2.1.5", b"452 4.5.3"]
    raw.close()


def test_failed_lookup_is_a_temporary_refusal(server, user, monkeypatch):
    from posthouse.delivery import esmtp as lmtp_module

    async def broken(*args):
        raise RuntimeError("simulated store failure")
    monkeypatch.setattr(lmtp_module, "resolve", broken)
    raw = RawClient(server.host, server.lmtp_port)
    _lhlo(raw)
    raw.send(f"MAIL FROM:<a@b.c>\r\nRCPT TO:<{user[0]}>\r\n")
    assert raw.readline().startswith(b"250")
    assert raw.readline().startswith(b"451 4.3.0")
    raw.close()
