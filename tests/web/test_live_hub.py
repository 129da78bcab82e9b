"""web/live.py's hub without a browser: which facts say which folder changed,
the tracker's sink publishing only after the CRM applied a batch, delivery
from the tracker's threads, the per-user bound, a listener far behind told
"everything", and close() ending every stream."""
from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from posthouse.tracker.facts import FolderRenamed, FolderReset, MessageChanged, MessageGone, MessageSeen, Place
from posthouse.web.live import ALL, MAX_PENDING_FOLDERS, Hub, TooManyListeners, changes_of


def seen(folder: str, uid: int, account: int = 1) -> MessageSeen:
    return MessageSeen(place=Place(account, folder, 7, uid), message_id=f"m{uid}@x", emailid=None,
                       content_hash="0" * 64, internaldate=datetime.now(timezone.utc), size=10, flags=(),
                       modseq=None, skeleton=b"Subject: x\r\n\r\n")


def account(id: int) -> SimpleNamespace:
    return SimpleNamespace(id=id)


def test_changes_of_each_fact():
    facts = [seen("INBOX", 1), seen("INBOX", 2), MessageChanged(Place(1, "INBOX", 7, 1), ("\\Flagged",), 5),
             MessageGone(Place(2, "Sent", 7, 3)), FolderReset(1, "Junk", 1, 2), FolderRenamed(1, "Old", "New")]
    assert changes_of(facts) == {(1, "INBOX"): {"new", "flags"}, (2, "Sent"): {"gone"},
                                 (1, "Junk"): {"folder"}, (1, "Old"): {"folder"}, (1, "New"): {"folder"}}
    assert changes_of([]) == {}


class Crm:
    def __init__(self, fail: bool = False):
        self.fail, self.applied = fail, []
        self.engine = "the crm's engine"

    def apply(self, facts):
        if self.fail:
            raise RuntimeError("database is locked")
        self.applied.append(list(facts))


def test_sink_publishes_after_apply_and_never_for_a_failed_batch():
    async def run():
        hub = Hub(asyncio.get_running_loop())
        listener = hub.listen("alice", account(1))
        good, bad = hub.sink(Crm()), hub.sink(Crm(fail=True))
        with pytest.raises(RuntimeError):
            await asyncio.to_thread(bad.apply, [seen("INBOX", 9)])
        await asyncio.sleep(0.05)
        assert listener.take() == {}
        assert good.engine == "the crm's engine"        # (the rest of the CRM shows through)
        await asyncio.to_thread(good.apply, [seen("INBOX", 1), MessageGone(Place(2, "INBOX", 7, 1))])
        await asyncio.wait_for(listener.wake.wait(), 10)
        assert listener.take() == {"INBOX": {"new"}}      # (account 2's change is not account 1's)
        hub.leave(listener)
    asyncio.run(run())


def test_many_threads_publish_safely():
    async def run():
        hub = Hub(asyncio.get_running_loop())
        listener = hub.listen("alice", account(1))
        threads = [threading.Thread(target=lambda n=n: [hub.publish(1, f"F{n}", ("new",)) for _ in range(100)])
                   for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        await asyncio.sleep(0.1)
        assert listener.take() == {f"F{n}": {"new"} for n in range(8)}
        hub.leave(listener)
    asyncio.run(run())


def test_bounded_per_user_and_far_behind_listeners_coalesce():
    async def run():
        hub = Hub(asyncio.get_running_loop(), max_per_user=2)
        first, second = hub.listen("alice", account(1)), hub.listen("alice", account(3))
        with pytest.raises(TooManyListeners):
            hub.listen("alice", account(1))
        other = hub.listen("bob", account(2))       # (another user's bound is their own)
        for n in range(MAX_PENDING_FOLDERS + 5):
            hub.publish(1, f"folder {n}", ("new",))
        assert first.take() == {ALL: {"folder"}}
        assert second.take() == {} and other.take() == {}
        hub.leave(second)
        third = hub.listen("alice", account(1))
        hub.leave(third)
        await hub.close()
        assert first.closed and other.closed and first.wake.is_set()
        assert hub.count("alice") == 0 and hub.count("bob") == 0
        with pytest.raises(TooManyListeners):
            hub.listen("alice", account(1))     # stopping: no new streams
    asyncio.run(run())


def test_watcher_runs_only_while_someone_listens_and_the_tracker_does_not_follow():
    async def run():
        opened = []

        async def open_imap(acct):
            opened.append(acct.id)
            raise OSError("connection refused")
        hub = Hub(asyncio.get_running_loop(), open_imap=open_imap, watch_check=0.01, watch_retry=0.01)
        hub.followed = lambda account_id: account_id == 2
        a = hub.listen("alice", account(1))
        b = hub.listen("bob", account(2))
        await asyncio.sleep(0.2)
        assert 1 in opened and 2 not in opened        # account 2 is the tracker's
        hub.leave(a)
        await asyncio.sleep(0.05)
        count = len(opened)
        await asyncio.sleep(0.2)
        assert len(opened) == count                     # nobody listens to 1: no more tries
        assert set(hub._watchers) == {2}
        await hub.close()
        assert not hub._watchers and b.closed
    asyncio.run(run())


@pytest.mark.parametrize("push", ["NOTIFY", "IDLE"])
def test_watcher_reports_new_mail_and_flags_from_a_real_server(server, user, push):
    """The fallback watcher on a real Posthouse: NOTIFY, and IDLE as on a
    server without NOTIFY; an APPEND and a flag set by another client (imaplib)."""
    import imaplib
    from posthouse.imap_client.connection import ImapConnection
    from posthouse.imap_client.transport import Endpoint

    async def open_imap(acct):
        conn = await ImapConnection.open(Endpoint(server.host, server.port, tls="none", timeout=10))
        await conn.login(*user)
        if push == "IDLE":
            conn.capabilities = frozenset(c for c in conn.capabilities if c != "NOTIFY")
        return conn

    other = imaplib.IMAP4(server.host, server.port)
    other.login(*user)

    async def wait_for(listener, what: str) -> None:
        for _ in range(100):        # (the watcher connects, then waits: append until it reports)
            if what == "new":
                await asyncio.to_thread(other.append, "INBOX", None, None, b"Subject: hi\r\n\r\nhello\r\n")
            else:
                await asyncio.to_thread(lambda: (other.select("INBOX"), other.store("1:*", "-FLAGS", r"\Flagged"),
                                                 other.store("1:*", "+FLAGS", r"\Flagged")))
            try:
                await asyncio.wait_for(listener.wake.wait(), 0.5)
            except TimeoutError:
                continue
            assert "INBOX" in listener.take()
            return
        raise AssertionError(f"no {what} reported")

    async def run():
        hub = Hub(asyncio.get_running_loop(), open_imap=open_imap, watch_check=0.5)
        listener = hub.listen(user[0], account(1), ("INBOX",))
        try:
            await wait_for(listener, "new")
            await asyncio.sleep(0.5)
            listener.take()
            await wait_for(listener, "flags")
        finally:
            await hub.close()
    try:
        asyncio.run(run())
    finally:
        other.logout()
