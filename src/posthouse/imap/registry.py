"""Open mailboxes: one SharedMailbox per mailbox any session has selected.

A mailbox no session has selected any more stays loaded (and kept current by
the change hub) for a while, so a client that selects it again, or selects
it anew in every session, doesn't reload its whole index: the least recently
released ones are dropped beyond a bound on mailboxes and on messages.
"""
from __future__ import annotations

from collections import OrderedDict

from ..store.service import StoreService
from .mailbox_index import SharedMailbox


class MailboxRegistry:
    def __init__(self, service: StoreService, keep_mailboxes: int = 256, keep_messages: int = 1_000_000):
        self.service = service
        self.open: dict[int, SharedMailbox] = {}
        self.keep_mailboxes = keep_mailboxes
        self.keep_messages = keep_messages
        self._unused: OrderedDict[int, SharedMailbox] = OrderedDict()
        self._unused_messages = 0
        # (user id, name) -> open mailbox, so SELECT of an open mailbox reads
        # nothing from the database. Trusted only while that mailbox is open
        # here, where the change hub marks it gone on a rename or delete; and
        # ids are never given twice, so a name can't lead to another's mailbox.
        self._named: dict[tuple[int, str], SharedMailbox] = {}
        # Changes committed unannounced (a store process died with their
        # replies): every mailbox kept here reads the store again.
        follow = getattr(service, "follow_lost_changes", None)
        if follow is not None:
            follow(self._changes_lost)

    def _changes_lost(self, mailbox_ids=None) -> None:
        for shared in list(self.open.values()):
            if mailbox_ids is None or shared.id in mailbox_ids:
                shared.catch_up(everything=True)

    async def _read_index(self, mailbox_id: int, from_uid: int):
        return await self.service.call("load_index", mailbox_id, from_uid)

    async def _read_changes(self, mailbox_id: int, modseq: int, from_uid: int):
        return await self.service.call("changes_since", mailbox_id, modseq, from_uid)

    async def acquire(self, mailbox_id: int) -> SharedMailbox:
        shared = self.open.get(mailbox_id)
        if shared is not None and shared.gone:
            self._drop(shared)
            shared = None
        if shared is not None and self._unused.pop(mailbox_id, None) is not None:
            self._unused_messages -= shared.cached_size
        if shared is None:
            changes = self._read_changes if hasattr(getattr(self.service, "store", None), "changes_since") else None
            shared = SharedMailbox(mailbox_id, self._read_index, changes)
            self.open[mailbox_id] = shared
            # Follow changes before loading, so nothing committed meanwhile is missed.
            self.service.hub.follow(mailbox_id, shared.apply)
            try:
                info, entries = await self.service.call("load_index", mailbox_id)
            except BaseException:
                self._drop(shared)
                raise
            shared.load(info, entries)
        else:
            await shared.loaded.wait()
        shared.refs += 1
        return shared

    def by_name(self, user_id: int, name: str) -> SharedMailbox | None:
        """The open mailbox of that user and name, if one is known to be open."""
        shared = self._named.get((user_id, name))
        if shared is None or shared.gone or self.open.get(shared.id) is not shared:
            return None
        return shared

    # STATUS items an open mailbox's index answers as the store would.
    INDEX_STATUS_ITEMS = frozenset(("MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ"))

    def counts(self, mailbox_id: int, items) -> dict | None:
        """STATUS items of a mailbox held here (selected, or kept loaded), from
        its index: the store counts a folder by reading every message row
        (~0.5 s at 100,000), the index knows them. None if it isn't held and
        current (loading, reading changes again, gone) or an item needs the
        store (RECENT, SIZE, DELETED...)."""
        shared = self.open.get(mailbox_id)
        if (shared is None or shared.gone or not shared.loaded.is_set() or shared.info is None
                or not self.INDEX_STATUS_ITEMS.issuperset(items)):
            return None
        info = shared.info
        return {"MESSAGES": len(shared.uids), "UNSEEN": len(shared.unseen), "UIDNEXT": info.uidnext,
                "UIDVALIDITY": info.uidvalidity, "HIGHESTMODSEQ": info.highestmodseq}

    def remember_name(self, shared: SharedMailbox, user_id: int, name: str) -> None:
        """After a SELECT by name: that name leads to this open mailbox. Its
        info was read after the hub followed it, so the name it holds is its
        name now, unless it is gone (and then it is not remembered)."""
        info = shared.info
        if (not shared.gone and self.open.get(shared.id) is shared and info is not None
                and info.user_id == user_id and info.name == name):
            self._named[(user_id, name)] = shared
            shared.names.add((user_id, name))

    def release(self, shared: SharedMailbox) -> None:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if shared.gone or not shared.loaded.is_set() or len(shared.uids) > self.keep_messages:
            self._drop(shared)
            return
        shared.cached_size = len(shared.uids)
        self._unused[shared.id] = shared
        self._unused_messages += shared.cached_size
        while self._unused and (len(self._unused) > self.keep_mailboxes
                                or self._unused_messages > self.keep_messages):
            _id, oldest = self._unused.popitem(last=False)
            self._unused_messages -= oldest.cached_size
            self._drop(oldest)

    def _drop(self, shared: SharedMailbox) -> None:
        if self.open.get(shared.id) is shared:
            del self.open[shared.id]
        for key in shared.names:
            if self._named.get(key) is shared:
                del self._named[key]
        shared.names.clear()
        self.service.hub.unfollow(shared.id, shared.apply)
