"""Open mailboxes: one SharedMailbox per mailbox any session has selected."""
from __future__ import annotations

from ..store.service import StoreService
from .mailbox_index import SharedMailbox


class MailboxRegistry:
    def __init__(self, service: StoreService):
        self.service = service
        self.open: dict[int, SharedMailbox] = {}

    async def acquire(self, mailbox_id: int) -> SharedMailbox:
        shared = self.open.get(mailbox_id)
        if shared is None:
            shared = SharedMailbox(mailbox_id)
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

    def release(self, shared: SharedMailbox) -> None:
        shared.refs -= 1
        if shared.refs <= 0:
            self._drop(shared)

    def _drop(self, shared: SharedMailbox) -> None:
        if self.open.get(shared.id) is shared:
            del self.open[shared.id]
        self.service.hub.unfollow(shared.id, shared.apply)
