"""The store as the event loop sees it: one writer owns the database.

Changes (and short reads) run, in order, in the store process (store/process.py)
or, where the store can't be opened again there, on one worker thread, so
changes are applied in one sequence. Calls that queue up while the writer is
busy run together as one group commit: one transaction, one fsync, each call
in its own savepoint. Reads by a key run right on the loop, and long reads on
reader threads, each through a read connection of its own. After a change
commits, its events are published on the loop to whoever follows that
mailbox (the shared in-memory indexes of open mailboxes), even if its caller
has stopped waiting. Events can still be lost: a store process that dies
takes the replies to what it committed with it. Then whoever follows
changes is told (follow_lost_changes) and reads its state again.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..mime.message import ParsedMessage
from .api import DiskFull, Store
from .batches import BatchRunner, settle
from .parsing import PROCESS_FROM, ParsePool
from .process import FILE_ARRIVALS, WRITE_BEHIND, SharedStoreConnection, StoreProcess
from .wake_counters import ARRIVALS, BEHIND
from .space import FreeSpace, is_disk_full

log = logging.getLogger("posthouse.store")


class ChangeHub:
    def __init__(self):
        self._followers: dict[int, list[Callable]] = defaultdict(list)

    def follow(self, mailbox_id, callback: Callable) -> None:
        self._followers[mailbox_id].append(callback)

    def unfollow(self, mailbox_id, callback: Callable) -> None:
        followers = self._followers.get(mailbox_id)
        if followers and callback in followers:
            followers.remove(callback)
            if not followers:
                del self._followers[mailbox_id]

    def followed_mailboxes(self) -> set[int]:
        """The ids of the mailboxes someone follows here (not users' lists)."""
        return {key for key in self._followers if isinstance(key, int)}

    def followed_users(self) -> set[int]:
        """The ids of the users whose list of mailboxes someone follows here."""
        return {key[1] for key in self._followers if isinstance(key, tuple) and key[0] == "user"}

    def publish(self, events) -> None:
        for event in events:
            # Events about a user's list of mailboxes are followed by ("user", id).
            key = getattr(event, "hub_key", None) or event.mailbox_id
            for callback in list(self._followers.get(key, ())):
                callback(event)


class _DatabaseThread:
    """The one thread that touches the database; runs queued calls in batches."""

    MAX_BATCH = 128

    def __init__(self, store: Store):
        self.store = store
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="posthouse-store", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable, durable: bool = True) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((fn, future, loop, durable))
        return future

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        runner = BatchRunner(self.store)
        stopping = False
        while not stopping:
            wait = runner.idle_wait()
            try:
                if wait is None:
                    item = self._queue.get()
                else:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                runner.idle()
                continue
            if item is None:
                return
            batch = [item]
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            results = runner.run([fn for fn, _f, _l, _d in batch], any(d for _fn, _f, _l, d in batch))
            for (_fn, future, loop, _d), (ok, value) in zip(batch, results):
                loop.call_soon_threadsafe(settle, future, ok, value)
            runner.between_batches()


