"""ManageSieve (RFC 5804) with sievelib's client and raw sockets."""
from __future__ import annotations

import base64
import warnings

import pytest
from sievelib.managesieve import Client

from ..conftest import RawClient

GOOD = 'require "fileinto";\r\nif header :contains "subject" "x" { fileinto "Archive"; }\r\n'


def client(server, user, password=None) -> Client:
    c = Client(server.host, server.sieve_port)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # plaintext on loopback, on purpose
        assert c.connect(user[0], password or user[1], authmech="PLAIN")
    return c


def test_scripts_lifecycle(server, user):
    c = client(server, user)
    assert c.get_implementation() == "Posthouse"
    assert "fileinto" in c.get_sieve_capabilities() and "vacation" in c.get_sieve_capabilities()
    assert c.havespace("main", len(GOOD))
    assert c.putscript("main", GOOD)
    assert c.putscript("spare", "keep;\r\n")
    assert c.listscripts() == (None, ["main", "spare"])
    assert c.setactive("main")
    assert c.listscripts() == ("main", ["spare"])
    assert c.getscript("main").splitlines() == GOOD.splitlines()    # the client re-joins lines
    account = server.call(server.ctx.service.call("get_user", user[0]))
    assert server.call(server.ctx.service.call("get_script", account.id, "main")) == GOOD   # stored exactly
    assert not c.deletescript("main")                 # active
    assert c.renamescript("spare", "other")
    assert not c.renamescript("other", "main")        # exists
    assert c.deletescript("other")
    assert c.setactive("")
    assert c.listscripts() == (None, ["main"])
    assert c.checkscript(GOOD)
    assert not c.checkscript('fileinto "x";')         # no require
    assert not c.putscript("broken", "if {")
    assert c.listscripts() == (None, ["main"])
    assert c.getscript("nope") is None
    c.logout()


def test_active_script_filters_delivery(server, user):
    import smtplib
    c = client(server, user)
    assert c.putscript("main", 'require "fileinto"; fileinto "Archive";') and c.setactive("main")
    c.logout()
    with smtplib.LMTP(server.host, server.lmtp_port, timeout=10) as lmtp:
        lmtp.sendmail("a@example.org", [user[0]], b"Subject: via managesieve\r\n\r\nbody\r\n")
    import imaplib
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login(*user)
    imap.select("Archive", readonly=True)
    assert imap.search(None, "SUBJECT", "\"via managesieve\"")[1][0] == b"1"
    imap.logout()


def test_bad_login_and_garbage(server, user):
    c = Client(server.host, server.sieve_port)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not c.connect(user[0], "wrong", authmech="PLAIN")
    raw = RawClient(server.host, server.sieve_port)
    while not raw.greeting.startswith(b"OK"):
        raw.greeting = raw.readline()
    for line in (b"LISTSCRIPTS", b'PUTSCRIPT "a" "keep;"', b"\x00\xff garbage", b'"string first"',
                 b"FROB", b'AUTHENTICATE "CRAM-MD5"', b'AUTHENTICATE "PLAIN" "!!!"',
                 b'AUTHENTICATE "PLAIN" "' + base64.b64encode(b"nonuls") + b'"', b'PUTSCRIPT "a" {12x+}'):
        raw.send(line + b"\r\n")
        assert raw.readline().startswith(b"NO"), line
    token = base64.b64encode(f"\0{user[0]}\0{user[1]}".encode())
    raw.send(b'AUTHENTICATE "PLAIN" "' + token + b'"\r\n')
    assert raw.readline().startswith(b"OK")
    script = b"keep;\r\n"
    raw.send(b'PUTSCRIPT "lit" {%d+}\r\n' % len(script) + script + b"\r\n")
    assert raw.readline().startswith(b"OK")
    raw.send(b'NOOP "t1"\r\n')
    assert raw.readline() == b'OK (TAG "t1") "Done"\r\n'
    raw.send(b"X" * 20000 + b"\r\n")
    assert raw.readline().startswith(b"BYE")
    raw.close()
    raw = RawClient(server.host, server.sieve_port)
    raw.send(b'AUTHENTICATE "PLAIN" "' + token + b'"\r\nPUTSCRIPT "a" {99999999999+}\r\n')
    lines = [raw.readline() for _ in range(8)]
    assert any(line.startswith(b"BYE") for line in lines)
    raw.close()


def trust_server_certificate(server, monkeypatch):
    """sievelib verifies the certificate: trust the server's self-signed one."""
    monkeypatch.setenv("SSL_CERT_FILE", server.config.path("tls/cert.pem"))


def test_starttls(server, user, monkeypatch):
    trust_server_certificate(server, monkeypatch)
    c = Client(server.host, server.sieve_port)
    assert c.connect(user[0], user[1], starttls=True, authmech="PLAIN")
    assert c.listscripts() == (None, [])
    c.logout()


def test_plaintext_refused_without_tls(tmp_path, monkeypatch):
    from ..conftest import RunningServer
    srv = RunningServer(str(tmp_path), plaintext_auth="never")
    trust_server_certificate(srv, monkeypatch)
    try:
        user = srv.add_user()
        raw = RawClient(srv.host, srv.sieve_port)
        lines = [raw.greeting]
        while not lines[-1].startswith(b"OK"):
            lines.append(raw.readline())
        assert b'"SASL" ""\r\n' in lines and b'"STARTTLS"\r\n' in lines
        token = base64.b64encode(f"\0{user[0]}\0{user[1]}".encode())
        raw.send(b'AUTHENTICATE "PLAIN" "' + token + b'"\r\n')
        assert raw.readline().startswith(b"NO (ENCRYPT-NEEDED)")
        raw.close()
        c = Client(srv.host, srv.sieve_port)
        assert c.connect(user[0], user[1], starttls=True, authmech="PLAIN")
        c.logout()
    finally:
        srv.stop()


@pytest.mark.parametrize("name", [b"", b"a\nb", b"tab\there", b"x" * 600])
def test_bad_script_names(server, user, name):
    raw = RawClient(server.host, server.sieve_port)
    while not raw.greeting.startswith(b"OK"):
        raw.greeting = raw.readline()
    token = base64.b64encode(f"\0{user[0]}\0{user[1]}".encode())
    raw.send(b'AUTHENTICATE "PLAIN" "' + token + b'"\r\n')
    assert raw.readline().startswith(b"OK")
    raw.send(b"PUTSCRIPT {%d+}\r\n" % len(name) + name + b' "keep;"\r\nLISTSCRIPTS\r\n')
    assert raw.readline().startswith(b"NO")
    assert raw.readline().startswith(b'OK "Listed"')      # no script was stored
    raw.close()
