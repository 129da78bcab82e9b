"""POP3 (RFC 1939, 2449, 5034, 2595) with poplib, raw sockets, fetchmail and
mpop: stable UIDLs, DELE applied at QUIT only and seen by IMAP, the lock."""
from __future__ import annotations

import base64
import imaplib
import os
import poplib
import shutil
import ssl
import subprocess

import pytest

from ..conftest import RawClient


def deliver(server, user, subject: str, body: str = "Hello over POP3.\r\n") -> None:
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    msg = f"From: a@example.org\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x>\r\n\r\n{body}"
    assert c.append("INBOX", None, None, msg.encode())[0] == "OK"
    c.logout()


def imap_inbox(server, user):
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    c.select("INBOX")
    return c


def pop(server, user) -> poplib.POP3:
    p = poplib.POP3(server.host, server.pop3_port, timeout=10)
    p.user(user[0])
    p.pass_(user[1])
    return p


def no_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_capa_and_login(server, user):
    p = poplib.POP3(server.host, server.pop3_port, timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    caps = p.capa()
    for cap in ("TOP", "UIDL", "USER", "SASL", "STLS", "RESP-CODES", "PIPELINING"):
        assert cap in caps, cap
    assert caps["SASL"] == ["PLAIN"]
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.user(user[0]) and p.pass_("wrong")
    assert p.user(user[0]).startswith(b"+OK")
    assert p.pass_(user[1]).startswith(b"+OK")
    assert "STLS" not in p.capa() and "USER" not in p.capa()
    p.quit()


def test_stat_list_retr_top_uidl(server, user):
    deliver(server, user, "one")
    deliver(server, user, "two", ".starts with a dot\r\n..two dots\r\nline 3\r\nline 4\r\n")
    p = pop(server, user)
    count, total = p.stat()
    listing = p.list()[1]
    assert count == 2 and len(listing) == 2
    assert total == sum(int(x.split()[1]) for x in listing)
    c = imap_inbox(server, user)
    imap_two = c.fetch("2", "(BODY.PEEK[])")[1][0][1]
    _resp, lines, octets = p.retr(2)
    assert b"\r\n".join(lines) + b"\r\n" == imap_two        # poplib un-stuffs the dots
    assert octets >= len(imap_two)
    top = p.top(2, 1)[1]
    assert top[-2:] == [b"", b".starts with a dot"]
    assert p.top(2, 0)[1][-1] == b""                        # the header and the blank line
    uidls = p.uidl()[1]
    assert len({u.split()[1] for u in uidls}) == 2
    assert p.uidl(1).split()[2] == uidls[0].split()[1]
    p.quit()
    # RETR marks the message \Seen, as an IMAP fetch of the body would.
    flags = c.fetch("1:2", "(FLAGS)")[1]
    assert b"\\Seen" not in flags[0] and b"\\Seen" in flags[1]
    c.logout()
    # The same UIDLs next time.
    p = pop(server, user)
    assert p.uidl()[1] == uidls
    p.quit()


def test_dele_applies_at_quit_and_imap_sees_it(server, user):
    for n in range(3):
        deliver(server, user, f"dele{n}")
    c = imap_inbox(server, user)
    p = pop(server, user)
    p.dele(1)
    with pytest.raises(poplib.error_proto):
        p.retr(1)                                       # marked deleted: gone for this session
    assert p.stat()[0] == 2
    p.rset()
    assert p.stat()[0] == 3
    p.dele(1)
    p.dele(3)
    assert c.noop()[0] == "OK" and c.search(None, "ALL")[1][0] == b"1 2 3"   # nothing yet
    p.quit()
    c.noop()
    assert c.search(None, "ALL")[1][0] == b"1"
    assert c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1].strip() == b"Subject: dele1"
    c.logout()


def test_dropped_connection_deletes_nothing(server, user):
    deliver(server, user, "kept")
    raw = RawClient(server.host, server.pop3_port)
    raw.send(f"USER {user[0]}\r\nPASS {user[1]}\r\nDELE 1\r\n")
    assert [raw.readline()[:3] for _ in range(3)] == [b"+OK"] * 3
    raw.close()
    p = pop(server, user)          # also shows the lock was let go
    assert p.stat()[0] == 1
    p.quit()


def test_maildrop_lock_and_imap_expunge_meanwhile(server, user):
    deliver(server, user, "locked")
    p = pop(server, user)
    second = poplib.POP3(server.host, server.pop3_port, timeout=10)
    second.user(user[0])
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_(user[1])
    second.quit()
    c = imap_inbox(server, user)
    c.store("1", "+FLAGS", "\\Deleted")
    c.expunge()
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.retr(1)
    p.dele(1)
    p.quit()                       # expunging what is already gone is fine
    c.logout()
    p = pop(server, user)
    assert p.stat() == (0, 0)
    p.quit()


