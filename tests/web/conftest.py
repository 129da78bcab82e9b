"""The REST API on a real uvicorn on 127.0.0.1 (a free port), over stand-in
services (fakes.py), with real tokens in a real SQLite database."""
from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade
from posthouse.web.app import create_app
from posthouse.web.server import WebServer
from posthouse.web.tokens import TokenStore

from .fakes import FakeAccount, FakeAccounts, FakeCrm, FakeDocuments


class ServedApp:
    """An app served by WebServer on its own event loop in a thread."""

    def __init__(self, app):
        self.loop = asyncio.new_event_loop()
        self.web = WebServer(app, "127.0.0.1", 0, graceful=1.0)
        ready = threading.Event()
        failed: list = []

        def run():
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self.web.start())
            except BaseException as e:
                failed.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(20)
        if failed:
            raise failed[0]
        self.url = self.web.url

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.web.close(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Originals:
    """fetch_original stand-in: bytes for the places it holds, None for the rest,
    an error for places in `broken` accounts."""

    def __init__(self):
        self.messages: dict[tuple, bytes] = {}
        self.broken: set[int] = set()
        self.asked: list[dict] = []

    async def __call__(self, place: dict) -> bytes | None:
        self.asked.append(place)
        if place["account_id"] in self.broken:
            raise ConnectionRefusedError("imap.example.org port 993: connection refused")
        return self.messages.get((place["account_id"], place["folder"], place["uid"]))


class Api:
    def __init__(self, tmp):
        self.engine = make_engine(None, str(tmp))
        upgrade(self.engine)
        self.tokens = TokenStore(self.engine)
        self.crm = FakeCrm()
        self.accounts = FakeAccounts(FakeAccount(1, "alice", addresses=["alice@example.com"]),
                                     FakeAccount(2, "bob", addresses=["bob@example.com"]),
                                     FakeAccount(3, "alice", kind="local", addresses=["a2@example.com"]))
        self.documents = FakeDocuments()
        self.originals = Originals()
        self.sent: list = []

        async def sender(account, body, attachments):
            self.sent.append((account.id, body, attachments))
            return {"message_id": f"<sent{len(self.sent)}@example.com>",
                    "appended": {"folder": "Sent", "uidvalidity": 1, "uid": len(self.sent)}}

        def classify(raw: bytes) -> dict:
            return {"kind": "bounce" if b"delivery-status" in raw else "other", "hard": None, "reason": None,
                    "recipients": []}

        self.app = create_app(None, self.engine, self.crm, self.accounts, tokens=self.tokens,
                              fetch_original=self.originals, account_status=lambda id: {"messages_done": id},
                              documents_service=self.documents, sender=sender, classifier=classify)
        self.served = ServedApp(self.app)
        self.url = self.served.url
        self.alice_token = self.tokens.create("alice", "tests")[1]
        self.bob_token = self.tokens.create("bob", "tests")[1]
        self.alice = self.client(self.alice_token)
        self.bob = self.client(self.bob_token)
        self.anonymous = httpx.Client(base_url=self.url, timeout=30)

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def close(self):
        for c in (self.alice, self.bob, self.anonymous):
            c.close()
        self.served.stop()
        self.engine.dispose()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    a = Api(tmp_path_factory.mktemp("web"))
    yield a
    a.close()
