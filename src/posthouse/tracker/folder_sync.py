"""One folder brought up to date: the per-folder state machine.

    SELECT (QRESYNC / CONDSTORE where offered)
      -> UIDVALIDITY changed or HIGHESTMODSEQ went down: FolderReset, forget
      -> never synced: note UIDNEXT, the top of the newest-first backfill
      -> known messages: expunges and flag changes (QRESYNC's answer, else
         CHANGEDSINCE + a UID diff, else a UID diff and a flags fetch)
      -> new messages (UID >= the cursor's UIDNEXT)
      -> backfill, newest first, down to the account's `since`, in batches

Every step applies its facts to the sink first and moves the cursor after,
so a crash anywhere replays facts (idempotent) and loses none.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone

from ..imap.protocol.responses import ResponseError
from ..imap_client.bodystructure import BodyPart, parse_bodystructure
from ..imap_client.errors import ImapError
from . import skeleton, uidsets
from .cursors import FolderState
from .facts import FolderReset, MessageChanged, MessageGone, MessageSeen, Place

log = logging.getLogger("posthouse.tracker")

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def imap_date(d: date) -> str:
    return f"{d.day}-{_MONTHS[d.month - 1]}-{d.year}"


class FolderSync:
    """ctx: the account's worker (conn, account_id, since, batch_size, apply(),
    save(), flags_cache)."""

    def __init__(self, ctx, state: FolderState):
        self.ctx = ctx
        self.state = state

    @property
    def conn(self):
        return self.ctx.conn

    async def run(self) -> None:
        st, conn = self.state, self.conn
        caps = conn.capabilities
        condstore = "CONDSTORE" in caps
        qresync = None
        if "QRESYNC" in caps and st.uidnext is not None and st.uidvalidity and st.highestmodseq:
            qresync = (st.uidvalidity, st.highestmodseq)
        sel = await conn.select(st.name, readonly=True, condstore=condstore, qresync=qresync)
        if sel.uidvalidity is None:
            raise ImapError("command", f"SELECT {st.name!r} gave no UIDVALIDITY")
        if sel.uidnext is None:
            sel.uidnext = (await conn.status(st.name, ("UIDNEXT",))).get("UIDNEXT")
        if st.uidvalidity is not None:
            if sel.uidvalidity != st.uidvalidity:
                await self._reset(sel.uidvalidity, f"UIDVALIDITY changed from {st.uidvalidity} to {sel.uidvalidity}")
            elif st.highestmodseq and sel.highestmodseq is not None and sel.highestmodseq < st.highestmodseq:
                await self._reset(sel.uidvalidity, f"HIGHESTMODSEQ went down from {st.highestmodseq} to {sel.highestmodseq}")
                sel.vanished, sel.changed = [], []
        if st.uidnext is None:
            await self._start(sel)
        else:
            await self._known_changes(sel, qresync is not None and "QRESYNC" in conn.enabled)
            await self._new_messages(sel)
        if not st.backfill_done:
            await self._backfill()

    # ------------------------------------------------------------ steps

    async def _reset(self, new_uidvalidity: int, why: str) -> None:
        st = self.state
        old = st.uidvalidity
        await self.ctx.apply([FolderReset(st.account_id, st.name, old, new_uidvalidity)])
        st.forget()
        self.ctx.flags_cache.pop(st.name, None)
        await self.ctx.save(st, ("warning", f"folder {st.name!r} reset: {why}; syncing it again"))

    async def _start(self, sel) -> None:
        """First contact: the backfill will cover UIDs below UIDNEXT; the
        MODSEQ noted now catches flag changes made meanwhile."""
        st = self.state
        st.uidvalidity = sel.uidvalidity
        st.uidnext = sel.uidnext or 1
        st.low_uid = st.uidnext
        st.highestmodseq = sel.highestmodseq
        st.backfill_done = False
        st.known = set()
        st.messages_done = 0
        st.messages_total = len(await self._in_scope(st.uidnext - 1)) if sel.exists else 0
        await self.ctx.save(st)

    async def _in_scope(self, below_or_at: int) -> list[int]:
        if below_or_at < 1:
            return []
        criteria = f"UID 1:{below_or_at}"
        if self.ctx.since is not None:
            criteria += " SINCE " + imap_date(self.ctx.since)
        return [u for u in await self.conn.uid_search(criteria) if u <= below_or_at]

    async def _known_changes(self, sel, qresynced: bool) -> None:
        st, conn = self.state, self.conn
        gone: set[int] = set()
        changed: dict[int, tuple] = {}
        if qresynced:
            for uids in sel.vanished:
                gone |= {u for u in st.known if u in uids}
            for f in sel.changed:
                if f.uid in st.known and "FLAGS" in f.attrs:
                    changed[f.uid] = (f.attrs["FLAGS"], f.attrs.get("MODSEQ"))
        elif st.highestmodseq and sel.highestmodseq is not None:
            if sel.highestmodseq != st.highestmodseq and st.known:
                async for f in conn.uid_fetch(f"{min(st.known)}:{st.uidnext - 1}", "UID FLAGS",
                                              changedsince=st.highestmodseq):
                    if f.uid in st.known and "FLAGS" in f.attrs:
                        changed[f.uid] = (f.attrs["FLAGS"], f.attrs.get("MODSEQ"))
                gone = st.known - set(await conn.uid_search("ALL"))
        elif st.known:
            # The last resort: a UID diff, and every known message's flags
            # compared with what this process saw last (after a restart: all, once).
            gone = st.known - set(await conn.uid_search("ALL"))
            cache = self.ctx.flags_cache.setdefault(st.name, {})
            async for f in conn.uid_fetch(f"{min(st.known)}:{st.uidnext - 1}", "UID FLAGS"):
                if f.uid in st.known and "FLAGS" in f.attrs and cache.get(f.uid) != f.attrs["FLAGS"]:
                    changed[f.uid] = (f.attrs["FLAGS"], None)
                    cache[f.uid] = f.attrs["FLAGS"]
        for uid in gone:
            changed.pop(uid, None)
        facts = [MessageGone(self._place(uid)) for uid in sorted(gone)]
        facts += [MessageChanged(self._place(uid), tuple(flags), modseq)
                  for uid, (flags, modseq) in sorted(changed.items())]
        if facts:
            await self.ctx.apply(facts)
        moved_modseq = sel.highestmodseq is not None and sel.highestmodseq != st.highestmodseq
        if facts or moved_modseq:
            st.known -= gone
            st.messages_done = len(st.known)
            st.messages_total = max(0, st.messages_total - len(gone))
            st.highestmodseq = sel.highestmodseq
            await self.ctx.save(st)

    async def _new_messages(self, sel) -> None:
        st = self.state
        if sel.uidnext is not None and sel.uidnext <= st.uidnext:
            return
        new = sorted(u for u in await self.conn.uid_search(f"UID {st.uidnext}:*") if u >= st.uidnext)
        for i in range(0, len(new), self.ctx.batch_size):
            batch = new[i:i + self.ctx.batch_size]
            seen = await self._fetch(batch)
            if seen:
                await self.ctx.apply(seen)
            st.known |= {f.place.uid for f in seen}
            st.uidnext = batch[-1] + 1
            st.messages_total += len(seen)
            st.messages_done = len(st.known)
            await self.ctx.save(st)
        if sel.uidnext is not None and sel.uidnext > st.uidnext:
            st.uidnext = sel.uidnext
            await self.ctx.save(st)

    async def _backfill(self) -> None:
        st = self.state
        todo = sorted(await self._in_scope((st.low_uid or 1) - 1), reverse=True)
        for i in range(0, len(todo), self.ctx.batch_size):
            batch = todo[i:i + self.ctx.batch_size]
            seen = await self._fetch(batch)
            if seen:
                await self.ctx.apply(seen)
            st.known |= {f.place.uid for f in seen}
            st.low_uid = batch[-1]
            st.messages_done = len(st.known)
            st.messages_total = max(st.messages_total, st.messages_done)
            await self.ctx.save(st)
        st.backfill_done = True
        st.messages_total = st.messages_done = len(st.known)
        await self.ctx.save(st)

    # ------------------------------------------------------------ fetching

    async def _fetch(self, uids: list[int]) -> list[MessageSeen]:
        """MessageSeen for each of uids still there: the metadata and body
        structure first, then the skeleton's sections (one FETCH per shape)."""
        conn = self.conn
        items = "UID FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE"
        if "CONDSTORE" in conn.capabilities:
            items += " MODSEQ"
        if "OBJECTID" in conn.capabilities:
            items += " EMAILID"
        wanted = set(uids)
        meta: dict[int, dict] = {}
        async for f in conn.uid_fetch(uidsets.to_text(uids), items):
            if f.uid in wanted:
                meta.setdefault(f.uid, {}).update(f.attrs)
        shapes: dict[tuple, list[int]] = {}
        roots: dict[int, BodyPart] = {}
        for uid, attrs in meta.items():
            try:
                roots[uid] = parse_bodystructure(attrs.get("BODYSTRUCTURE"))
            except (ResponseError, ValueError, TypeError, IndexError) as e:
                log.warning("account %s folder %r uid %s: unreadable BODYSTRUCTURE (%s); header only",
                            self.state.account_id, self.state.name, uid, e)
                roots[uid] = BodyPart("1", "application", "octet-stream")
            shapes.setdefault(tuple(skeleton.plan(roots[uid])), []).append(uid)
        parts: dict[int, dict] = {}
        for plan, members in shapes.items():
            async for f in conn.uid_fetch(uidsets.to_text(members), "UID " + " ".join(plan)):
                if f.uid in meta:
                    parts.setdefault(f.uid, {}).update(f.attrs)
        out = []
        for uid in sorted(meta, reverse=True):
            if uid not in parts:
                continue        # expunged in between
            out.append(self._seen(uid, meta[uid], roots[uid], parts[uid]))
        return out

    def _seen(self, uid: int, attrs: dict, root: BodyPart, parts: dict) -> MessageSeen:
        header = parts.get("BODY[HEADER]") or b""
        fields = skeleton.header_fields(header)
        flags = tuple(attrs.get("FLAGS", ()))
        self.ctx.flags_cache.setdefault(self.state.name, {})[uid] = flags
        return MessageSeen(
            place=self._place(uid),
            message_id=skeleton.message_id(fields),
            emailid=attrs.get("EMAILID"),
            content_hash=skeleton.content_hash(fields, skeleton.text_of(root, parts)),
            internaldate=attrs.get("INTERNALDATE") or datetime.now(timezone.utc),
            size=attrs.get("RFC822.SIZE", 0),
            flags=flags,
            modseq=attrs.get("MODSEQ"),
            skeleton=skeleton.build(root, parts),
            attachments=skeleton.attachments(root),
            special_use=self.state.special_use,
        )

    def _place(self, uid: int) -> Place:
        st = self.state
        return Place(st.account_id, st.name, st.uidvalidity, uid)
