"""The shared index and its views: a view starts on the index's own UID
array (no copy at SELECT), and neither side ever sees the other's changes
before it takes them in."""
import asyncio

from posthouse.imap.mailbox_index import SelectedView, SharedMailbox
from posthouse.store.api import IndexEntry, MailboxInfo, MessageAdded, MessagesExpunged


def entry(uid: int, modseq: int = 1) -> IndexEntry:
    return IndexEntry(uid, frozenset(), modseq, 100, 0.0)


def loaded(uids) -> SharedMailbox:
    async def make():
        shared = SharedMailbox(1)
        shared.load(MailboxInfo(1, 1, "INBOX", 7, max(uids) + 1, 1, None), [entry(u) for u in uids])
        return shared
    return asyncio.run(make())


def select(shared: SharedMailbox) -> SelectedView:
    view = SelectedView(shared, readonly=False)
    shared.views.add(view)          # as Session.select does
    return view


def test_a_new_view_shares_the_array_until_either_side_changes():
    shared = loaded([1, 2, 3])
    first = select(shared)
    assert first.uids is shared.uids
    shared.apply(MessageAdded(1, entry(4, 2)))
    assert list(first.uids) == [1, 2, 3]            # not told yet: its numbers stand
    assert list(shared.uids) == [1, 2, 3, 4]
    second = select(shared)
    assert list(second.uids) == [1, 2, 3, 4]
    assert first.take_added() == [4]
    assert list(first.uids) == [1, 2, 3, 4]
    # The second view's array is still the index's: the index changes a copy.
    shared.apply(MessageAdded(1, entry(5, 3)))
    assert list(second.uids) == [1, 2, 3, 4] and list(shared.uids) == [1, 2, 3, 4, 5]
    assert second.take_added() == [5] and list(second.uids) == [1, 2, 3, 4, 5]
    assert list(first.uids) == [1, 2, 3, 4]


def test_expunges_reach_a_sharing_view_only_when_it_takes_them():
    shared = loaded(list(range(1, 21)))
    view = select(shared)
    shared.apply(MessagesExpunged(1, list(range(2, 20)), 5))
    assert len(view.uids) == 20 and list(shared.uids) == [1, 20]
    assert view.take_expunged() == list(range(19, 1, -1))
    assert list(view.uids) == [1, 20]
    shared.apply(MessageAdded(1, entry(21, 6)))
    assert view.take_added() == [21] and list(view.uids) == [1, 20, 21]
    assert list(shared.uids) == [1, 20, 21]


def test_a_view_not_yet_shown_takes_changes_as_its_first_state():
    # SELECT waited (for write-behind STOREs) after making its view: an expunge
    # meanwhile is part of what its EXISTS says, not an EXPUNGE after it.
    shared = loaded([1, 2, 3])
    view = select(shared)
    shared.apply(MessagesExpunged(1, [2], 5))
    view.flag_changes.add(3)
    view.start_from_now()
    assert list(view.uids) == [1, 3] and view.exists == 2
    assert view.take_expunged() == [] and not view.flag_changes


class _Hub:
    def __init__(self):
        self.followers = {}

    def follow(self, mailbox_id, fn):
        self.followers.setdefault(mailbox_id, []).append(fn)

    def unfollow(self, mailbox_id, fn):
        self.followers[mailbox_id].remove(fn)

    def publish(self, mailbox_id, event):
        for fn in list(self.followers.get(mailbox_id, [])):
            fn(event)


class _Service:
    """What the registry asks of the store service: load_index, and the hub."""

    def __init__(self, names):
        self.hub = _Hub()
        self.names = names      # mailbox id -> (user id, name) as the store has them now

    async def call(self, method, mailbox_id):
        assert method == "load_index"
        user_id, name = self.names[mailbox_id]
        return MailboxInfo(mailbox_id, user_id, name, 7, 1, 1, None), []


