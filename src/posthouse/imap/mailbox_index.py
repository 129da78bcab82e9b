"""The shared in-memory index of an open mailbox, and each session's view of it.

Every session that has a mailbox selected shares one SharedMailbox: UIDs,
flags and MODSEQs in memory, fed by the store's change events. FETCH FLAGS,
SEARCH on flags and IDLE read it without touching the database.

Each session keeps its own SelectedView: the UID list that its sequence
numbers refer to, and the changes it has not yet told its client about.
Expunges wait there until the session may announce them (never during
FETCH, STORE or SEARCH), so sequence numbers never shift under a client.

UID lists are arrays of 32-bit numbers (IMAP's UID range). A view starts on
the shared array itself, copy-on-write: whichever side changes first copies
(one memcpy), so a SELECT that sees no change copies nothing.
The shared index also keeps the set of unseen messages, which SELECT's
first-unseen answer and SEARCH UNSEEN (the commonest search) read directly.

New messages are taken in UID order only, so no session is ever shown a UID
below one it was shown before: the index knows next_uid, below which every
UID is in it or gone for good. An event for a UID beyond it means events
for the UIDs between were lost (with a store process that died) or are
still on their way: the index then catches up, reading the store from
next_uid on, and holds every event until it has. After a store process
died, changes may have committed whose events were lost: the index reads
the whole mailbox again (new messages, flags, expunges). Meanwhile
(loaded is clear) events wait, and sessions wait before their next command.

MODSEQs are taken the same way (given a changes reader): the store numbers
each change to a mailbox with the next MODSEQ, so every change up to synced
is in the index, and an event numbered beyond synced + 1 means another's
change (another node's: store/postgres/bus.py) came in between. The index
then reads the change log from synced on (new messages, flags, expunges:
not the whole mailbox) and holds the event until it has, so no session is
shown a MODSEQ before one below it. Another node's change announced
(MailboxChanged) is read the same way.
"""
from __future__ import annotations

import asyncio
import logging
from array import array
from bisect import bisect_left, bisect_right

from ..store.api import (FlagsChanged, IndexEntry, MailboxChanged, MailboxGone, MessageAdded, MessagesExpunged,
                         NoSuchMailbox)

log = logging.getLogger("posthouse.imap")

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