class StoreService:
    def __init__(self, store: Store, parse_processes: int = 0, store_process: bool = False,
                 store_connection=None, wake_watch=None):
        self.store = store
        self.hub = ChangeHub()
        # Room on the disk for new mail (store/space.py); the server sets where and how much.
        self.space = FreeSpace(None)
        self.call_timer: Callable | None = None     # admin/metrics.py: (method, seconds) of each call
        # Writes (and short reads) in order, in group commits: in a process of
        # their own where the store can be opened again there, else on a thread.
        open_args = getattr(store, "open_args", None)
        self._lost_followers: list[Callable] = []
        # One of several workers (app_workers.py): the store process is shared,
        # reached over store_connection, and tells us what the others commit.
        self.shared = store_connection is not None
        # Several workers: write-behind STOREs and accepted mail are counted in
        # shared memory (store/wake_counters.py); None: a STORE there waits
        # for its commit, and mail accepted by another worker is not waited for.
        self.pending_watch = wake_watch if self.shared and wake_watch is not None and wake_watch.pending_counts \
            else None
        self.relay_handlers: dict[str, Callable] = {}   # kind -> handler(*payload), for relay()
        self.relay_handlers["events"] = self.remote_events   # (mailbox list changes made by sessions)
        if self.shared:
            self._db_thread = None
            self._db_process = SharedStoreConnection(store_connection, wake_watch)
            self._db_process.on_death = self.changes_lost
            self._db_process.on_remote = self._on_remote
        elif store_process and open_args is not None:
            self._db_thread = None
            self._db_process = StoreProcess(type(store), open_args)
            self._db_process.on_death = self.changes_lost
        else:
            self._db_thread = _DatabaseThread(store)
            self._db_process = None
        # Blob reads and writes and MIME parsing touch no database: they get their own threads.
        self._io_threads = ThreadPoolExecutor(4, thread_name_prefix="posthouse-io")
        # Long reads (searches, index loads) on threads of their own, each with
        # its own connection: they never queue behind a commit, nor hold one up.
        self._read_threads = ThreadPoolExecutor(2, thread_name_prefix="posthouse-read")
        self._parser = ParsePool(parse_processes, self._io_threads)
        self._parser.warm_up()

    def follow_lost_changes(self, callback: Callable) -> None:
        """callback(mailbox_ids) when changes may have committed whose events
        were never published (mailbox_ids: those concerned, or None: any)."""
        self._lost_followers.append(callback)

    def changes_lost(self, mailbox_ids=None, why: str | None = None, tell_others: bool = True) -> None:
        """Changes (to those mailboxes, or to any) may have committed unheard of
        (why: said so by another process, such as `posthouse import`; with
        several workers, the others are told too unless tell_others is false)."""
        if why and self.shared and tell_others:
            self.relay("lost", sorted(mailbox_ids) if mailbox_ids is not None else None, why)
        which = "" if mailbox_ids is None else f" (mailboxes {sorted(mailbox_ids)})"
        if why:
            log.info("%s%s: open mailboxes are read again", why, which)
        else:
            log.warning("changes may have been committed unannounced%s: open mailboxes are read again", which)
        for callback in list(self._lost_followers):
            try:
                callback(mailbox_ids)
            except Exception:
                log.exception("reading state again after lost changes")

    def remote_wake(self, wakes) -> None:
        """Changes committed by another node (store/postgres/bus.py): wakes are
        MailboxChanged (an open mailbox reads the change log from its last
        MODSEQ; NOTIFY followers send STATUS), MailboxListChanged and
        MailboxGone, published to this server's followers."""
        self.hub.publish(wakes)

    # -- several workers over one store (store/shared_writer.py) -------------------
    def remote_events(self, events) -> None:
        """Events committed by another process, published to this one's followers
        as if committed here (in the order the store committed them)."""
        if events:
            self.hub.publish(events)

    def relay(self, kind: str, *payload) -> None:
        """Pass (kind, payload) to every other worker, in order with the changes
        committed meanwhile; there, relay_handlers[kind](*payload) runs.
        Nothing happens with one worker."""
        if self.shared:
            self._db_process.submit("@relay", ((kind, payload),), False, soon=False).add_done_callback(
                functools.partial(_log_failure, "relay"))

    def take_remote(self) -> None:
        """Apply at once what the other workers committed and is here already."""
        if self.shared:
            self._db_process.poll()

    def _on_remote(self, kind: int, value) -> None:
        if kind == -1:      # shared_writer.EVENTS
            self.remote_events(value)
            return
        try:
            name, payload = value
        except (TypeError, ValueError):
            return
        if name == "lost":
            ids, why = payload
            self.changes_lost(None if ids is None else set(ids), why=f"{why} (in another worker)", tell_others=False)
            return
        handler = self.relay_handlers.get(name)
        if handler is not None:
            handler(*payload)

    async def call(self, method: str, *args):
        store = self.store
        is_quick = getattr(store, "is_quick", None)
        if is_quick is not None and is_quick(method, args):
            return store.quick(method, *args)
        if self.call_timer is not None:     # admin/metrics.py: how long the store takes
            started = time.perf_counter()
            try:
                return await self._call(store, method, args)
            finally:
                self.call_timer(method, time.perf_counter() - started)
        return await self._call(store, method, args)

    async def _call(self, store, method: str, args: tuple):
        if method in getattr(store, "LONG_READS", ()):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._read_threads, _read, store, method, args)
        return await self._outcome(self._submit(method, args))

    async def _outcome(self, future):
        """A store call's result; a write that failed for want of room raises
        DiskFull, which the protocols answer as a refusal to retry (452 4.3.1,
        NO [LIMIT])."""
        try:
            return await future
        except Exception as e:
            self._raise_if_full(e)
            raise

    def _raise_if_full(self, error: Exception) -> None:
        if is_disk_full(error):
            self.space.forget()
            if not isinstance(error, DiskFull):
                raise DiskFull() from error

    def send(self, method: str, *args, soon: bool = True) -> asyncio.Future:
        """A lazy change, sent now (soon=False: with the next call, or alone a
        moment later) without waiting: the future settles after its commit.
        Calls reach the store in the order they are sent or called."""
        if self._db_process is not None:
            return self._db_process.submit(method, args, False, soon=soon)
        return self._db_thread.submit(functools.partial(_call, self.store, method, args), False)

    # How long a command waits at most for another worker's write-behind
    # STOREs, and mail it answered "250" (Arrivals.SETTLE_TIMEOUT): one that
    # died after counting one it never finished is not waited for longer.
    WAIT_MAX = {BEHIND: 2.0, ARRIVALS: 10.0}
    _WAITING_FOR = {BEHIND: "write-behind STOREs in mailbox", ARRIVALS: "mail accepted for user"}

    def send_behind(self, mailbox_id: int, uids: list, mode: str, flags, applied: Callable) -> asyncio.Future:
        """A write-behind STORE (imap/write_behind.py), not waited for. With
        several workers it is counted first (the others' sessions wait for it
        before their next command on the mailbox: see others_done), and
        applied(result) runs as its reply comes, in order with the other
        workers' changes; the future settles after."""
        watch = self.pending_watch
        if watch is None:
            return self.send("store_flags", mailbox_id, uids, mode, flags, None)
        future = self._submit("store_flags", (mailbox_id, uids, mode, flags, None), applied,
                              wire=(WRITE_BEHIND, (mailbox_id, uids, mode, flags, None)))
        if not future.done():      # (failed at once: no store process now; nobody need wait)
            watch.started(BEHIND, mailbox_id)
        return future

    async def file_arrivals(self, items: list, users: list[int], journal_key: tuple = ()):
        """The store's file_arrivals(items, *journal_key). users: a user id for
        each recipient of these arrivals (delivery/arrivals.py counted them
        started): with several workers, the store process counts them
        finished once every worker has the changes."""
        if self.pending_watch is None:
            return await self.call("file_arrivals", items, *journal_key)
        return await self._outcome(self._submit("file_arrivals", (items, *journal_key),
                                                wire=(FILE_ARRIVALS, (users, items, *journal_key))))

    def others_pending(self, kind: int, key: int) -> list:
        """What the other workers told their clients is done and this one
        has not heard of yet: kind BEHIND by mailbox, ARRIVALS by user (see
        store/wake_counters.py)."""
        watch = self.pending_watch
        return watch.others_waiting(kind, key) if watch is not None else []

    async def others_done(self, kind: int, key: int, waiting: list | None = None) -> None:
        """Once what others_pending() said (or says now) is done and applied here."""
        watch = self.pending_watch
        if watch is None:
            return
        waiting = watch.others_waiting(kind, key) if waiting is None else waiting
        if waiting:
            await watch.wait_for_others(kind, key, waiting, self.WAIT_MAX[kind], self._WAITING_FOR[kind])
        # (Also when nothing was waited for: what was finished before we looked
        # was sent before it was counted, and may not be read yet.)
        self.take_remote()

    def post(self, method: str, *args) -> None:
        """A lazy change whose caller need not know the outcome (one that
        repeats or reorders harmlessly, such as claiming \\Recent); a failure
        is logged."""
        self.send(method, *args, soon=False).add_done_callback(functools.partial(_log_failure, method))

    async def change(self, method: str, *args):
        """Call a method that returns events (or an object with .events); publish them."""
        return await self._publishing(self._submit(method, args, self._publish_result), self._publish_result)

    def _submit(self, method: str, args: tuple, publish: Callable | None = None,
                wire: tuple[str, tuple] | None = None) -> asyncio.Future:
        """A call sent to the store in order; its future settles after its commit.
        publish: with several workers, called with the result the moment it
        comes, in order with the other workers' changes (see _publishing).
        wire: (request, its args) sent to the shared store process instead,
        for the store call method(*args) it stands for (process.WRITE_BEHIND...)."""
        durable = method not in getattr(self.store, "LAZY", ()) and method not in getattr(self.store, "READS", ())
        if self._db_process is not None:
            request, request_args = wire if wire is not None and self.shared else (method, args)
            return self._db_process.submit(request, request_args, durable, publish=publish if self.shared else None)
        return self._db_thread.submit(functools.partial(_call, self.store, method, args), durable)

    async def _publishing(self, future: asyncio.Future, publish: Callable):
        """The result of a change whose events publish() publishes as soon as it
        commits, before the caller resumes, even if the caller stopped waiting
        (cancelled): what committed is always announced."""
        def published(done: asyncio.Future) -> None:
            if not done.cancelled() and done.exception() is None:
                publish(done.result())
        if not self.shared:     # (shared: published by the connection, as the reply came)
            future.add_done_callback(published)
        return await self._outcome(asyncio.shield(future))

    def _publish_result(self, result) -> None:
        events = result if isinstance(result, list) else getattr(result, "events", None)
        if isinstance(result, tuple):
            events = result[0]
        if events:
            self.hub.publish(events)

    async def parse(self, raw: bytes, binary: bool = False) -> tuple[bytes, ParsedMessage]:
        """Normalize and parse a new message, and write its blob file if it gets
        one (off the database thread, so a group commit waits for no message's
        fsync but its own)."""
        raw, parsed = await self._parser.parse(raw, binary)
        wants_file = getattr(self.store, "wants_file", None)
        if wants_file is not None and wants_file(raw):
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._io_threads, self.store.blobs.put, raw)
            except OSError as e:
                self._raise_if_full(e)
                raise
        return raw, parsed

    PARSED_BY_STORE_MAX = 8     # messages in one APPEND

    async def append(self, mailbox_id: int, items: list) -> list:
        """items: (raw, flags, internaldate[, binary]); parsed off-loop, committed together.

        binary: the message came as a ~{n} literal and its bytes are kept exactly.
        """
        if (self._db_process is not None and len(items) <= self.PARSED_BY_STORE_MAX
                and all(self._parsed_by_store(raw) for raw, *_ in items)):
            # Small mail, kept in the database: the store process parses it
            # (it has time to spare; the event loop is the server's bottleneck).
            # A bulk MULTIAPPEND is parsed here, while the store commits the last.
            return await self._publishing(self._submit(
                "append_raw", (mailbox_id, [(raw, flags, idate, bool(binary and binary[0]))
                                            for raw, flags, idate, *binary in items]), self._published),
                self._published)
        parsed = await asyncio.gather(*(self.parse(raw, bool(binary and binary[0]))
                                        for raw, _flags, _idate, *binary in items))
        prepared = [(raw, p, flags, idate) for (raw, p), (_r, flags, idate, *_b) in zip(parsed, items)]
        return await self.append_parsed(mailbox_id, prepared)

    def _parsed_by_store(self, raw: bytes) -> bool:
        wants_file = getattr(self.store, "wants_file", None)
        return (hasattr(self.store, "append_raw") and len(raw) < PROCESS_FROM
                and (wants_file is None or not wants_file(raw)))

    async def append_parsed(self, mailbox_id: int, prepared: list) -> list:
        """prepared: (raw, parsed, flags, internaldate) from parse(); committed together."""
        return await self._publishing(self._submit("append_many", (mailbox_id, prepared), self._published),
                                      self._published)

    def _published(self, results: list) -> None:
        for r in results:
            self.hub.publish(r.events)

    async def read_blob(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io_threads, self.store.read_blob, key, start, end)

    async def stream_blob(self, key: str, start: int, end: int, conn, chunk: int = 1 << 18) -> None:
        """Send a range of a blob file to conn in chunks, waiting for each to
        drain. The next chunk is read while the last one drains, so the socket
        never waits for the disk; at most two chunks are in memory."""
        loop = asyncio.get_running_loop()
        if not hasattr(self.store, "blob_path"):
            # Bytes kept in the database (the PostgreSQL store): read range by range.
            while start < end:
                data = await self.read_blob(key, start, min(end, start + chunk))
                if not data:
                    raise OSError(f"blob {key} is shorter than its record")
                start += len(data)
                conn.write(data)
                await conn.drain()
                if conn.closed:
                    return
            return
        fd = await loop.run_in_executor(self._io_threads, os.open, self.store.blob_path(key), os.O_RDONLY)

        def read_from(pos: int):
            return self._io_threads.submit(os.pread, fd, min(chunk, end - pos), pos)
        reading = None      # the read under way: a concurrent future, which can't be cut short
        try:
            if start < end:
                reading = read_from(start)
            while reading is not None:
                data = await asyncio.wrap_future(reading)
                reading = None
                if not data:
                    raise OSError(f"blob {key} is shorter than its record")
                start += len(data)
                if start < end:
                    reading = read_from(start)
                conn.write(data)
                await conn.drain()
                if conn.closed:
                    return
        finally:
            if reading is not None and not reading.done():
                # Closed when that read is over, never under it (nor under a reused descriptor).
                reading.add_done_callback(lambda _done: os.close(fd))
            else:
                os.close(fd)

    def close(self) -> None:
        self._parser.close()
        if self._db_process is not None:
            self._db_process.stop()
        else:
            self._db_thread.stop()
        self._io_threads.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)
        self.store.close()


def _log_failure(method: str, future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        if is_disk_full(future.exception()):
            log.warning("posted store call %s not done: no room on the disk", method)
        else:
            log.error("posted store call %s failed: %r", method, future.exception())


def _call(store, method: str, args: tuple):
    return getattr(store, method)(*args)


def _read(store, method: str, args: tuple):
    return getattr(store.reading(), method)(*args)