def test_a_name_leads_to_an_open_mailbox_only_while_the_registry_follows_it():
    from posthouse.imap.registry import MailboxRegistry
    from posthouse.store.api import MailboxGone

    async def run():
        service = _Service({1: (10, "Box"), 2: (10, "Other"), 3: (11, "Box")})
        registry = MailboxRegistry(service, keep_mailboxes=1)
        box = await registry.acquire(1)
        registry.remember_name(box, 10, "Box")
        assert registry.by_name(10, "Box") is box
        assert registry.by_name(11, "Box") is None           # another user's name is theirs
        registry.remember_name(box, 11, "Box")               # and can't be pinned on this one
        registry.remember_name(box, 10, "Wrong")             # nor a name the mailbox doesn't have
        assert registry.by_name(11, "Box") is None and registry.by_name(10, "Wrong") is None
        registry.release(box)
        assert registry.by_name(10, "Box") is box            # kept open, unselected
        other = await registry.acquire(2)
        registry.release(other)                              # pushes Box out (keep 1)
        assert registry.by_name(10, "Box") is None and not service.hub.followers[1]
        box = await registry.acquire(1)
        registry.remember_name(box, 10, "Box")
        service.hub.publish(1, MailboxGone(1))               # renamed or deleted
        assert registry.by_name(10, "Box") is None
        service.names[1] = (10, "Renamed")                   # a rename the hub announced only
        fresh = await registry.acquire(1)                    # after the load had begun
        registry.remember_name(fresh, 10, "Box")
        assert registry.by_name(10, "Box") is None

    asyncio.run(run())


class _Store:
    """What a catch-up reads: the messages the database has now."""

    def __init__(self, uids, uidnext=None, modseq=1):
        self.rows = {u: entry(u) for u in uids}
        self.uidnext = uidnext or max(uids, default=0) + 1
        self.modseq = modseq
        self.reads = []

    async def read(self, mailbox_id, from_uid):
        self.reads.append(from_uid)
        info = MailboxInfo(mailbox_id, 1, "INBOX", 7, self.uidnext, self.modseq, None)
        return info, [self.rows[u] for u in sorted(self.rows) if u >= from_uid]


def _with_store(uids, store: _Store) -> SharedMailbox:
    shared = SharedMailbox(1, store.read)
    shared.load(MailboxInfo(1, 1, "INBOX", 7, max(uids) + 1, 1, None), [entry(u) for u in uids])
    return shared


def test_an_event_beyond_a_gap_waits_for_the_uids_below_it():
    async def run():
        store = _Store([1, 2, 3, 4, 5])
        shared = _with_store([1, 2], store)
        view = select(shared)
        shared.apply(MessageAdded(1, entry(5, 3)))      # 3 and 4: their events were lost
        assert not shared.loaded.is_set() and list(shared.uids) == [1, 2]
        shared.apply(MessageAdded(1, entry(6, 4)))      # held until the catch-up is done
        store.rows[6] = entry(6, 4)
        await shared.caught_up()
        assert store.reads == [3]                      # only what it may have missed
        assert list(shared.uids) == [1, 2, 3, 4, 5, 6] and shared.next_uid == 7
        assert view.take_added() == [3, 4, 5, 6]
        # An event for a UID below next_uid that it doesn't have: gone already, not shown late.
        shared.apply(MessageAdded(1, entry(4, 2)))
        shared.apply(MessageAdded(1, entry(7, 5)))
        assert view.take_added() == [7]
    asyncio.run(run())


def test_reading_everything_again_takes_in_new_messages_flags_and_expunges():
    async def run():
        store = _Store([1, 3, 4, 5], uidnext=6, modseq=9)
        store.rows[3] = IndexEntry(3, frozenset({"\\Seen"}), 8, 100, 0.0)
        shared = _with_store([1, 2, 3], store)
        view = select(shared)
        shared.catch_up(everything=True)
        shared.apply(MessageAdded(1, entry(4, 7)))      # published after the death: waits
        await shared.caught_up()
        assert store.reads == [0]
        assert list(shared.uids) == [1, 3, 4, 5] and 2 not in shared.entries
        assert shared.entries[3].flags == {"\\Seen"} and 3 in view.flag_changes
        assert view.take_expunged() == [2]
        assert view.take_added() == [4, 5]
        assert shared.info.highestmodseq == 9 and shared.info.uidnext == 6
    asyncio.run(run())


def test_changes_lost_while_the_index_loads_are_read_before_it_is_shown():
    async def run():
        store = _Store([1, 2, 3])
        shared = SharedMailbox(1, store.read)
        shared.catch_up(everything=True)                # the store died during the first read
        shared.load(MailboxInfo(1, 1, "INBOX", 7, 3, 1, None), [entry(1), entry(2)])
        assert not shared.loaded.is_set()
        await shared.caught_up()
        assert list(shared.uids) == [1, 2, 3]
    asyncio.run(run())


