"""The shared in-memory index of an open mailbox, and each session's view of it.

Every session that has a mailbox selected shares one SharedMailbox: UIDs,
flags and MODSEQs in memory, fed by the store's change events. FETCH FLAGS,
SEARCH on flags and IDLE read it without touching the database.

Each session keeps its own SelectedView: the UID list that its sequence
numbers refer to, and the changes it has not yet told its client about.
Expunges wait there until the session may announce them (never during
FETCH, STORE or SEARCH), so sequence numbers never shift under a client.
"""
from __future__ import annotations

import asyncio
from bisect import bisect_left

from ..store.api import FlagsChanged, IndexEntry, MailboxGone, MessageAdded, MessagesExpunged

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


class SharedMailbox:
    def __init__(self, mailbox_id: int):
        self.id = mailbox_id
        self.info = None
        self.uids: list[int] = []
        self.entries: dict[int, IndexEntry] = {}
        self.keywords: set[str] = set()
        self.views: set[SelectedView] = set()
        self.refs = 0
        self.cached_size = 0        # messages, while kept loaded with no session (registry)
        self.gone = False
        self.loaded = asyncio.Event()
        self._early: list = []

    def load(self, info, entries) -> None:
        self.info = info
        self.entries = {e.uid: e for e in entries}
        self.uids = [e.uid for e in entries]
        for e in entries:
            self._learn(e.flags)
        early, self._early = self._early, []
        self.loaded.set()
        for event in early:   # changes committed while we were loading
            self.apply(event)

    def _learn(self, flags) -> None:
        for f in flags:
            if not f.startswith("\\"):
                self.keywords.add(f)

    def apply(self, event) -> None:
        if not self.loaded.is_set():
            self._early.append(event)
            return
        if isinstance(event, MessageAdded):
            e = event.entry
            if e.uid in self.entries:
                return
            self.entries[e.uid] = e
            if not self.uids or e.uid > self.uids[-1]:
                self.uids.append(e.uid)
            else:
                self.uids.insert(bisect_left(self.uids, e.uid), e.uid)
            self.info.uidnext = max(self.info.uidnext, e.uid + 1)
            self.info.highestmodseq = max(self.info.highestmodseq, e.modseq)
            self._learn(e.flags)
            for view in self.views:
                view.on_added(e.uid)
        elif isinstance(event, FlagsChanged):
            e = self.entries.get(event.uid)
            if e is None or e.modseq >= event.modseq:
                return
            e.flags = event.flags
            e.modseq = event.modseq
            self.info.highestmodseq = max(self.info.highestmodseq, event.modseq)
            self._learn(event.flags)
            for view in self.views:
                view.on_flags(event.uid)
        elif isinstance(event, MessagesExpunged):
            gone = [u for u in event.uids if u in self.entries]
            if not gone:
                return
            last = {u: self.entries.pop(u).flags for u in gone}
            dead = set(gone)
            self.uids = [u for u in self.uids if u not in dead]
            self.info.highestmodseq = max(self.info.highestmodseq, event.modseq)
            for view in self.views:
                view.on_expunged(last)
        elif isinstance(event, MailboxGone):
            self.gone = True
            for view in self.views:
                view.on_gone()


class SelectedView:
    def __init__(self, shared: SharedMailbox, readonly: bool):
        self.shared = shared
        self.readonly = readonly
        self.uids = list(shared.uids)
        self.expunged: dict[int, frozenset] = {}   # announced-later expunges, with last flags
        self.added: list[int] = []
        self.flag_changes: set[int] = set()
        self.recent: set[int] = set()
        self.known_keywords = set(shared.keywords)
        self.gone = False
        self.listener = None                        # called on any change (IDLE pushes then)

    # -- fed by SharedMailbox -------------------------------------------------
    def on_added(self, uid: int) -> None:
        self.added.append(uid)
        self._changed()

    def on_flags(self, uid: int) -> None:
        self.flag_changes.add(uid)
        self._changed()

    def on_expunged(self, last_flags: dict) -> None:
        for uid, flags in last_flags.items():
            if uid in self.added:
                self.added.remove(uid)      # came and went before we said so
            else:
                self.expunged[uid] = flags
            self.flag_changes.discard(uid)
        self._changed()

    def on_gone(self) -> None:
        self.gone = True
        self._changed()

    def _changed(self) -> None:
        if self.listener is not None:
            self.listener()

    # -- lookups --------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def flags(self, uid: int) -> frozenset:
        e = self.shared.entries.get(uid)
        if e is not None:
            return e.flags
        return self.expunged.get(uid, frozenset())

    def entry(self, uid: int) -> IndexEntry | None:
        return self.shared.entries.get(uid)

    def is_expunged(self, uid: int) -> bool:
        return uid in self.expunged

    def uids_for_seqset(self, seqset, saved: list[int] | None = None) -> list[int]:
        """Message sequence numbers -> UIDs; raises IndexError on numbers out of range."""
        if seqset.saved:
            return [u for u in (saved or []) if self.seq_of(u) is not None]
        n = len(self.uids)
        if n == 0:
            if seqset.contains_star():
                return []     # '*' in an empty mailbox matches nothing
            raise IndexError("Invalid sequence number")
        out = set()
        for lo, hi in seqset.resolve(n):
            if lo < 1 or hi > n:
                raise IndexError("Invalid sequence number")
            out.update(self.uids[lo - 1:hi])
        return sorted(out)

    def uids_for_uidset(self, seqset, saved: list[int] | None = None) -> list[int]:
        if seqset.saved:
            return [u for u in (saved or []) if self.seq_of(u) is not None]
        if not self.uids:
            return []
        largest = self.uids[-1]
        out: list[int] = []
        for lo, hi in seqset.resolve(largest):
            i = bisect_left(self.uids, lo)
            while i < len(self.uids) and self.uids[i] <= hi:
                out.append(self.uids[i])
                i += 1
        return sorted(set(out))
