"""Write-behind STORE (imap/write_behind.py): the index answers at once, the
store's events settle it, in order, and a failure in the store is undone."""
import asyncio
import logging

from posthouse.imap.mailbox_index import SelectedView, SharedMailbox
from posthouse.imap.write_behind import store_behind
from posthouse.store.api import FlagsChanged, IndexEntry, MailboxInfo, StoreError, merged_flags
from posthouse.store.service import ChangeHub


class FakeService:
    """send() hands back a future the test settles, as the store process would."""

    def __init__(self):
        self.hub = ChangeHub()
        self.sent: list[tuple] = []
        self.stored: dict[int, frozenset] = {}      # what load_index reads back

    def send(self, method, *args, soon=True):
        future = asyncio.get_running_loop().create_future()
        self.sent.append((method, args, future))
        return future

    def send_behind(self, mailbox_id, uids, mode, flags, applied):
        self.applied = applied      # (several workers: called as the reply comes)
        return self.send("store_flags", mailbox_id, uids, mode, flags, None)

    async def call(self, method, *args):
        assert method == "load_index"
        return None, [IndexEntry(uid, flags, 50, 10, 0.0) for uid, flags in self.stored.items()]


class FakeSession:
    def __init__(self, service, view):
        self.ctx = type("Ctx", (), {"service": service})()
        self.view = view


def _setup(uids=(1, 2)):
    service = FakeService()
    shared = SharedMailbox(1)
    shared.load(MailboxInfo(1, 1, "INBOX", 7, max(uids) + 1, 1, None),
                [IndexEntry(u, frozenset(), 1, 10, 0.0) for u in uids])
    service.hub.follow(1, shared.apply)
    views = []
    for _ in range(2):
        view = SelectedView(shared, readonly=False)
        shared.views.add(view)
        views.append(view)
    return service, shared, [FakeSession(service, v) for v in views]


def test_merged_flags_compares_names_without_case():
    have = frozenset({"\\Seen", "Work"})
    assert merged_flags(have, "add", frozenset({"work", "Later"})) == {"\\Seen", "Work", "Later"}
    assert merged_flags(have, "add", frozenset({"WORK"})) is None
    assert merged_flags(have, "remove", frozenset({"work"})) == {"\\Seen"}
    assert merged_flags(have, "remove", frozenset({"Other"})) is None
    assert merged_flags(have, "set", frozenset({"\\seen", "WORK"})) is None      # same names: no change
    assert merged_flags(have, "set", frozenset()) == frozenset()


def test_the_index_answers_at_once_and_the_stores_events_settle_it():
    async def run():
        service, shared, (mine, other) = _setup()
        store_behind(mine, [1, 2], "add", frozenset({"\\Seen"}))
        # At once, before the store has answered: the index has them, nobody was told yet.
        assert shared.entries[1].flags == {"\\Seen"} and not shared.unseen
        assert not other.view.flag_changes and not mine.view.flag_changes
        await shared.stored(besides=mine.view)         # its own it need not wait for
        waiting = asyncio.ensure_future(shared.stored(besides=other.view))
        await asyncio.sleep(0)
        assert not waiting.done()
        method, args, future = service.sent[0]
        assert method == "store_flags" and args[1:] == ([1, 2], "add", frozenset({"\\Seen"}), None)
        future.set_result(([FlagsChanged(1, 1, frozenset({"\\Seen"}), 2),
                            FlagsChanged(1, 2, frozenset({"\\Seen"}), 2)], []))
        await waiting
        # The other session hears of it (with its MODSEQ); the storing one was answered already.
        assert other.view.flag_changes == {1, 2} and not mine.view.flag_changes
        assert shared.entries[1].modseq == 2 and shared.info.highestmodseq == 2
        assert not shared.behind
        await shared.stored()       # nothing under way: returns at once
    asyncio.run(run())