class _Log:
    """A change log (Store.changes_since) over messages kept here, each with its MODSEQ."""

    def __init__(self, uids, modseq=1):
        self.rows = {u: entry(u, modseq) for u in uids}
        self.expunged: dict[int, int] = {}
        self.modseq = modseq
        self.uidnext = max(uids, default=0) + 1
        self.reads = []

    def change(self, **kw):
        self.modseq += 1
        for uid in kw.get("add", ()):
            self.rows[uid] = entry(uid, self.modseq)
            self.uidnext = uid + 1
        for uid in kw.get("flag", ()):
            self.rows[uid] = IndexEntry(uid, frozenset({"\\Seen"}), self.modseq, 100, 0.0)
        for uid in kw.get("expunge", ()):
            del self.rows[uid]
            self.expunged[uid] = self.modseq
        return self.modseq

    async def read(self, mailbox_id, from_uid):
        raise AssertionError("a whole read where the change log would do")

    async def changes(self, mailbox_id, since, from_uid):
        self.reads.append((since, from_uid))
        info = MailboxInfo(mailbox_id, 1, "INBOX", 7, self.uidnext, self.modseq, None)
        rows = [self.rows[u] for u in sorted(self.rows) if u >= from_uid or self.rows[u].modseq > since]
        return info, rows, sorted(u for u, m in self.expunged.items() if m > since)


def test_another_nodes_changes_are_read_from_the_last_modseq_not_the_whole_mailbox():
    from posthouse.store.api import FlagsChanged, MailboxChanged

    async def run():
        log = _Log([1, 2, 3, 4])
        shared = SharedMailbox(1, log.read, log.changes)
        shared.load(MailboxInfo(1, 1, "INBOX", 7, 5, 1, None), [entry(u) for u in (1, 2, 3, 4)])
        view = select(shared)
        # Another node: a flag change, an expunge, a new message; then its wake-up.
        log.change(flag=[2])
        log.change(expunge=[3])
        top = log.change(add=[5])
        shared.apply(MailboxChanged(1, top, "afx"))
        await shared.caught_up()
        assert log.reads == [(1, 5)]
        assert shared.entries[2].flags == {"\\Seen"} and 2 in view.flag_changes
        assert view.take_expunged() == [3] and view.take_added() == [5]
        assert shared.synced == shared.info.highestmodseq == 4 and shared.next_uid == 6
        # Told again (or by the check) of what it has: nothing read.
        shared.apply(MailboxChanged(1, 4, "?"))
        assert shared.loaded.is_set() and log.reads == [(1, 5)]
        # Our own change numbered 6 comes while another's (5) is unheard of: 5 is read first.
        log.change(flag=[1])
        own = log.change(add=[6])
        shared.apply(MessageAdded(1, entry(6, own)))
        assert not shared.loaded.is_set() and 6 not in shared.entries     # held
        await shared.caught_up()
        assert log.reads[-1] == (4, 6)
        assert shared.entries[1].flags == {"\\Seen"} and view.take_added() == [6]
        assert shared.synced == 6
        # Our own next change follows on: no read.
        nxt = log.change(flag=[6])
        shared.apply(FlagsChanged(1, 6, frozenset({"\\Seen"}), nxt))
        assert shared.loaded.is_set() and len(log.reads) == 2 and shared.synced == nxt
    asyncio.run(run())


def test_a_forgotten_expunge_history_makes_the_catch_up_read_everything():
    from posthouse.store.api import MailboxChanged

    async def run():
        reads = []

        async def read(mailbox_id, from_uid):
            reads.append(from_uid)
            return MailboxInfo(1, 1, "INBOX", 7, 4, 9, None), [entry(1), entry(3)]

        async def changes(mailbox_id, since, from_uid):
            return MailboxInfo(1, 1, "INBOX", 7, 4, 9, None), [], None
        shared = SharedMailbox(1, read, changes)
        shared.load(MailboxInfo(1, 1, "INBOX", 7, 3, 1, None), [entry(1), entry(2)])
        view = select(shared)
        shared.apply(MailboxChanged(1, 9, "?"))
        await shared.caught_up()
        assert reads == [0] and view.take_expunged() == [2] and view.take_added() == [3]
        assert shared.synced == 9
    asyncio.run(run())
