"""A POP3 session's maildrop: a snapshot of the user's INBOX taken at login.

Message numbers are fixed for the session (RFC 1939); deletions are only
marked until QUIT, and then expunged from the store like an IMAP EXPUNGE,
so IMAP sessions see them go. A message that an IMAP client expunged
meanwhile is reported as gone instead of being sent. Only one POP3 session
per user holds the maildrop at a time (RFC 1939's exclusive lock); IMAP
sessions are not locked out.
"""
from __future__ import annotations

import asyncio
import os

from ..store.api import NoSuchMailbox

# Who holds a maildrop now (user ids), in this server process.
_locked: set[int] = set()


class InUse(Exception):
    pass


class Maildrop:
    LOCK_WAIT = 0.5     # seconds a login waits for the lock held by another worker's session
    def __init__(self, ctx, user):
        self.ctx = ctx
        self.user = user
        self.mailbox_id: int | None = None
        self.uidvalidity = 0
        self.messages: list[tuple[int, int]] = []     # (uid, size), message n at index n-1
        self.deleted: set[int] = set()                # message numbers
        self.locked = False
        self._lock_fd: int | None = None     # several workers: the lock across them (workers.py)

    async def open(self) -> None:
        if self.user.id in _locked:
            raise InUse()
        if getattr(self.ctx.service, "shared", False):
            from ..workers import pop3_file_lock
            # A session just dropped, in another worker, may not have heard of
            # its end yet: the lock is waited for a moment before IN-USE.
            deadline = asyncio.get_running_loop().time() + self.LOCK_WAIT
            while (fd := pop3_file_lock(self.ctx.config.data_dir, self.user.id)) is None:
                if asyncio.get_running_loop().time() >= deadline:
                    raise InUse()
                await asyncio.sleep(0.02)
            self._lock_fd = fd
        _locked.add(self.user.id)
        self.locked = True
        try:
            info = await self.ctx.service.call("get_mailbox", self.user.id, "INBOX")
        except NoSuchMailbox:
            return                          # no INBOX: an empty maildrop
        registry = self.ctx.registry
        shared = await registry.acquire(info.id)
        try:
            self.mailbox_id = info.id
            self.uidvalidity = shared.info.uidvalidity
            self.messages = [(uid, shared.entries[uid].size) for uid in shared.uids]
        finally:
            registry.release(shared)

    def close(self) -> None:
        if self.locked:
            _locked.discard(self.user.id)
            self.locked = False
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- what the commands ask -------------------------------------------------
    def message(self, number: int) -> tuple[int, int] | None:
        """(uid, size) of a message number that exists and isn't marked deleted."""
        if 1 <= number <= len(self.messages) and number not in self.deleted:
            return self.messages[number - 1]
        return None

    def live(self):
        """(number, uid, size) of every message not marked deleted."""
        for n, (uid, size) in enumerate(self.messages, 1):
            if n not in self.deleted:
                yield n, uid, size

    def uidl(self, uid: int) -> str:
        """Stable across sessions while the mailbox lives (UIDVALIDITY and UID)."""
        return f"{self.uidvalidity:08x}{uid:08x}"

    async def data(self, uid: int):
        """The message's MessageData with its bytes if kept inline; None if gone."""
        found = await self.ctx.service.call("message_data", self.mailbox_id, [uid], True)
        return found.get(uid)

    async def read(self, msg, start: int, end: int) -> bytes:
        if msg.inline is not None:
            return msg.inline[start:end]
        return await self.ctx.service.read_blob(msg.blob_key, start, end)

    async def mark_seen(self, uid: int) -> None:
        await self.ctx.service.change("store_flags", self.mailbox_id, [uid], "add", frozenset({"\\Seen"}))

    async def commit(self) -> None:
        """QUIT in the TRANSACTION state: expunge what was deleted."""
        if self.deleted and self.mailbox_id is not None:
            uids = [self.messages[n - 1][0] for n in sorted(self.deleted)]
            await self.ctx.service.change("expunge", self.mailbox_id, uids)