def test_auth_plain_and_tls(server, user):
    token = base64.b64encode(f"\0{user[0]}\0{user[1]}".encode()).decode()
    raw = RawClient(server.host, server.pop3_port)
    raw.send(f"AUTH PLAIN {token}\r\nSTAT\r\nQUIT\r\n")
    assert raw.readline().startswith(b"+OK Logged in")
    assert raw.readline().startswith(b"+OK ")
    raw.close()
    raw = RawClient(server.host, server.pop3_port)
    raw.send("AUTH PLAIN\r\n")
    assert raw.readline().startswith(b"+ ")
    raw.send(token + "\r\n")
    assert raw.readline().startswith(b"+OK")
    raw.send("QUIT\r\n")
    raw.close()
    raw = RawClient(server.host, server.pop3_port)
    for line, want in (("AUTH PLAIN !!!notbase64", b"-ERR Invalid base64"),
                       ("AUTH PLAIN " + base64.b64encode(b"no-nuls").decode(), b"-ERR Invalid PLAIN"),
                       ("AUTH CRAM-MD5", b"-ERR Unsupported"),
                       ("APOP " + user[0] + " c4c9334bac560ecc979e58001b3e22fb", b"-ERR APOP")):
        raw.send(line + "\r\n")
        assert raw.readline().startswith(want), line
    raw.close()
    # STLS, then a login over TLS; and the implicit-TLS port.
    p = poplib.POP3(server.host, server.pop3_port, timeout=10)
    p.stls(no_tls())
    assert "STLS" not in p.capa()
    p.user(user[0])
    p.pass_(user[1])
    p.quit()
    p = poplib.POP3_SSL(server.host, server.pop3_tls_port, timeout=10, context=no_tls())
    p.user(user[0])
    p.pass_(user[1])
    assert p.stat()[0] >= 0
    p.quit()


def test_plaintext_refused_off_loopback_rules(tmp_path):
    from ..conftest import RunningServer
    srv = RunningServer(str(tmp_path), plaintext_auth="never")
    try:
        user = srv.add_user()
        p = poplib.POP3(srv.host, srv.pop3_port, timeout=10)
        assert "USER" not in p.capa()
        with pytest.raises(poplib.error_proto, match="STLS"):
            p.user(user[0])
        p.stls(no_tls())
        p.user(user[0])
        assert p.pass_(user[1]).startswith(b"+OK")
        p.quit()
    finally:
        srv.stop()


def test_garbage_and_wrong_states(server, user):
    raw = RawClient(server.host, server.pop3_port)
    for line in (b"STAT", b"RETR 1", b"PASS x", b"\x00\xff\xfe", b"FOO bar", b"", b"USER"):
        raw.send(line + b"\r\n")
        assert raw.readline().startswith(b"-ERR"), line
    raw.send(f"USER {user[0]}\r\nPASS {user[1]}\r\n".encode())
    assert raw.readline().startswith(b"+OK") and raw.readline().startswith(b"+OK")
    for line in (b"RETR", b"RETR x", b"RETR 0", b"RETR 99999999999999", b"TOP 1", b"DELE -1",
                 b"LIST 5", b"USER again"):
        raw.send(line + b"\r\n")
        assert raw.readline().startswith(b"-ERR"), line
    raw.send(b"X" * 5000 + b"\r\n")
    assert raw.readline().startswith(b"-ERR Line too long")
    assert raw.readline() == b""               # and the connection is closed
    raw.close()
    p = pop(server, user)                      # the lock went with it
    p.quit()


def _mail_count(path) -> int:
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return sum(1 for line in f if line.startswith(b"Subject: fetch"))


@pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is not installed (Debian package)")
def test_fetchmail_keeps_mail_and_tracks_uidls(server, user, tmp_path):
    for n in range(3):
        deliver(server, user, f"fetch{n}")
    out = tmp_path / "mail.out"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f'poll {server.host} service {server.pop3_port} protocol POP3 uidl\n'
                  f'  user "{user[0]}" password "{user[1]}" keep sslproto "" '
                  f'mda "cat >> {out}"\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))

    def run():
        # (its own lock file: as root the default is one for the whole machine, and tests run in parallel)
        return subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog",
                               "-i", str(tmp_path / "ids"), "--pidfile", str(tmp_path / "fetchmail.pid")],
                              env=env, capture_output=True,
                              text=True, timeout=60)
    first = run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert _mail_count(out) == 3
    second = run()                                   # nothing new: exit 1 means "no mail"
    assert second.returncode == 1, second.stdout + second.stderr
    assert _mail_count(out) == 3
    deliver(server, user, "fetch3")
    assert run().returncode == 0 and _mail_count(out) == 4
    p = pop(server, user)
    assert p.stat()[0] == 4                           # kept on the server
    p.quit()


@pytest.mark.skipif(shutil.which("mpop") is None, reason="mpop is not installed (Debian package)")
def test_mpop_retrieves_and_deletes(server, user, tmp_path):
    for n in range(2):
        deliver(server, user, f"fetch-mpop{n}")
    out = tmp_path / "mbox"
    conf = tmp_path / "mpoprc"
    conf.write_text(f"account test\nhost {server.host}\nport {server.pop3_port}\nuser {user[0]}\n"
                    f"password {user[1]}\ntls off\nauth user\nkeep off\n"
                    f"delivery mbox {out}\nuidls_file {tmp_path}/uidls\n")
    conf.chmod(0o600)
    result = subprocess.run(["mpop", "-C", str(conf), "test"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _mail_count(out) == 2
    c = imap_inbox(server, user)
    assert c.search(None, "ALL")[1][0] == b""        # deleted over POP3, gone for IMAP
    c.logout()
