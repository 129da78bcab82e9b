"""The service identity against the real server: SASL PLAIN with an
authorization identity is allowed for it alone (IMAP and submission)."""
from __future__ import annotations

import base64
import imaplib
import logging
import os
import smtplib
import stat

import pytest

from posthouse.auth.sasl import SaslError, parse_plain, parse_plain_authz
from posthouse.auth.service_identity import SERVICE_NAME, ServiceIdentity
from posthouse.usernames import check_user_name


def _plain(authzid: str, authcid: str, password: str) -> bytes:
    return f"{authzid}\0{authcid}\0{password}".encode()


def _authenticate(server, data: bytes):
    c = imaplib.IMAP4(server.host, server.port)
    try:
        typ, _ = c.authenticate("PLAIN", lambda _challenge: data)
        return c, typ
    except imaplib.IMAP4.error as e:
        c.logout()
        return None, str(e)


def test_service_name_can_not_be_a_user():
    with pytest.raises(ValueError):
        check_user_name(SERVICE_NAME, ["example.com", "mail.test"])


def test_secret_file_private_and_stable(tmp_path):
    identity = ServiceIdentity(str(tmp_path))
    secret = identity.secret()
    assert len(secret) >= 40 and identity.secret() == secret
    assert stat.S_IMODE(os.stat(tmp_path / "service.secret").st_mode) == 0o600
    assert identity.matches(SERVICE_NAME, secret)
    assert not identity.matches(SERVICE_NAME, secret + "x") and not identity.matches("alice", secret)


def test_parse_plain_authz():
    assert parse_plain_authz(b"bob\0svc\0pw") == ("bob", "svc", "pw")
    assert parse_plain_authz(b"svc\0svc\0pw") == ("", "svc", "pw")
    with pytest.raises(SaslError):
        parse_plain(b"bob\0alice\0pw")      # the other protocols still refuse it
    with pytest.raises(SaslError):
        parse_plain_authz(b"only\0two")


def test_service_acts_as_user(server, user, caplog):
    secret = ServiceIdentity(server.config.data_dir).secret()
    with caplog.at_level(logging.INFO, logger="posthouse.auth"):
        c, typ = _authenticate(server, _plain(user[0], SERVICE_NAME, secret))
    assert typ == "OK"
    try:
        typ, data = c.select("INBOX")
        assert typ == "OK"
        typ, data = c.namespace()
        assert typ == "OK"
    finally:
        c.logout()
    assert f"service {SERVICE_NAME} acted as user {user[0]}" in caplog.text


def test_user_can_not_act_as_another(server, user):
    other, _ = server.add_user()
    c, err = _authenticate(server, _plain(other, user[0], user[1]))
    assert c is None and "AUTHORIZATIONFAILED" in err


def test_wrong_service_secret_refused(server, user):
    ServiceIdentity(server.config.data_dir).secret()
    c, err = _authenticate(server, _plain(user[0], SERVICE_NAME, "not-the-secret"))
    assert c is None and "AUTHENTICATIONFAILED" in err


def test_service_without_authzid_refused(server, user):
    secret = ServiceIdentity(server.config.data_dir).secret()
    c, err = _authenticate(server, _plain("", SERVICE_NAME, secret))
    assert c is None and "AUTHENTICATIONFAILED" in err
    c, err = _authenticate(server, _plain(SERVICE_NAME, SERVICE_NAME, secret))
    assert c is None and "AUTHENTICATIONFAILED" in err
    c = imaplib.IMAP4(server.host, server.port)
    with pytest.raises(imaplib.IMAP4.error):
        c.login(SERVICE_NAME, secret)
    c.logout()


def test_service_for_unknown_user_refused(server):
    secret = ServiceIdentity(server.config.data_dir).secret()
    c, err = _authenticate(server, _plain("nobody-here", SERVICE_NAME, secret))
    assert c is None and "AUTHENTICATIONFAILED" in err


@pytest.mark.parametrize("data", [b"\0\0", b"a\0b", b"\xff\xfe\0\0\0\0", b"x" * 3000, b"\0" * 10])
def test_garbage(server, data):
    c, err = _authenticate(server, data)
    assert c is None
    # the server is still there and well
    c2 = imaplib.IMAP4(server.host, server.port)
    assert c2.noop()[0] == "OK"
    c2.logout()


def test_submission_service_acts_as_user(server, user):
    secret = ServiceIdentity(server.config.data_dir).secret()
    with smtplib.SMTP(server.host, server.submission_port) as s:
        s.ehlo("client.test")
        code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(_plain(user[0], SERVICE_NAME, secret)).decode())
        assert code == 235
    with smtplib.SMTP(server.host, server.submission_port) as s:
        s.ehlo("client.test")
        other, _ = server.add_user()
        code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(_plain(other, user[0], user[1])).decode())
        assert code == 501
        code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(_plain(user[0], SERVICE_NAME, "wrong")).decode())
        assert code == 535
