"""Submission checks who a message says it is from (From:, Sender:) against
the logged-in user's addresses, as it checks the envelope: refused by
default, rewritten under from_policy = "rewrite"."""
from __future__ import annotations

import imaplib
import smtplib

import pytest

from posthouse.config import Config

from ..conftest import RunningServer


def send(srv, user, body: bytes, to: str):
    """(code, text) of the end of DATA."""
    with smtplib.SMTP(srv.host, srv.submission_port, timeout=10) as s:
        s.login(*user)
        try:
            s.sendmail(f"{user[0]}@example.com", [to], body)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
        return 250, b""


def received(srv, user) -> list[bytes]:
    c = imaplib.IMAP4(srv.host, srv.port)
    c.login(*user)
    c.select("INBOX", readonly=True)
    out = [c.fetch(n, "(BODY.PEEK[])")[1][0][1] for n in c.search(None, "ALL")[1][0].split()]
    c.logout()
    return out


def msg(head: str, subject: str = "hi") -> bytes:
    return f"{head}To: friend@example.com\r\nSubject: {subject}\r\n\r\nThe body.\r\n".encode()


def test_own_from_and_sender_are_accepted(server):
    alice, bob = server.add_user(), server.add_user()
    a = alice[0]
    for head in (f"From: {a}@example.com\r\n", f"From: \"Alice A.\" <{a}@EXAMPLE.com>\r\n",
                 f"From: Alice <{a}+lists@example.com>\r\nSender: {a}@example.com\r\n",
                 f"from:\r\n  Alice\r\n  <{a}@example.com>\r\n"):
        assert send(server, alice, msg(head), f"{bob[0]}@example.com")[0] == 250, head
    assert len(received(server, bob)) == 4


@pytest.mark.parametrize("head,code,words", [
    ("From: {other}@example.com\r\n", 550, b"5.7.1 From: <{other}@example.com> is not one of your addresses"),
    ("From: \"{me}\" <{other}@example.com>\r\n", 550, b"5.7.1 From: <{other}@example.com>"),
    ("From: {me}@example.com\r\nSender: {other}@example.com\r\n", 550, b"5.7.1 Sender: <{other}@example.com>"),
    ("From: {me}@example.com, {other}@example.com\r\n", 550, b"5.6.0 The From: field names 2 addresses"),
    ("From: {me}@example.com\r\nFROM: {me}@example.com\r\n", 550, b"5.6.0 The message has 2 From: fields"),
    ("Sender: {me}@example.com\r\n", 550, b"5.6.0 The message has no From: field"),
    ("From: <<{me}@example.com\r\n", 550, b"5.6.0 The From: field is not an address that can be read"),
    ("From: undisclosed-recipients:;\r\n", 550, b"5.6.0 The From: field is not an address that can be read"),
    ("From: {me}@remote.example\r\n", 550, b"5.7.1 From: <{me}@remote.example>"),
])
def test_others_and_unreadable_from_are_refused(server, head, code, words):
    alice, bob = server.add_user(), server.add_user()
    names = {"me": alice[0], "other": bob[0]}
    got_code, text = send(server, alice, msg(head.format(**names)), f"{bob[0]}@example.com")
    assert (got_code, text.startswith(words.replace(b"{me}", names["me"].encode())
                                      .replace(b"{other}", names["other"].encode()))) == (code, True), text
    assert received(server, bob) == []


def test_rewrite_policy_replaces_the_field_and_nothing_else(tmp_path):
    srv = RunningServer(str(tmp_path / "rewrite"), submission_from_policy="rewrite")
    try:
        alice, bob = srv.add_user(), srv.add_user()
        body = (f"Subject: rewritten\r\nFrom: \"Mallory M.\" <{bob[0]}@example.com>\r\n"
                f"Sender: =?utf-8?q?B=C3=B6b?= <{bob[0]}@example.com>\r\nTo: friend@example.com\r\n"
                f"X-Keep: from: someone@else.example\r\n\r\nFrom: in the body stays\r\n").encode()
        assert send(srv, alice, body, f"{bob[0]}@example.com")[0] == 250
        [got] = received(srv, bob)
        message = got[got.index(b"Subject: rewritten"):]        # after the trace fields
        assert message == (f"Subject: rewritten\r\nFrom: \"Mallory M.\" <{alice[0]}@example.com>\r\n"
                           f"Sender: =?utf-8?q?B=C3=B6b?= <{alice[0]}@example.com>\r\nTo: friend@example.com\r\n"
                           f"X-Keep: from: someone@else.example\r\n\r\nFrom: in the body stays\r\n").encode()
        # One's own address is left as it is; what can't be read is still refused.
        own = msg(f"From: Alice <{alice[0]}+x@example.com>\r\n", "own")
        assert send(srv, alice, own, f"{bob[0]}@example.com")[0] == 250
        assert own.replace(b"\r\n", b"\n") in received(srv, bob)[-1].replace(b"\r\n", b"\n")
        code, text = send(srv, alice, msg(f"From: {alice[0]}@example.com, {bob[0]}@example.com\r\n"),
                          f"{bob[0]}@example.com")
        assert code == 550 and text.startswith(b"5.6.0")
    finally:
        srv.stop()


def test_from_policy_must_be_known(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[submission]\nfrom_policy = "rewrite"\n')
    assert Config.load(str(path)).submission_from_policy == "rewrite"
    path.write_text('[submission]\nfrom_policy = "allow"\n')
    with pytest.raises(ValueError, match="from_policy"):
        Config.load(str(path))
