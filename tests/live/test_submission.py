"""Submission (RFC 6409) with smtplib and swaks: AUTH required, local
delivery, the durable outbound queue through a smarthost (an aiosmtpd sink
on loopback) that goes down and comes back, bounces (RFC 3464), restarts."""
from __future__ import annotations

import email
import imaplib
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest
from aiosmtpd.controller import Controller

from ..conftest import RunningServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SinkHandler:
    """The smarthost: records what it accepts; can refuse or defer recipients."""

    def __init__(self):
        self.received: list[tuple[str, list[str], bytes]] = []
        self.refuse: dict[str, str] = {}
        self.defer_all = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.defer_all:
            return "451 4.3.0 Try again later"
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK queued"


class Sink:
    def __init__(self, port: int | None = None, **smtp_options):
        self.port = port or free_port()
        self.handler = SinkHandler()
        self.controller = None
        self.options = smtp_options

    def start(self):
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **self.options)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def wait_for(predicate, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def message(subject: str, to: str = "friend@remote.example", sender: str = "") -> bytes:
    return (f"From: {sender or 'me@example.com'}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n\r\nSent by submission.\r\n").encode()


def inbox(server, user, name="INBOX", tls=None):
    c = imaplib.IMAP4(server.host, server.port)
    if tls is not None:
        c.starttls(tls)
    c.login(*user)
    c.select(name, readonly=True)
    out = [c.fetch(n, "(BODY.PEEK[])")[1][0][1] for n in c.search(None, "ALL")[1][0].split()]
    c.logout()
    return out


@pytest.fixture
def relayed(tmp_path):
    """A Posthouse whose submission relays through a sink on loopback."""
    sink = Sink()
    sink.start()
    srv = RunningServer(str(tmp_path / "relayed"), relay_host="127.0.0.1", relay_port=sink.port, relay_tls="none",
                        relay_retry_base=0.2, relay_lifetime=3600, submission_save_sent=True)
    yield srv, sink
    srv.stop()
    sink.stop()


def submit(srv, user, sender=None, recipients=("friend@remote.example",), msg=None, port=None) -> dict:
    with smtplib.SMTP(srv.host, port or srv.submission_port, timeout=10) as s:
        s.login(*user)
        sender = sender or f"{user[0]}@example.com"
        # The message says it is from the sender (submission checks From: too).
        msg = (msg or message("hello")).replace(b"From: me@example.com\r\n", f"From: {sender}\r\n".encode(), 1)
        return s.sendmail(sender, list(recipients), msg)


def test_auth_is_required(server, user):
    with smtplib.SMTP(server.host, server.submission_port, timeout=10) as s:
        s.ehlo("client.example")
        assert s.has_extn("auth") and "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]
        code, text = s.mail(f"{user[0]}@example.com")
        assert code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login(user[0], "wrong")
        s.login(*user)
        assert s.mail(f"{user[0]}@example.com")[0] == 250


def test_local_delivery_and_own_addresses_only(server, user):
    other = server.add_user()
    assert submit(server, user, recipients=[f"{other[0]}@example.com"], msg=message("local")) == {}
    [data] = inbox(server, other)
    assert b"with ESMTPA id" in data and b"Subject: local" in data
    with smtplib.SMTP(server.host, server.submission_port, timeout=10) as s:
        s.login(*user)
        code, text = s.mail(f"{other[0]}@example.com")                 # someone else's address
        assert code == 553 and text.startswith(b"5.7.1")
        assert s.mail(f"{user[0]}+news@example.com")[0] == 250          # a subaddress of one's own
        code, text = s.rcpt("friend@remote.example")                    # no smarthost here
        assert code == 550 and b"relay" in text


def test_relay_through_the_smarthost_exactly_once(relayed):
    srv, sink = relayed
    user = srv.add_user("alice")
    assert submit(srv, user, recipients=["a@remote.example", "b@remote.example"]) == {}
    assert wait_for(lambda: len(sink.handler.received) == 1)
    sender, rcpts, data = sink.handler.received[0]
    assert sender == "alice@example.com" and sorted(rcpts) == ["a@remote.example", "b@remote.example"]
    assert b"with ESMTPA id" in data
    time.sleep(0.5)
    assert len(sink.handler.received) == 1                              # once
    # The copy in Sent (submission_save_sent).
    sent = inbox(srv, user, "Sent")
    assert len(sent) == 1 and b"Subject: hello" in sent[0]


def test_smarthost_down_then_back(relayed):
    srv, sink = relayed
    user = srv.add_user("bob")
    sink.stop()
    for n in range(3):
        assert submit(srv, user, msg=message(f"queued {n}")) == {}
    time.sleep(1.0)                                                      # several failed tries
    sink.start()
    assert wait_for(lambda: len(sink.handler.received) == 3)
    time.sleep(1.0)
    subjects = sorted(email.message_from_bytes(d)["Subject"] for _s, _r, d in sink.handler.received)
    assert subjects == ["queued 0", "queued 1", "queued 2"]              # each exactly once


def test_permanent_failure_bounces(relayed):
    srv, sink = relayed
    user = srv.add_user("carol")
    sink.handler.refuse["nobody@remote.example"] = "550 5.1.1 No such user"
    assert submit(srv, user, recipients=["nobody@remote.example", "ok@remote.example"],
                  msg=message("partly")) == {}
    assert wait_for(lambda: len(inbox(srv, user)) == 1)
    [report] = inbox(srv, user)
    msg = email.message_from_bytes(report)
    assert msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "delivery-status"
    status = report.split(b"message/delivery-status", 1)[1]
    assert b"Final-Recipient: rfc822; nobody@remote.example" in status and b"Status: 5.1.1" in status
    assert b"Action: failed" in status and b"Subject: partly" in report
    assert [r for _s, r, _d in sink.handler.received] == [["ok@remote.example"]]


def test_temporary_failure_gives_up_and_bounces(tmp_path):
    sink = Sink()
    sink.start()
    sink.handler.defer_all = True
    srv = RunningServer(str(tmp_path), relay_host="127.0.0.1", relay_port=sink.port, relay_tls="none",
                        relay_retry_base=0.1, relay_lifetime=0.5)
    try:
        user = srv.add_user("dave")
        assert submit(srv, user, msg=message("never")) == {}
        assert wait_for(lambda: len(inbox(srv, user)) == 1)
        [report] = inbox(srv, user)
        assert b"Status: 4.4.7" in report and b"Try again later" in report
        assert sink.handler.received == []
    finally:
        srv.stop()
        sink.stop()


def test_queue_survives_a_restart(tmp_path):
    sink = Sink()
    opts = dict(relay_host="127.0.0.1", relay_port=sink.port, relay_tls="none", relay_retry_base=0.2)
    srv = RunningServer(str(tmp_path), **opts)
    user = srv.add_user("erin")
    assert submit(srv, user, msg=message("across restart")) == {}       # the sink is not up yet
    srv.stop()
    sink.start()
    srv = RunningServer(str(tmp_path), **opts)
    try:
        assert wait_for(lambda: len(sink.handler.received) == 1)
        time.sleep(0.5)
        assert len(sink.handler.received) == 1
    finally:
        srv.stop()
        sink.stop()


def test_tls_rules(tmp_path):
    srv = RunningServer(str(tmp_path), plaintext_auth="never")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        user = srv.add_user("frank")
        other = srv.add_user("grace")
        with smtplib.SMTP(srv.host, srv.submission_port, timeout=10) as s:
            s.ehlo("c.example")
            assert not s.has_extn("auth")
            assert s.docmd("AUTH", "PLAIN AGZyYW5rAHB3LXNlY3JldA==")[0] == 538
            s.starttls(context=ctx)
            s.ehlo("c.example")
            assert s.has_extn("auth")
            s.login(*user)
            assert s.sendmail("frank@example.com", ["grace@example.com"], message("over tls", sender="frank@example.com")) == {}
        with smtplib.SMTP_SSL(srv.host, srv.submission_tls_port, timeout=10, context=ctx) as s:
            s.login(*user)
            assert s.sendmail("frank@example.com", ["grace@example.com"], message("implicit tls", sender="frank@example.com")) == {}
        assert len(inbox(srv, other, tls=ctx)) == 2
    finally:
        srv.stop()


def test_swaks_submits_with_auth(server, user):
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed (Debian package swaks)")
    other = server.add_user()
    out = subprocess.run(["swaks", "--server", server.host, "--port", str(server.submission_port),
                          "--auth", "PLAIN", "--auth-user", user[0], "--auth-password", user[1],
                          "--from", f"{user[0]}@example.com", "--to", f"{other[0]}@example.com",
                          "--header", "Subject: swaks-submission"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(inbox(server, other)) == 1
    out = subprocess.run(["swaks", "--server", server.host, "--port", str(server.submission_port),
                          "--from", f"{user[0]}@example.com", "--to", f"{other[0]}@example.com"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "530" in out.stdout                 # no AUTH: refused


def test_relay_with_starttls_and_credentials(tmp_path):
    from aiosmtpd.smtp import AuthResult

    from posthouse.tls import ensure_self_signed, server_context
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    ensure_self_signed(cert, key)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"relay-secret")
    sink = Sink(tls_context=server_context(cert, key), require_starttls=True, auth_required=True,
                authenticator=authenticator)
    sink.start()
    srv = RunningServer(str(tmp_path / "data"), relay_host="127.0.0.1", relay_port=sink.port,
                        relay_tls="starttls", relay_verify=False, relay_user="acct",
                        relay_password="relay-secret", relay_retry_base=0.2)
    try:
        user = srv.add_user("heidi")
        assert submit(srv, user, msg=message("secure relay")) == {}
        assert wait_for(lambda: len(sink.handler.received) == 1)
        assert logins and logins[0][1:] == (b"acct", b"relay-secret")
    finally:
        srv.stop()
        sink.stop()


def test_vacation_reply_to_a_remote_sender_goes_out_with_null_sender(relayed):
    srv, sink = relayed
    user = srv.add_user("ivan")
    account = srv.call(srv.ctx.service.call("get_user", "ivan"))
    srv.call(srv.ctx.service.call("put_script", account.id, "v", 'require "vacation"; vacation "Away.";'))
    srv.call(srv.ctx.service.call("activate_script", account.id, "v"))
    with smtplib.SMTP(srv.host, srv.smtp_port, timeout=10) as s:          # inbound, from the Internet
        assert s.sendmail("stranger@remote.example", ["ivan@example.com"],
                          message("question", to="ivan@example.com", sender="stranger@remote.example")) == {}
    assert wait_for(lambda: len(sink.handler.received) == 1)
    sender, rcpts, data = sink.handler.received[0]
    assert sender in ("", "<>") and rcpts == ["stranger@remote.example"]
    assert b"Auto-Submitted: auto-replied" in data and b"Away." in data
    assert len(inbox(srv, user)) == 1


def test_sieve_redirect_to_another_domain_goes_through_the_queue(relayed):
    srv, sink = relayed
    user = srv.add_user("judy")
    account = srv.call(srv.ctx.service.call("get_user", "judy"))
    srv.call(srv.ctx.service.call("put_script", account.id, "r", 'redirect "judy@elsewhere.example";'))
    srv.call(srv.ctx.service.call("activate_script", account.id, "r"))
    with smtplib.SMTP(srv.host, srv.smtp_port, timeout=10) as s:
        assert s.sendmail("writer@remote.example", ["judy@example.com"],
                          message("forward me", to="judy@example.com", sender="writer@remote.example")) == {}
    assert wait_for(lambda: len(sink.handler.received) == 1)
    sender, rcpts, data = sink.handler.received[0]
    assert sender == "writer@remote.example" and rcpts == ["judy@elsewhere.example"]
    assert b"Subject: forward me" in data and not data.startswith(b"Return-Path:")
    assert inbox(srv, user) == []
