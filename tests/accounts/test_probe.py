"""The connection test against the real server (plain, STARTTLS, implicit TLS
with its self-signed certificate), closed ports, unknown hosts, and small
stand-in servers for a missing capability and a bad greeting."""
from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import threading

import pytest

from posthouse.accounts.probe import probe
from posthouse.accounts.store import Account, AccountStore, open_session
from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade


@pytest.fixture
def store(server, tmp_path):
    engine = make_engine(None, str(tmp_path))
    upgrade(engine)
    # the service secret lives in the server's data directory
    yield AccountStore(engine, server.config.data_dir, server.config)
    engine.dispose()


def server_fingerprint(server) -> str:
    with open(server.config.path("tls/cert.pem")) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def _account(**over) -> Account:
    fields = dict(id=None, owner="alice", kind="imap", imap_host="127.0.0.1", imap_port=1, imap_tls="none",
                  login="alice", auth="password", oauth_provider=None, smtp_host=None, smtp_port=None,
                  smtp_tls=None, tls_pin=None, since=None, privacy="snippet", addresses=[], state="active",
                  state_reason="")
    fields.update(over)
    return Account(**fields)


def _probe(store, account, secret=None):
    return asyncio.run(probe(store, account, secret, timeout=5))


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_plain_ok(server, user, store):
    r = _probe(store, _account(imap_port=server.port, login=user[0]), {"password": user[1]})
    assert r.ok, r.problems
    assert any(line.startswith("extensions: CONDSTORE yes, QRESYNC yes, NOTIFY yes, IDLE yes") for line in r.info)


def test_starttls_pinned_ok(server, user, store):
    pin = server_fingerprint(server)
    r = _probe(store, _account(imap_port=server.port, imap_tls="starttls", tls_pin=pin, login=user[0]),
               {"password": user[1]})
    assert r.ok, r.problems
    assert r.cert_sha256 == pin


def test_self_signed_refused_and_fingerprint_offered(server, user, store):
    pin = server_fingerprint(server)
    r = _probe(store, _account(imap_port=server.tls_port, imap_tls="implicit", login=user[0]), {"password": user[1]})
    assert not r.ok and {p.step for p in r.problems} == {"tls"}
    text = " ".join(map(str, r.problems))
    assert "certificate" in text and "self-signed" in text and f"--trust-fingerprint {pin}" in text
    r = _probe(store, _account(imap_port=server.tls_port, imap_tls="implicit", tls_pin=pin, login=user[0]),
               {"password": user[1]})
    assert r.ok, r.problems


def test_wrong_pin(server, user, store):
    r = _probe(store, _account(imap_port=server.tls_port, imap_tls="implicit", tls_pin="ab" * 32, login=user[0]),
               {"password": user[1]})
    assert [p.step for p in r.problems] == ["tls", "tls"]
    assert "is not the pinned" in str(r.problems[0]) and server_fingerprint(server) in str(r.problems[1])


def test_wrong_password_says_the_servers_words(server, user, store):
    r = _probe(store, _account(imap_port=server.port, login=user[0]), {"password": "wrong"})
    assert [p.step for p in r.problems] == ["login"]
    assert "AUTHENTICATIONFAILED" in str(r.problems[0]) and user[0] in str(r.problems[0])


def test_closed_port(store):
    r = _probe(store, _account(imap_port=_closed_port()), {"password": "x"})
    assert [p.step for p in r.problems] == ["tcp"] and "refused" in str(r.problems[0]).lower()


def test_unknown_host(store):
    r = _probe(store, _account(imap_host="no-such-host.invalid", imap_port=993), {"password": "x"})
    assert [p.step for p in r.problems] == ["dns"] and "no-such-host.invalid" in str(r.problems[0])


def test_local_service_identity(server, user, store):
    a = _account(kind="local", imap_port=server.port, login=user[0], auth="service",
                 smtp_host="127.0.0.1", smtp_port=server.submission_port, smtp_tls="none")
    r = _probe(store, a)
    assert r.ok, r.problems
    assert any(line.startswith("smtp:") for line in r.info)


def test_smtp_side(server, user, store):
    a = _account(imap_port=server.port, login=user[0], smtp_host="127.0.0.1", smtp_port=server.submission_port,
                 smtp_tls="starttls", tls_pin=server_fingerprint(server))
    r = _probe(store, a, {"password": user[1]})
    assert r.ok, r.problems
    r = _probe(store, _account(imap_port=server.port, login=user[0], smtp_host="127.0.0.1",
                               smtp_port=_closed_port(), smtp_tls="none"), {"password": user[1]})
    assert [p.step for p in r.problems] == ["smtp tcp"]
    # STARTTLS without a pin: the self-signed certificate is refused
    r = _probe(store, _account(imap_port=server.port, login=user[0], smtp_host="127.0.0.1",
                               smtp_port=server.submission_port, smtp_tls="starttls"), {"password": user[1]})
    assert [p.step for p in r.problems] == ["smtp tls"], r.problems


def test_open_session_password_and_service(server, user, store):
    a = store.add(owner=user[0], imap_host="127.0.0.1", imap_port=server.port, imap_tls="none", login=user[0],
                  secret={"password": user[1]})
    local = store.add(owner=user[0], kind="local", imap_host="127.0.0.1", imap_port=server.port, imap_tls="none",
                      login=user[0], auth="service")

    async def run():
        for account in (a, local):
            conn = await open_session(store, account)
            folders = await conn.list_folders()
            assert "INBOX" in {f.name for f in folders}
            await conn.logout()
    asyncio.run(run())


class FakeImap:
    """A stand-in IMAP server that sends `greeting`, then answers every
    command OK with `caps` as its capabilities."""

    def __init__(self, greeting: bytes, caps: str = "IMAP4 AUTH=PLAIN"):
        self.greeting, self.caps = greeting, caps
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer):
        writer.write(self.greeting)
        while line := await reader.readline():
            tag, _, command = line.decode().partition(" ")
            if command.upper().startswith("CAPABILITY"):
                writer.write(f"* CAPABILITY {self.caps}\r\n".encode())
            writer.write(f"{tag} OK done\r\n".encode())
            if command.upper().startswith("LOGOUT"):
                break
        writer.close()

    def close(self):
        async def stop():
            self.server.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_missing_capability(store):
    fake = FakeImap(b"* OK fake ready\r\n")
    try:
        r = _probe(store, _account(imap_port=fake.port), {"password": "x"})
    finally:
        fake.close()
    assert [p.step for p in r.problems] == ["capability"]
    assert "neither IMAP4rev1 nor IMAP4rev2" in str(r.problems[0]) and "IMAP4" in str(r.problems[0])


def test_bad_greeting(store):
    fake = FakeImap(b"220 smtp.example.net ESMTP ready\r\n")
    try:
        r = _probe(store, _account(imap_port=fake.port), {"password": "x"})
    finally:
        fake.close()
    assert [p.step for p in r.problems] == ["greeting"], r.problems
