"""Mail answered "250" once it is in the arrivals journal, filed just after.

Delivery's answer waited for the message to be parsed, indexed and
committed to the database with an fsync: most of a delivery's time, spent
while the sending MTA waits. Here a message (small mail only; big mail is
filed before the answer as before) is answered once its record is durable
in the journal (delivery/journal.py), and filed right after: Sieve, the
mailbox, then one store call that commits the messages with the record's
sequence number, without an fsync of its own (the journal has the mail).
A crash before the filing is replayed from the journal at the next start.

What a client sees does not change: an IMAP or POP3 session of a user with
mail accepted but not yet filed waits for it before its next command, so
mail answered "250" is there for any command that comes after.

Quotas are checked when the mail is accepted, against the user's usage plus
the mail accepted for them and not yet filed (exact: near the limit, the
check waits for the filing); filing never refuses what was accepted.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import struct
import time
from collections import deque
from dataclasses import dataclass

from ..store.api import NoSuchMailbox, StoreError
from ..store.parsing import PROCESS_FROM
from ..store.process import StoreProcessDied
from ..store.wake_counters import ARRIVALS
from ..store.space import is_disk_full
from .deliver import DeliveryResult, disk_full, mailbox_full
from .journal import Journal
from .recipients import Recipient, quota_exceeded

log = logging.getLogger("posthouse.delivery")

_META_LEN = struct.Struct(">I")


@dataclass(eq=False)
class Arrival:
    seq: int
    raw: bytes
    mail_from: str
    recipients: list[Recipient]
    time: float
    attempts: int = 0           # failures of its own (routing, filing), not the store's
    store_failures: int = 0     # failures of the store under it (died, disk full)
    failed: bool = False        # a filing of it failed: it may have committed unheard of


def encode_arrival(raw: bytes, mail_from: str, recipients: list[Recipient], now: float) -> bytes:
    meta = json.dumps({"from": mail_from or "", "time": now,
                       "rcpt": [[r.address, r.user.id, r.detail] for r in recipients]}).encode()
    return _META_LEN.pack(len(meta)) + meta + raw


def decode_arrival(payload: bytes) -> tuple[dict, bytes]:
    """(meta, raw) of a journal record; ValueError if it isn't one."""
    if len(payload) < _META_LEN.size:
        raise ValueError("record too short")
    (length,) = _META_LEN.unpack_from(payload)
    meta = json.loads(payload[_META_LEN.size:_META_LEN.size + length])
    if not isinstance(meta, dict) or not isinstance(meta.get("rcpt"), list):
        raise ValueError("record without recipients")
    return meta, payload[_META_LEN.size + length:]


