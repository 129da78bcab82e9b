"""Stand-ins for the tracker's neighbours (an AccountStore, open_session, a
FactSink) and a TCP proxy that cuts and delays connections."""
from __future__ import annotations

import asyncio
import imaplib
import threading
import time
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert

from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade
from posthouse.imap_client import Endpoint, ImapConnection, NoResponse
from posthouse.tracker.facts import FolderRenamed, FolderReset, MessageChanged, MessageGone, MessageSeen

# The accounts table belongs to the `accounts` part; the lease columns are all
# the tracker touches, so the tests declare just those, on their own MetaData.
test_metadata = MetaData()
accounts_table = Table(
    "accounts", test_metadata,
    Column("id", Integer, primary_key=True),
    Column("state", String(32), nullable=False, default="active"),
    Column("lease_owner", String(200)),
    Column("lease_until", DateTime(timezone=True)),
)


@dataclass
class Account:
    id: int
    login: str
    password: str
    imap_host: str
    imap_port: int
    since: date | None = None
    state: str = "active"
    state_reason: str = ""


class Store:
    """The AccountStore methods the tracker calls."""

    def __init__(self, engine):
        self.engine = engine
        self.accounts: dict[int, Account] = {}
        self.drop_caps: set[str] = set()     # pretend the server lacks these (CONDSTORE, QRESYNC...)
        self.refuse_select: set[str] = set()   # pretend the server answers NO to selecting these
        self.sessions = 0

    def add(self, account: Account) -> Account:
        self.accounts[account.id] = account
        with self.engine.begin() as db:
            db.execute(insert(accounts_table).values(id=account.id, state="active"))
        return account

    def list(self, owner=None):
        return list(self.accounts.values())

    def get(self, id):
        return self.accounts.get(id)

    def set_state(self, id, state, reason=""):
        self.accounts[id].state = state
        self.accounts[id].state_reason = reason


async def open_session(store: Store, account: Account) -> ImapConnection:
    store.sessions += 1
    conn = await ImapConnection.open(Endpoint(account.imap_host, account.imap_port, tls="none", timeout=5))
    try:
        await conn.login(account.login, account.password)
    except BaseException:
        conn.close()
        raise
    conn.capabilities = conn.capabilities - store.drop_caps
    if store.refuse_select:
        select = conn.select

        async def refusing_select(folder, **kw):
            if folder in store.refuse_select:
                raise NoResponse("command", None, "you may not (test)")
            return await select(folder, **kw)
        conn.select = refusing_select
    return conn


def make_db(tmp_path):
    engine = make_engine(None, str(tmp_path))
    upgrade(engine)
    test_metadata.create_all(engine)
    return engine


class RecordingSink:
    """A FactSink that keeps every fact, and the state they describe."""

    def __init__(self):
        self.facts: list = []
        self.lock = threading.Lock()
        self.fail = 0           # fail this many next apply() calls

    def apply(self, facts) -> None:
        with self.lock:
            if self.fail:
                self.fail -= 1
                raise RuntimeError("sink down (test)")
            self.facts.extend(facts)

    def of(self, kind) -> list:
        with self.lock:
            return [f for f in self.facts if isinstance(f, kind)]

    def places(self) -> dict:
        """Place -> {"message_id", "flags", "gone"} after replaying every fact."""
        out: dict = {}
        with self.lock:
            facts = list(self.facts)
        for f in facts:
            if isinstance(f, MessageSeen):
                out[f.place] = {"message_id": f.message_id, "flags": f.flags, "gone": False, "fact": f}
            elif isinstance(f, MessageChanged) and f.place in out:
                out[f.place]["flags"] = f.flags
            elif isinstance(f, MessageGone) and f.place in out:
                out[f.place]["gone"] = True
            elif isinstance(f, FolderReset):
                for p, v in out.items():
                    if p.account_id == f.account_id and p.folder == f.folder and p.uidvalidity == f.old_uidvalidity:
                        v["gone"] = True
            elif isinstance(f, FolderRenamed):
                out = {(type(p)(p.account_id, f.new_name, p.uidvalidity, p.uid)
                        if p.account_id == f.account_id and p.folder == f.old_name else p): v
                       for p, v in out.items()}
        return out

    def live(self, folder: str | None = None) -> dict:
        return {p: v for p, v in self.places().items() if not v["gone"] and (folder is None or p.folder == folder)}

    def live_ids(self, folder: str | None = None) -> set:
        return {v["message_id"] for v in self.live(folder).values()}


async def wait_until(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Proxy:
    """127.0.0.1:port -> target. cut() drops every connection; cut_after
    drops the next connection after that many bytes from the server; delay
    holds each chunk from the server that long."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.delay = 0.0
        self.cut_after: int | None = None
        self.client_bytes = bytearray()      # everything clients sent (to count IDLEs)
        self._writers: set = set()
        self.server = None
        self.port = 0

    async def start(self) -> "Proxy":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aenter__(self) -> "Proxy":
        return await self.start()

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        self.cut()
        self.server.close()
        await self.server.wait_closed()

    def cut(self):
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _handle(self, cr, cw):
        try:
            sr, sw = await asyncio.open_connection(*self.target)
        except OSError:
            cw.close()
            return
        self._writers |= {cw, sw}
        limit, self.cut_after = self.cut_after, None

        async def up():
            while data := await cr.read(65536):
                self.client_bytes += data
                sw.write(data)
                await sw.drain()

        async def down():
            passed = 0
            while data := await sr.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                if limit is not None and passed + len(data) >= limit:
                    cw.write(data[:max(0, limit - passed)])
                    await cw.drain()
                    raise ConnectionResetError("cut by the test proxy")
                passed += len(data)
                cw.write(data)
                await cw.drain()

        try:
            await asyncio.gather(up(), down())
        except OSError:
            pass
        finally:
            for w in (cw, sw):
                w.transport.abort()
                self._writers.discard(w)


def imap_client(host, port, login, password) -> imaplib.IMAP4:
    c = imaplib.IMAP4(host, port)
    c.login(login, password)
    return c


def message(i: int, tag: str = "m", attachment: bool = False, extra: str = "") -> bytes:
    head = (f"From: Alice <alice{i}@example.org>\r\nTo: bob@example.com\r\nSubject: {tag} number {i}\r\n"
            f"Date: Mon, 1 Dec 2026 10:{i % 60:02d}:00 +0000\r\nMessage-ID: <{tag}{i}@example.org>\r\n{extra}")
    if not attachment:
        return (head + f"\r\nHello {i}\r\n").encode()
    return (head + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee the attached file\r\n"
            '--b1\r\nContent-Type: application/pdf; name="cv.pdf"\r\nContent-Disposition: attachment; filename="cv.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + "QUJD" * 2000 + "\r\n--b1--\r\n").encode()


def append(client: imaplib.IMAP4, folder: str, data: bytes, flags: str | None = None):
    typ, resp = client.append(folder, flags, None, data)
    assert typ == "OK", resp
