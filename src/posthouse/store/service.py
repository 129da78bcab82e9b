"""The store as the event loop sees it: one thread owns the database.

All store calls run, in order, on a single worker thread, so SQLite is never
touched from the event loop and changes are applied in one sequence. After a
change commits, its events are published on the loop to whoever follows that
mailbox (the shared in-memory indexes of open mailboxes).
"""
from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..mime.message import ParsedMessage, normalize_newlines, parse_message
from .api import Store


class ChangeHub:
    def __init__(self):
        self._followers: dict[int, list[Callable]] = defaultdict(list)

    def follow(self, mailbox_id: int, callback: Callable) -> None:
        self._followers[mailbox_id].append(callback)

    def unfollow(self, mailbox_id: int, callback: Callable) -> None:
        followers = self._followers.get(mailbox_id)
        if followers and callback in followers:
            followers.remove(callback)
            if not followers:
                del self._followers[mailbox_id]

    def publish(self, events) -> None:
        for event in events:
            for callback in list(self._followers.get(event.mailbox_id, ())):
                callback(event)


class StoreService:
    def __init__(self, store: Store):
        self.store = store
        self.hub = ChangeHub()
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="posthouse-store")
        # Blob reads and MIME parsing touch no database: they get their own threads.
        self._io_threads = ThreadPoolExecutor(4, thread_name_prefix="posthouse-io")

    async def call(self, method: str, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_thread, functools.partial(getattr(self.store, method), *args))

    async def change(self, method: str, *args):
        """Call a method that returns events (or an object with .events); publish them."""
        result = await self.call(method, *args)
        events = result if isinstance(result, list) else getattr(result, "events", None)
        if isinstance(result, tuple):
            events = result[0]
        if events:
            self.hub.publish(events)
        return result

    async def parse(self, raw: bytes, binary: bool = False) -> tuple[bytes, ParsedMessage]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io_threads, _normalize_and_parse, raw, binary)

    async def append(self, mailbox_id: int, items: list) -> list:
        """items: (raw, flags, internaldate[, binary]); parsed off-loop, committed together.

        binary: the message came as a ~{n} literal and its bytes are kept exactly.
        """
        prepared = []
        for raw, flags, idate, *binary in items:
            raw, parsed = await self.parse(raw, bool(binary and binary[0]))
            prepared.append((raw, parsed, flags, idate))
        results = await self.call("append_many", mailbox_id, prepared)
        for r in results:
            self.hub.publish(r.events)
        return results

    async def read_blob(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io_threads, self.store.read_blob, key, start, end)

    def close(self) -> None:
        self._db_thread.shutdown(wait=True)
        self._io_threads.shutdown(wait=True)
        self.store.close()


def _normalize_and_parse(raw: bytes, binary: bool = False):
    if not binary:
        raw = normalize_newlines(raw)
    return raw, parse_message(raw)