def test_a_later_store_under_way_keeps_its_flags_when_an_earlier_one_settles():
    async def run():
        service, shared, (mine, other) = _setup()
        store_behind(mine, [1], "add", frozenset({"\\Seen"}))
        store_behind(other, [1], "remove", frozenset({"\\Seen"}))
        assert shared.entries[1].flags == frozenset() and shared.unseen == {1, 2}
        first, second = service.sent[0][2], service.sent[1][2]
        first.set_result(([FlagsChanged(1, 1, frozenset({"\\Seen"}), 2)], []))
        await asyncio.sleep(0)
        # The store's answer to the first is older than what the index shows.
        assert shared.entries[1].flags == frozenset() and shared.entries[1].modseq == 2
        assert 1 in shared.unseen
        assert other.view.flag_changes == {1} and not mine.view.flag_changes
        second.set_result(([FlagsChanged(1, 1, frozenset(), 3)], []))
        await asyncio.sleep(0)
        assert shared.entries[1].flags == frozenset() and shared.entries[1].modseq == 3
        # The first session was told \Seen; now it hears it went.
        assert mine.view.flag_changes == {1}
    asyncio.run(run())


def test_the_storing_session_hears_when_the_store_made_something_else_of_it():
    async def run():
        service, shared, (mine, _other) = _setup()
        store_behind(mine, [1], "add", frozenset({"work"}))
        # Another change reached the store first: it kept "Work" as it was spelled there.
        service.sent[0][2].set_result(([FlagsChanged(1, 1, frozenset({"Work", "\\Flagged"}), 4)], []))
        await asyncio.sleep(0)
        assert shared.entries[1].flags == {"Work", "\\Flagged"}
        assert mine.view.flag_changes == {1}
    asyncio.run(run())


def test_a_store_that_fails_in_the_store_is_read_back_and_told_to_everyone(caplog):
    async def run():
        service, shared, (mine, other) = _setup()
        store_behind(mine, [1, 2], "add", frozenset({"\\Flagged"}))
        assert shared.entries[2].flags == {"\\Flagged"}
        service.stored = {1: frozenset(), 2: frozenset({"\\Seen"})}
        with caplog.at_level(logging.ERROR, logger="posthouse.imap"):
            service.sent[0][2].set_exception(StoreError("disk I/O error"))
            for _ in range(5):
                await asyncio.sleep(0)
        assert "failed in the store" in caplog.text
        assert shared.entries[1].flags == frozenset() and shared.entries[2].flags == {"\\Seen"}
        assert shared.unseen == {1}
        assert mine.view.flag_changes == {1, 2} and other.view.flag_changes == {1, 2}
        assert not shared.behind and not shared._ahead
    asyncio.run(run())


def test_several_workers_the_reply_is_applied_in_order_with_the_others_changes():
    """With several workers the reply is applied as it comes (send_behind's
    applied), before what the frame brings after it: another worker's later
    change to the message is not undone by this STORE's older event, which
    the future's settling (a loop turn later) must not publish again."""
    async def run():
        service, shared, (mine, other) = _setup()
        store_behind(mine, [1], "add", frozenset({"\\Seen"}))
        future = service.sent[0][2]
        ours = ([FlagsChanged(1, 1, frozenset({"\\Seen"}), 2)], [])
        service.applied(ours)                       # the reply, in frame order...
        assert not shared.behind and not shared._ahead
        assert other.view.flag_changes == {1} and not mine.view.flag_changes
        # ...then another worker's later change, in the same frame.
        service.hub.publish([FlagsChanged(1, 1, frozenset({"\\Seen", "\\Flagged"}), 3)])
        future.set_result(ours)
        for _ in range(3):
            await asyncio.sleep(0)
        assert shared.entries[1].flags == {"\\Seen", "\\Flagged"} and shared.entries[1].modseq == 3
        assert mine.view.flag_changes == {1}        # (told the \\Flagged)
    asyncio.run(run())
