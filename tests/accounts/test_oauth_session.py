"""open_session with OAuth2 against a stand-in IMAP server that takes
XOAUTH2 and OAUTHBEARER (our own server offers neither): the bearer token
from the stand-in token endpoint reaches it, in the mechanism's format, and a
cached token the server no longer takes is refreshed once."""
from __future__ import annotations

import asyncio
import base64
import json
import threading

import pytest

from posthouse.accounts.store import AccountStore, open_session
from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade
from posthouse.imap_client import LoginFailed
from tests.accounts.standins import TokenEndpoint


class OAuthImap:
    """Answers CAPABILITY, AUTHENTICATE (SASL-IR) and LOGOUT; accepts a bearer
    token in `accepted`; records each initial response."""

    def __init__(self):
        self.accepted: set[str] = set()
        self.seen: list[tuple[str, bytes]] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(5)

    async def _client(self, reader, writer):
        writer.write(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] stand-in ready\r\n")
        while line := await reader.readline():
            tag, _, rest = line.decode().strip().partition(" ")
            words = rest.split()
            command = words[0].upper() if words else ""
            if command == "CAPABILITY":
                writer.write(b"* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER\r\n")
            elif command == "AUTHENTICATE":
                ir = base64.b64decode(words[2])
                self.seen.append((words[1].upper(), ir))
                token = ir.split(b"auth=Bearer ")[1].split(b"\x01")[0].decode()
                if token not in self.accepted:
                    error = base64.b64encode(json.dumps({"status": "invalid_token"}).encode())
                    writer.write(b"+ " + error + b"\r\n")
                    await reader.readline()
                    writer.write(f"{tag} NO [AUTHENTICATIONFAILED] invalid token\r\n".encode())
                    continue
                writer.write(f"{tag} OK [CAPABILITY IMAP4rev1 IDLE] welcome\r\n".encode())
                continue
            elif command == "LOGOUT":
                writer.write(b"* BYE bye\r\n" + f"{tag} OK done\r\n".encode())
                break
            writer.write(f"{tag} OK done\r\n".encode())
        writer.close()

    def close(self):
        async def stop():
            self.server.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def imap():
    s = OAuthImap()
    yield s
    s.close()


@pytest.fixture
def endpoint():
    e = TokenEndpoint()
    yield e
    e.close()


@pytest.fixture
def store(tmp_path):
    engine = make_engine(None, str(tmp_path))
    upgrade(engine)
    yield AccountStore(engine, str(tmp_path))
    engine.dispose()


def _account(store, imap, endpoint, mechanism):
    return store.add(owner="alice", imap_host="127.0.0.1", imap_port=imap.port, imap_tls="none",
                     login="alice@example.net", auth="oauth2", oauth_provider="corp",
                     secret={"refresh_token": "rt-1", "client_id": "cid", "token_endpoint": endpoint.url,
                             "mechanism": mechanism})


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_oauth_login(store, imap, endpoint, mechanism):
    account = _account(store, imap, endpoint, mechanism)
    imap.accepted = {"at-1"}

    async def run():
        conn = await open_session(store, account)
        assert "IDLE" in conn.capabilities
        await conn.logout()
    asyncio.run(run())
    assert imap.seen[0][0] == mechanism
    if mechanism == "XOAUTH2":
        assert imap.seen[0][1] == b"user=alice@example.net\x01auth=Bearer at-1\x01\x01"
    else:
        assert imap.seen[0][1] == (f"n,a=alice@example.net,\x01host=127.0.0.1\x01port={imap.port}"
                                   "\x01auth=Bearer at-1\x01\x01").encode()


def test_refused_cached_token_refreshed_once(store, imap, endpoint):
    account = _account(store, imap, endpoint, "XOAUTH2")
    imap.accepted = {"at-1"}

    async def login_once():
        conn = await open_session(store, account)
        await conn.logout()
    asyncio.run(login_once())
    imap.accepted = {"at-2"}       # the provider dropped at-1 early
    asyncio.run(login_once())
    assert [t for _, t in imap.seen] == [b"user=alice@example.net\x01auth=Bearer at-1\x01\x01",
                                         b"user=alice@example.net\x01auth=Bearer at-1\x01\x01",
                                         b"user=alice@example.net\x01auth=Bearer at-2\x01\x01"]
    imap.accepted = set()           # now nothing: the error reaches the caller, after one refresh only
    with pytest.raises(LoginFailed) as e:
        asyncio.run(login_once())
    assert e.value.code == "AUTHENTICATIONFAILED"
    assert len(endpoint.requests) == 3