class Arrivals:
    MAX_SIZE = PROCESS_FROM     # bigger mail is filed before its answer, as before
    MAX_WAITING = 1000          # accepted (or being written), not yet filed: then an answer waits for room
    BATCH = 32                  # filed together (their store calls share group commits)
    SETTLE_TIMEOUT = 10.0       # the longest a session waits for a user's mail to be filed
    RETRY_AFTER = 1.0           # a filing that failed is tried again after this, doubling
    RETRY_MAX = 300.0           # ... up to this, for a failure of the arrival's own
    STORE_RETRY_MAX = 2.0       # ... up to this, for a failure of the store (and at once when it works again)
    PLAIN_AFTER = 2             # failures after which an arrival goes to INBOX without Sieve

    def __init__(self, deliverer, journal: Journal):
        self.deliverer = deliverer
        self.service = deliverer.service
        self.journal = journal
        # With several workers, each has a journal (worker 0's is the one of a
        # single process): its number is passed with every call about filings.
        self.journal_key: tuple = ()
        self.pending: dict[int, int] = {}           # user id -> their arrivals not yet filed
        self._pending_bytes: dict[int, int] = {}    # user id -> the size of those
        self._unfiled: set[int] = set()             # sequence numbers written or being written
        self._queue: deque[Arrival] = deque()
        self._work = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._settled: dict[int, asyncio.Event] = {}
        self._worker: asyncio.Task | None = None
        self._retiring = False
        self._retire_task: asyncio.Task | None = None     # kept from the garbage collector
        self._retries: dict[int, asyncio.TimerHandle] = {}     # seq -> its retry, waiting
        self._waiting_for_store: dict[int, Arrival] = {}        # those waiting because the store failed
        self._segment_holds = 0     # backups under way (admin/backup.py): no segment is dropped
        # Several workers: each accepted message counted in shared memory per
        # user, started and finished (store/wake_counters.py), so another
        # worker's session waits for it as ours wait in settled().
        self.watch = None

    def takes(self, raw: bytes) -> bool:
        """Whether this message is answered from the journal (started, and small)."""
        return self._worker is not None and not self._worker.done() and len(raw) <= self.MAX_SIZE

    # -- starting and stopping ------------------------------------------------------
    async def start(self) -> None:
        """Read the journal and queue whatever in it is not filed yet."""
        known = await self.service.call("last_filed_arrival", *self.journal_key)
        records = self.journal.recover(known)
        filed = await self.service.call("filed_arrivals", self.journal.oldest_seq, *self.journal_key) if records else set()
        replayed = 0
        for record in records:
            if record.seq in filed:
                continue
            arrival = await self._arrival_of(record)
            if arrival is None:
                continue
            self._unfiled.add(record.seq)
            for recipient in arrival.recipients:
                self._count(recipient.user.id, len(arrival.raw))
            self._enqueue(arrival)
            replayed += 1
        if replayed:
            log.info("arrivals journal: %d accepted messages not filed before the last stop, filing them now",
                     replayed)
        self._worker = asyncio.ensure_future(self._run())
        await self._retire()

    async def _arrival_of(self, record) -> Arrival | None:
        try:
            meta, raw = decode_arrival(record.payload)
        except (ValueError, UnicodeDecodeError) as e:
            log.error("arrivals journal: record %d can't be read (%s); skipped", record.seq, e)
            return None
        recipients = []
        for address, user_id, detail in meta["rcpt"]:
            user = await self.service.call("user_by_id", user_id)
            if user is None:
                log.warning("arrivals journal: record %d: user %s no longer exists", record.seq, user_id)
                continue
            recipients.append(Recipient(address, user, detail))
        return Arrival(record.seq, raw, meta.get("from", ""), recipients, meta.get("time") or time.time())

    async def close(self, timeout: float = 30.0) -> None:
        """File what is waiting (for up to timeout seconds), then stop. What is
        left stays in the journal for the next start."""
        if self._worker is None:
            return
        deadline = time.monotonic() + timeout
        while (self._queue or self._unfiled) and time.monotonic() < deadline and not self._worker.done():
            await asyncio.sleep(0.01)
        for handle in self._retries.values():
            handle.cancel()
        self._worker.cancel()
        try:
            await self._worker
        except (asyncio.CancelledError, Exception):
            pass
        self._worker = None
        await self._retire(final=True)
        self.journal.close()

    # -- accepting ------------------------------------------------------------------
    async def accept(self, raw: bytes, recipients: list[Recipient], mail_from: str):
        """Each recipient's DeliveryResult: 250 once the message is in the
        journal, unless their mailbox is full."""
        results, taken = [], []
        for recipient in recipients:
            if not await self._has_inbox(recipient):
                results.append(DeliveryResult(recipient, 451, "4.2.0", "The recipient has no INBOX"))
            elif await self._over_quota(recipient, len(raw)):
                results.append(mailbox_full(recipient, self.deliverer.config.quota_full_tempfail))
            else:
                results.append(None)
                taken.append(recipient)
        if taken:
            while len(self._unfiled) >= self.MAX_WAITING:
                self._room.clear()
                await self._room.wait()
            now = time.time()
            seq, written = self.journal.append(encode_arrival(raw, mail_from, taken, now))
            self._unfiled.add(seq)
            arrival = Arrival(seq, raw, mail_from, taken, now)
            for recipient in taken:
                self._count(recipient.user.id, len(raw))
            # Queued for filing once written, even if the sender has gone meanwhile.
            written.add_done_callback(functools.partial(self._written, arrival))
            try:
                await asyncio.shield(written)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if is_disk_full(e):      # the journal had no room for it
                    self.service.space.forget()
                    return [r or disk_full(recipients[i]) for i, r in enumerate(results)]
                return [r or DeliveryResult(recipients[i], 451, "4.3.0", "Temporary failure, try again later")
                        for i, r in enumerate(results)]
        return [r or DeliveryResult(recipients[i], 250, "2.0.0", "Delivered")
                for i, r in enumerate(results)]

    def _written(self, arrival: Arrival, written: asyncio.Future) -> None:
        if written.exception() is None:
            self._enqueue(arrival)
            return
        log.error("arrivals journal: a message could not be written (%r)", written.exception())
        self._filed(arrival, finished=True)     # counted off: never answered 250, nothing to file

    async def _has_inbox(self, recipient: Recipient) -> bool:
        if recipient.facts is not None and recipient.facts.inbox is not None:
            return True
        try:
            await self.service.call("get_mailbox", recipient.user.id, "INBOX")
        except NoSuchMailbox:
            return False
        return True

    async def _over_quota(self, recipient: Recipient, size: int) -> bool:
        facts = recipient.facts
        if facts is not None and facts.quota.storage_limit is None and facts.quota.message_limit is None:
            return False        # no limits when RCPT read them (a moment ago): none to check
        user_id = recipient.user.id
        quota = await self.service.call("get_quota", user_id)
        if quota.storage_limit is None and quota.message_limit is None:
            return False
        waiting = self.pending.get(user_id, 0)
        if not waiting:
            return quota_exceeded(quota, size)
        quota.messages += waiting
        quota.storage += self._pending_bytes.get(user_id, 0)
        if not quota_exceeded(quota, size):
            return False
        # Near the limit: the usage counted twice or not at all is the arrivals
        # being filed this moment. Exact once they are in.
        await self.settled(user_id)
        return quota_exceeded(await self.service.call("get_quota", user_id), size)

    def _count(self, user_id: int, size: int) -> None:
        if self.watch is not None:
            self.watch.started(ARRIVALS, user_id)
        self.pending[user_id] = self.pending.get(user_id, 0) + 1
        self._pending_bytes[user_id] = self._pending_bytes.get(user_id, 0) + size

    def _enqueue(self, arrival: Arrival) -> None:
        if arrival.seq not in self._unfiled:
            return
        self._queue.append(arrival)
        self._work.set()

    # -- waiting for the filing -----------------------------------------------------
    async def settled(self, user_id: int, timeout: float | None = None) -> None:
        """Once the mail accepted for this user so far is filed (or timeout)."""
        if user_id not in self.pending:
            return
        event = self._settled.get(user_id)
        if event is None:
            event = self._settled[user_id] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout or self.SETTLE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("mail for user %s is slow to be filed: going on without it", user_id)

    # -- filing ---------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._work.clear()
                await self._work.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(self.BATCH, len(self._queue)))]
            try:
                await self._file(batch)
            except Exception as e:      # a bug: these wait for a retry, the worker goes on
                for arrival in batch:
                    if arrival.seq in self._unfiled:
                        self._failed(arrival, e)
            if len(self.journal.segments) > 1 and not self._retiring:
                self._retire_task = asyncio.ensure_future(self._retire())

    async def _file(self, batch: list[Arrival]) -> None:
        """Route each arrival, then file them all in one store call (one
        trip to the store); if that fails, each alone, so one that can't be
        filed holds up no other."""
        routed = []
        for arrival in batch:
            try:
                if arrival.attempts >= self.PLAIN_AFTER:
                    routing = await self.deliverer.inbox_routing(arrival)
                else:
                    routing = await self.deliverer.route_arrival(arrival)
                routed.append((arrival, routing))
            except Exception as e:
                self._failed(arrival, e)
        if not routed:
            return
        try:
            filed = await self.service.file_arrivals(
                [(a.seq, r.raw, r.parsed, r.targets, a.time) for a, r in routed],
                [recipient.user.id for a, _r in routed for recipient in a.recipients], self.journal_key)
        except Exception as e:
            if len(routed) == 1:
                routed[0][0].failed = True
                self._failed(routed[0][0], e, filing=True)
                return
            for arrival, _routing in routed:
                arrival.failed = True
            for arrival, _routing in routed:
                await self._file([arrival])
            return
        # The store works: what waits for it goes now, not when its timer says.
        self._retry_store_failures()
        # Every event first, then every arrival counted filed: nothing after
        # (a vacation reply's trouble) can stop them, nor leave filed mail
        # unannounced to be tried again.
        lost = set()
        for (arrival, routing), results in zip(routed, filed):
            try:
                self.service.hub.publish([event for result in results for event in result.events])
            except Exception:
                log.exception("arrival %d: its events could not be published", arrival.seq)
                lost.update(mailbox_id for _user, mailbox_id, _flags in routing.targets)
            if not results and arrival.failed and routing.targets:
                # Filed already, by a try whose answer was lost (its store process
                # died): its events were never published. Read those mailboxes again.
                lost.update(mailbox_id for _user, mailbox_id, _flags in routing.targets)
        if lost:
            self.service.changes_lost(lost)
        for arrival, _routing in routed:
            self._filed(arrival)
        for arrival, routing in routed:
            try:
                await self.deliverer.after_filing(arrival, routing)
            except Exception:
                log.exception("arrival %d: filed, but what follows its filing failed", arrival.seq)

    def _failed(self, arrival: Arrival, error: Exception, filing: bool = False) -> None:
        """filing: the store call failed (else the routing, or a bug)."""
        if filing and _store_trouble(error):
            # Not this message's fault: no step toward filing it without Sieve,
            # and a short wait (cut short when a filing works again).
            arrival.store_failures += 1
            delay = min(self.RETRY_AFTER * 2 ** (arrival.store_failures - 1), self.STORE_RETRY_MAX)
            self._waiting_for_store[arrival.seq] = arrival
        else:
            arrival.attempts += 1
            delay = min(self.RETRY_AFTER * 2 ** (arrival.attempts - 1),
                        self.STORE_RETRY_MAX if filing else self.RETRY_MAX)
        log.error("arrival %d could not be filed (%r); trying again in %.1f s", arrival.seq, error, delay)
        old = self._retries.pop(arrival.seq, None)
        if old is not None:
            old.cancel()
        self._retries[arrival.seq] = asyncio.get_running_loop().call_later(delay, self._retry, arrival)

    def _retry(self, arrival: Arrival) -> None:
        self._retries.pop(arrival.seq, None)
        self._waiting_for_store.pop(arrival.seq, None)
        self._enqueue(arrival)

    def _retry_store_failures(self) -> None:
        for arrival in list(self._waiting_for_store.values()):
            handle = self._retries.pop(arrival.seq, None)
            if handle is not None:
                handle.cancel()
            self._retry(arrival)

    def _filed(self, arrival: Arrival, finished: bool = False) -> None:
        """finished: count it finished in shared memory here (a filing is
        counted by the store process: see StoreService.file_arrivals)."""
        if arrival.seq not in self._unfiled:
            return      # counted off already
        self._unfiled.discard(arrival.seq)
        if len(self._unfiled) < self.MAX_WAITING:
            self._room.set()
        for recipient in arrival.recipients:
            user_id = recipient.user.id
            if finished and self.watch is not None:
                self.watch.finished(ARRIVALS, user_id)
            left = self.pending.get(user_id, 0) - 1
            if left > 0:
                self.pending[user_id] = left
                self._pending_bytes[user_id] -= len(arrival.raw)
                continue
            self.pending.pop(user_id, None)
            self._pending_bytes.pop(user_id, None)
            event = self._settled.pop(user_id, None)
            if event is not None:
                event.set()

    async def _retire(self, final: bool = False) -> None:
        """Drop the journal's segments whose every record is filed: after a
        durable commit, which makes those filings durable."""
        if self._retiring or self._segment_holds:
            return
        self._retiring = True
        try:
            unfiled_from = min(self._unfiled, default=self.journal.next_seq)
            segments = self.journal.retirable(unfiled_from, include_current=final)
            if not segments:
                return
            await self.service.call("prune_arrivals", segments[0].first, *self.journal_key)
            for segment in segments:
                self.journal.remove(segment)
        except Exception:
            log.exception("arrivals journal: filed segments could not be removed (they are kept)")
        finally:
            self._retiring = False

    # -- backups (admin/backup.py) ----------------------------------------------------
    @property
    def backlog(self) -> int:
        """Messages accepted and not filed yet."""
        return len(self._unfiled)

    async def hold_segments(self) -> None:
        """From now until release_segments(), no segment is dropped and no
        filing row pruned: a backup copies the journal, then the database,
        and every record it copied must have its filing row (if filed) there."""
        self._segment_holds += 1
        while self._retiring:       # a drop under way finishes first
            await asyncio.sleep(0.01)

    def release_segments(self) -> None:
        self._segment_holds -= 1


def _store_trouble(error: BaseException) -> bool:
    """A failure of the store rather than of the message: its process died,
    or the database could not be written (a full disk, say); it passes."""
    return isinstance(error, (StoreProcessDied, StoreError, OSError, sqlite3.OperationalError))