class SharedMailbox:
    CAUGHT_UP_TIMEOUT = 10.0    # the longest a session waits for a catch-up before its command

    def __init__(self, mailbox_id: int, reader=None, changes=None):
        self.id = mailbox_id
        # reader(mailbox_id, from_uid) -> (info, entries from that UID on), read
        # from the database (not the store process): what a catch-up reads.
        self._reader = reader
        # changes(mailbox_id, modseq, from_uid) -> (info, entries changed since
        # or from that UID on, UIDs expunged since or None): Store.changes_since.
        self._changes = changes
        self.synced = 0             # every change up to this MODSEQ is in the index
        self.next_uid = 1           # every UID below it is in entries or gone for good
        self._catch_up_wanted = False
        self._catch_up_all = False  # the next catch-up reads every message, not just new ones
        self._catching_up: asyncio.Task | None = None
        self.info = None
        self.uids = array("I")
        self._uids_lent = False     # some view reads self.uids: copy before changing it
        self.entries: dict[int, IndexEntry] = {}
        self.unseen: set[int] = set()
        self._flagsets: dict[frozenset, frozenset] = {}   # one object per distinct flag set
        self.keywords: set[str] = set()     # only ever grows (as FLAGS may only grow)
        self._flags_said: dict[bool, tuple[int, bytes]] = {}   # flags_responses(), by readonly
        self.views: set[SelectedView] = set()
        self.refs = 0
        self.cached_size = 0        # messages, while kept loaded with no session (registry)
        # SORT orders of the whole mailbox by index keys (commands/sort.py), by criteria:
        # (the uids array they were made from, its length, the order).
        self.sort_orders: dict[tuple, tuple] = {}
        self.gone = False
        self.names: set[tuple[int, str]] = set()    # (user id, name) the registry knows it by
        self.loaded = asyncio.Event()
        self._early: list = []
        # Write-behind STOREs (imap/write_behind.py): per UID, how many are on
        # their way to the store; and while one's own events are applied, its
        # view and the flags it told its client (that view needs no update).
        self._ahead: dict[int, int] = {}
        self.behind: dict[asyncio.Future, SelectedView] = {}     # those STOREs, by whom
        self.told: tuple | None = None

    def load(self, info, entries) -> None:
        self.info = info
        intern = self._intern
        for e in entries:
            e.flags = intern(e.flags)
        self.entries = {e.uid: e for e in entries}
        self.uids = array("I", [e.uid for e in entries])
        self.unseen = {e.uid for e in entries if "\\Seen" not in e.flags}
        # (info was read before the messages: every UID below its uidnext is among them or gone.)
        self.next_uid = max(info.uidnext, entries[-1].uid + 1 if entries else 1)
        self.synced = info.highestmodseq
        if self._catch_up_wanted:
            # Changes were lost while we were loading: read again before anyone sees it.
            self._start_catching_up()
            return
        self._ready()

    def _ready(self) -> None:
        early, self._early = self._early, []
        self.loaded.set()
        for event in early:   # changes committed while we were loading or catching up
            self.apply(event)

    # -- catching up with the database -------------------------------------------
    def catch_up(self, everything: bool = False) -> None:
        """Read what the index may have missed: messages from next_uid on,
        or (everything) the whole mailbox, whose changes may have been lost."""
        if self._reader is None or self.gone:
            return
        self._catch_up_wanted = True
        self._catch_up_all = self._catch_up_all or everything
        if self.info is not None and self._catching_up is None:
            self._start_catching_up()
        # (Not loaded yet: load() starts it once the first read is in.)

    def _start_catching_up(self) -> None:
        self.loaded.clear()     # events wait in _early, sessions before their commands
        self._catching_up = asyncio.ensure_future(self._catch_up())

    async def _catch_up(self) -> None:
        delay = 0.05
        try:
            while self._catch_up_wanted and not self.gone:
                everything = self._catch_up_all
                self._catch_up_wanted = self._catch_up_all = False
                try:
                    if not everything and self._changes is not None:
                        info, entries, expunged = await self._changes(self.id, self.synced, self.next_uid)
                        if expunged is None:        # that history was forgotten: read it all
                            self._catch_up_wanted = self._catch_up_all = True
                        elif not self.gone:
                            self._merge_changes(info, entries, expunged)
                        continue
                    info, entries = await self._reader(self.id, 0 if everything else self.next_uid)
                except NoSuchMailbox:
                    self._mark_gone()
                    break
                except Exception as e:
                    log.error("mailbox %s: can't read it again (%r); trying again", self.id, e)
                    self._catch_up_wanted = True
                    self._catch_up_all = self._catch_up_all or everything
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, 2.0)
                    continue
                self._merge(info, entries, everything)
                if everything:
                    self.synced = max(self.synced, info.highestmodseq)
        finally:
            self._catching_up = None
            self._ready()

    async def caught_up(self) -> None:
        """Once a catch-up under way is done (or after CAUGHT_UP_TIMEOUT)."""
        if not self.loaded.is_set():
            try:
                await asyncio.wait_for(self.loaded.wait(), self.CAUGHT_UP_TIMEOUT)
            except asyncio.TimeoutError:
                log.warning("mailbox %s is slow to be read again: going on without it", self.id)

    def _merge(self, info, entries, everything: bool) -> None:
        """Take in what the store has: entries from next_uid on (everything:
        all of them, and the store's flags and expunges too)."""
        if info.uidvalidity != self.info.uidvalidity or info.name != self.info.name:
            self._mark_gone()       # renamed or deleted and made again, unheard of
            return
        highest = self.info.highestmodseq
        if everything:
            fresh = {e.uid: e for e in entries}
            gone = [u for u in self.uids if u not in fresh]
            if gone:
                self._expunged(gone)
            for e in entries:
                known = self.entries.get(e.uid)
                if known is not None and e.modseq > known.modseq and not self._ahead.get(e.uid):
                    known.flags = self._intern(e.flags)
                    known.modseq = e.modseq
                    self._note_seen(known)
                    for view in self.views:
                        view.on_flags(e.uid)
            highest = max(highest, info.highestmodseq)
        missed = [e for e in entries if e.uid < self.next_uid and e.uid not in self.entries]
        if missed:
            # The invariant broken: a message the index never heard of below
            # one it took in. Shown all the same (hiding it is worse), and said.
            log.error("mailbox %s: UIDs %s were never announced and are below UID %d, taken in already",
                      self.id, [e.uid for e in missed[:10]], self.next_uid - 1)
        for e in missed + [e for e in entries if e.uid >= self.next_uid and e.uid not in self.entries]:
            self._add(e)
            highest = max(highest, e.modseq)
        self.next_uid = max(self.next_uid, info.uidnext)
        self.info.uidnext = max(self.info.uidnext, self.next_uid)
        self.info.highestmodseq = highest

    def _merge_changes(self, info, entries, expunged: list[int]) -> None:
        """Take in the change log since synced: flags of known messages,
        expunges, and new messages (entries ascending by UID)."""
        if info.uidvalidity != self.info.uidvalidity or info.name != self.info.name:
            self._mark_gone()       # renamed or deleted and made again
            return
        highest = max(self.info.highestmodseq, info.highestmodseq)
        vanished = set(expunged)
        new = []
        for e in entries:
            highest = max(highest, e.modseq)
            known = self.entries.get(e.uid)
            if known is None:
                if e.uid not in vanished:
                    new.append(e)
            elif e.modseq > known.modseq and not self._ahead.get(e.uid):
                known.flags = self._intern(e.flags)
                known.modseq = e.modseq
                self._note_seen(known)
                for view in self.views:
                    view.on_flags(e.uid)
        gone = [u for u in expunged if u in self.entries]
        if gone:
            self._expunged(gone)
        missed = [e.uid for e in new if e.uid < self.next_uid]
        if missed:
            log.error("mailbox %s: UIDs %s were never announced and are below UID %d, taken in already",
                      self.id, missed[:10], self.next_uid - 1)
        for e in new:
            self._add(e)
        self.next_uid = max(self.next_uid, info.uidnext)
        self.info.uidnext = max(self.info.uidnext, self.next_uid)
        self.info.highestmodseq = highest
        # (Changes read past info's MODSEQ may have others below them still unseen: not counted.)
        self.synced = max(self.synced, info.highestmodseq)

    def flags_responses(self, readonly: bool) -> bytes:
        """The FLAGS and PERMANENTFLAGS responses, made again only when a keyword is new."""
        said = self._flags_said.get(readonly)
        if said is None or said[0] != len(self.keywords):
            flags = " ".join(SYSTEM_FLAGS + tuple(sorted(self.keywords)))
            perm = "" if readonly else flags + " \\*"
            text = (f"* FLAGS ({flags})\r\n"
                    f"* OK [PERMANENTFLAGS ({perm})] Flags permitted.\r\n").encode()
            said = self._flags_said[readonly] = (len(self.keywords), text)
        return said[1]

    def lend_uids(self) -> array:
        """The UID array, for a new view to share until either side changes."""
        self._uids_lent = True
        return self.uids

    def _intern(self, flags: frozenset) -> frozenset:
        """The one shared object for this set of flags (a big mailbox has few
        distinct sets: less memory, and caches keyed by flag set hit by identity)."""
        known = self._flagsets.get(flags)
        if known is None:
            known = self._flagsets[flags] = flags
            for f in flags:
                if not f.startswith("\\"):
                    self.keywords.add(f)
        return known

    def set_flags_ahead(self, uid: int, flags: frozenset) -> frozenset:
        """The flags a STORE on its way to the store gives a message, in the
        index now; views hear of it when the store's event comes."""
        e = self.entries[uid]
        e.flags = flags = self._intern(flags)
        self._ahead[uid] = self._ahead.get(uid, 0) + 1
        self._note_seen(e)
        return flags

    async def stored(self, besides: SelectedView | None = None) -> None:
        """Once the write-behind STOREs under way now (but besides's own) have
        reached the store and their events are applied here."""
        waiting = [f for f, view in self.behind.items() if view is not besides]
        if waiting:
            await asyncio.wait(waiting)     # (not gather: a cancelled waiter must not cancel them)

    def release_ahead(self, future: asyncio.Future, uids) -> None:
        """That STORE reached the store (or failed)."""
        self.behind.pop(future, None)
        ahead = self._ahead
        for uid in uids:
            n = ahead.get(uid, 0) - 1
            if n > 0:
                ahead[uid] = n
            else:
                ahead.pop(uid, None)

    def reset_flags(self, entries) -> None:
        """Flags read back from the store (after a STORE that failed there):
        the truth, told to every view."""
        for fresh in entries:
            e = self.entries.get(fresh.uid)
            if e is None or self._ahead.get(fresh.uid):
                continue
            e.flags = self._intern(fresh.flags)
            e.modseq = max(e.modseq, fresh.modseq)
            self._note_seen(e)
            for view in self.views:
                view.on_flags(fresh.uid)

    def _note_seen(self, e: IndexEntry) -> None:
        if "\\Seen" in e.flags:
            self.unseen.discard(e.uid)
        else:
            self.unseen.add(e.uid)

    def _add(self, e: IndexEntry) -> None:
        e.flags = self._intern(e.flags)
        self.entries[e.uid] = e
        if self._uids_lent:
            self.uids, self._uids_lent = self.uids[:], False
        if not self.uids or e.uid > self.uids[-1]:
            self.uids.append(e.uid)
        else:
            self.uids.insert(bisect_left(self.uids, e.uid), e.uid)
        if "\\Seen" not in e.flags:
            self.unseen.add(e.uid)
        self.next_uid = max(self.next_uid, e.uid + 1)
        for view in self.views:
            view.on_added(e.uid)

    def _expunged(self, gone: list[int]) -> None:
        last = {u: self.entries.pop(u).flags for u in gone}
        self.unseen.difference_update(gone)
        self.uids, self._uids_lent = _without(self.uids, gone), False
        for view in self.views:
            view.on_expunged(last)

    def _mark_gone(self) -> None:
        self.gone = True
        for view in self.views:
            view.on_gone()

    def apply(self, event) -> None:
        if not self.loaded.is_set():
            self._early.append(event)
            return
        if self._changes is not None:
            if isinstance(event, MailboxChanged):
                if event.modseq > self.synced:
                    self.catch_up()     # read what another node did
                return
            modseq = event.entry.modseq if isinstance(event, MessageAdded) else getattr(event, "modseq", None)
            if modseq is not None:
                if modseq > self.synced + 1:
                    # A change numbered between, not heard of yet: read it first.
                    self._early.append(event)
                    self.catch_up()
                    return
                self.synced = max(self.synced, modseq)
        if isinstance(event, MessageAdded):
            e = event.entry
            if e.uid in self.entries or e.uid < self.next_uid:
                return      # known, or gone already when the index read the mailbox
            if e.uid > self.next_uid and self._reader is not None:
                # UIDs below it not heard of: read them first, and this with them.
                self._early.append(event)
                self.catch_up()
                return
            self._add(e)
            self.info.uidnext = max(self.info.uidnext, e.uid + 1)
            self.info.highestmodseq = max(self.info.highestmodseq, e.modseq)
        elif isinstance(event, FlagsChanged):
            e = self.entries.get(event.uid)
            if e is None or e.modseq >= event.modseq:
                return
            if not self._ahead.get(event.uid):
                # (Else a later STORE, still on its way, has set what they will be.)
                e.flags = self._intern(event.flags)
                self._note_seen(e)
            e.modseq = event.modseq
            self.info.highestmodseq = max(self.info.highestmodseq, event.modseq)
            told = self.told
            for view in self.views:
                if told is not None and view is told[0] and told[1].get(event.uid) == event.flags:
                    continue    # its own STORE, whose client was told these very flags
                view.on_flags(event.uid)
        elif isinstance(event, MessagesExpunged):
            gone = [u for u in event.uids if u in self.entries]
            if not gone:
                return
            self.info.highestmodseq = max(self.info.highestmodseq, event.modseq)
            self._expunged(gone)
        elif isinstance(event, MailboxGone):
            self._mark_gone()


class SelectedView:
    def __init__(self, shared: SharedMailbox, readonly: bool):
        self.shared = shared
        self.readonly = readonly
        self.uids = shared.lend_uids()              # what this session's sequence numbers refer to
        self._owns_uids = False                     # shared with the index: copy before changing in place
        self.expunged: dict[int, frozenset] = {}   # announced-later expunges, with last flags
        self.added: list[int] = []
        self.flag_changes: set[int] = set()
        self.recent: set[int] = set()
        self.known_keywords = set(shared.keywords)
        self.gone = False
        self.listener = None                        # called on any change (IDLE pushes then)
        # While searches are kept up to date (RFC 5267): UIDs that arrived or whose
        # flags changed, by anyone, this session's own changes included.
        self.track_changes = False
        self.changed_uids: set[int] = set()

    # -- fed by SharedMailbox -------------------------------------------------
    def on_added(self, uid: int) -> None:
        self.added.append(uid)
        if self.track_changes:
            self.changed_uids.add(uid)
        self._changed()

    def on_flags(self, uid: int) -> None:
        self.flag_changes.add(uid)
        if self.track_changes:
            self.changed_uids.add(uid)
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

    # -- catching up (when the session may tell its client) -------------------
    def take_expunged(self) -> list[int]:
        """Forget the expunges not yet announced; returns their sequence numbers
        highest first, the order in which each stays right as it is sent."""
        if not self.expunged:
            return []
        seqs = sorted((s for s in map(self.seq_of, self.expunged) if s is not None), reverse=True)
        self._forget_expunged()
        return seqs

    def take_vanished(self) -> list[int]:
        """The same, for QRESYNC's VANISHED: the UIDs, ascending."""
        if not self.expunged:
            return []
        gone = sorted(u for u in self.expunged if self.seq_of(u) is not None)
        self._forget_expunged()
        return gone

    def _forget_expunged(self) -> None:
        self.uids, self._owns_uids = _without(self.uids, self.expunged), True
        self.recent.difference_update(self.expunged)
        self.expunged.clear()

    def take_added(self) -> list[int]:
        """Take in the messages added since; returns their UIDs, ascending."""
        new = sorted({u for u in self.added if u not in self.expunged and self.seq_of(u) is None})
        self.added.clear()
        if new:
            if not self.uids or new[0] > self.uids[-1]:
                if not self._owns_uids:
                    self.uids, self._owns_uids = self.uids[:], True
                self.uids.extend(new)
            else:
                self.uids, self._owns_uids = array("I", sorted(set(self.uids).union(new))), True
        return new

    def start_from_now(self) -> None:
        """A view its client has not been shown yet: expunges and flag changes
        since it was made are part of the state SELECT reports, not news."""
        if self.expunged:
            self._forget_expunged()
        self.flag_changes.clear()

    def recent_from(self, first_uid: int) -> set[int]:
        return set(self.uids[bisect_left(self.uids, first_uid):])

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

    def first_unseen(self) -> int | None:
        """Sequence number of the first message without \\Seen. Either few are
        unseen (take the least) or many are (one turns up early in a scan)."""
        unseen = self.shared.unseen
        if not unseen:
            return None
        if len(unseen) * 64 < len(self.uids):
            for uid in sorted(unseen):
                seq = self.seq_of(uid)
                if seq is not None:
                    return seq
            return None
        for i, uid in enumerate(self.uids):
            if uid in unseen:
                return i + 1
        return None

    def positions(self, seqset, by_uid: bool, saved: list[int] | None = None):
        """0-based positions in self.uids of the messages a set names, ascending.
        Message sequence numbers out of range raise IndexError."""
        uids = self.uids
        if seqset.saved:
            found = (self.seq_of(u) for u in (saved or []))
            return sorted({s - 1 for s in found if s is not None})
        n = len(uids)
        spans = []
        if by_uid:
            if not n:
                return []
            for lo, hi in seqset.resolve(uids[-1]):
                spans.append((bisect_left(uids, lo), bisect_right(uids, hi)))
        else:
            if n == 0:
                if seqset.contains_star():
                    return []     # '*' in an empty mailbox matches nothing
                raise IndexError("Invalid sequence number")
            for lo, hi in seqset.resolve(n):
                if lo < 1 or hi > n:
                    raise IndexError("Invalid sequence number")
                spans.append((lo - 1, hi))
        spans = [s for s in spans if s[0] < s[1]]
        if len(spans) == 1:
            return range(*spans[0])
        out = set()
        for i, j in spans:
            out.update(range(i, j))
        return sorted(out)

    def uids_for_seqset(self, seqset, saved: list[int] | None = None) -> list[int]:
        """Message sequence numbers -> UIDs; raises IndexError on numbers out of range."""
        uids = self.uids
        return [uids[i] for i in self.positions(seqset, False, saved)]

    def uids_for_uidset(self, seqset, saved: list[int] | None = None) -> list[int]:
        uids = self.uids
        return [uids[i] for i in self.positions(seqset, True, saved)]


def _without(uids: array, gone) -> array:
    """uids less the ones in gone: a few deleted in place, many by one rebuild."""
    if len(gone) <= 8:
        out = uids[:]
        for uid in gone:
            i = bisect_left(out, uid)
            if i < len(out) and out[i] == uid:
                del out[i]
        return out
    gone = gone if isinstance(gone, (set, dict)) else set(gone)
    return array("I", [u for u in uids if u not in gone])
