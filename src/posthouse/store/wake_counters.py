"""Counters in shared memory between the workers and the shared store
process (`workers = N`), read without a system call.

Wake counters. Before each command a worker takes in what the others
committed (so the command's untagged responses tell of it). Asking the
socket costs a recv() that nearly always finds nothing, on every command.
Instead the store process adds one to the worker's counter after each frame
of others' changes it has written to that worker's socket, and the worker
reads its socket only when the counter moved: the frame is in the socket's
buffer by then, since the count follows the send.

Pending counts: things a worker told a client are done before every worker
can see them, counted per worker and key (a key's slot is the key modulo
KEY_SLOTS) as "started" and "finished":
- BEHIND: write-behind STOREs (imap/write_behind.py), by mailbox. The worker
  counts one started before it answers the STORE; the store process counts
  it finished once its changes are sent to every worker.
- ARRIVALS: mail answered "250" from the arrivals journal
  (delivery/arrivals.py), by user (one per recipient). The worker counts one
  started when it accepts it; the store process counts it finished once the
  filing is committed and its changes are sent to every worker (the worker
  itself, for a message it never got to write to its journal).
A session of another worker about to run a command waits until "finished"
reaches the "started" it read (WakeWatch.wait_for_others): what a client
was told is done is then in its socket, and its command tells of it, as in
one process. Each counter has one writer, so no atomic operations are needed.

A memfd: the workers inherit its mapping when forked, the store process
(started with exec) gets the descriptor and maps it; a store process
started again maps the same counters.
"""
from __future__ import annotations

import asyncio
import logging
import mmap
import os
import struct
import time

log = logging.getLogger("posthouse.store")

SLOTS = 256         # worker numbers, modulo (wake counters)
PENDING_WORKERS = 64    # worker numbers with pending counts (more workers: none)
KEY_SLOTS = 1024    # keys (mailbox or user ids), modulo: two keys sharing a slot only wait for each other
BEHIND, ARRIVALS = 0, 1
_KINDS = 2
_COUNTER = struct.Struct("=Q")
_TABLE = PENDING_WORKERS * KEY_SLOTS * _COUNTER.size      # one table of started (or finished) counts
_PENDING = SLOTS * _COUNTER.size
_SIZE = _PENDING + _KINDS * 2 * _TABLE


class WakeCounters:
    def __init__(self, fd: int):
        self.fd = fd
        self._map = mmap.mmap(fd, _SIZE)

    @classmethod
    def create(cls) -> "WakeCounters | None":
        """New zeroed counters; None where memfds are not to be had (each
        command then asks the socket, and STOREs wait for their commit)."""
        try:
            fd = os.memfd_create("posthouse-wake-counters")
            os.ftruncate(fd, _SIZE)
        except (AttributeError, OSError):
            return None
        return cls(fd)

    def _get(self, offset: int) -> int:
        return _COUNTER.unpack_from(self._map, offset)[0]

    def _add(self, offset: int) -> None:
        _COUNTER.pack_into(self._map, offset, _COUNTER.unpack_from(self._map, offset)[0] + 1)

    # -- wake counters ----------------------------------------------------------------
    def bump(self, worker: int) -> None:
        """(The store process, the counters' only writer.)"""
        self._add((worker % SLOTS) * _COUNTER.size)

    def value(self, worker: int) -> int:
        return self._get((worker % SLOTS) * _COUNTER.size)

    # -- pending counts ---------------------------------------------------------------
    @staticmethod
    def _slot(kind: int, finished: bool, worker: int, key: int) -> int:
        return (_PENDING + (2 * kind + finished) * _TABLE
                + (worker * KEY_SLOTS + key % KEY_SLOTS) * _COUNTER.size)

    def started(self, kind: int, worker: int, key: int) -> None:
        if worker < PENDING_WORKERS:
            self._add(self._slot(kind, False, worker, key))

    def finished(self, kind: int, worker: int, key: int) -> None:
        if worker < PENDING_WORKERS:
            self._add(self._slot(kind, True, worker, key))

    def waiting(self, kind: int, worker: int, key: int) -> int | None:
        """The count "finished" must reach for what worker has started for
        the key so far, or None if it is all finished."""
        started = self._get(self._slot(kind, False, worker, key))
        return started if self._get(self._slot(kind, True, worker, key)) < started else None

    def reached(self, kind: int, worker: int, key: int, target: int) -> bool:
        return self._get(self._slot(kind, True, worker, key)) >= target

    def finished_count(self, kind: int, worker: int, key: int) -> int:
        return self._get(self._slot(kind, True, worker, key))

    def forget(self, kind: int, worker: int) -> None:
        """What the worker started and has not finished never will be: nobody
        waits for it. (The supervisor, before it starts the worker again, or
        a new store process: nobody counts "finished" of those then.)"""
        if worker >= PENDING_WORKERS:
            return
        for slot in range(KEY_SLOTS):
            _COUNTER.pack_into(self._map, self._slot(kind, True, worker, slot),
                               self._get(self._slot(kind, False, worker, slot)))


class WakeWatch:
    """One worker's view of the counters: changed() is True when frames came
    since it last said so (and at first); the pending counts of the others."""

    def __init__(self, counters: WakeCounters, worker: int, workers: int = 1):
        self.counters = counters
        self.worker = worker
        self.workers = workers      # how many there are (their numbers: 0 .. workers - 1)
        self.seen = -1
        # Pending counts need a counter of our own, and of each other's.
        self.pending_counts = workers <= PENDING_WORKERS
        # (kind, worker, key slot) -> how far "finished" fell short when a wait
        # was given up (what never will be finished): counted as finished
        # from then on, so later ones are waited for as long as they take, and no more.
        self._short: dict[tuple[int, int, int], int] = {}

    def changed(self) -> bool:
        value = self.counters.value(self.worker)
        if value == self.seen:
            return False
        self.seen = value
        return True

    def started(self, kind: int, key: int) -> None:
        self.counters.started(kind, self.worker, key)

    def finished(self, kind: int, key: int) -> None:
        self.counters.finished(kind, self.worker, key)

    def others_waiting(self, kind: int, key: int) -> list[tuple[int, int]]:
        """(worker, target) of the other workers with something of this kind
        for the key not finished yet."""
        if not self.pending_counts:
            return []
        counters, me = self.counters, self.worker
        waiting = []
        for worker in range(self.workers):
            if worker != me:
                target = counters.waiting(kind, worker, key)
                if target is not None and not self._reached(kind, worker, key, target):
                    waiting.append((worker, target))
        return waiting

    def _reached(self, kind: int, worker: int, key: int, target: int) -> bool:
        short = self._short.get((kind, worker, key % KEY_SLOTS), 0)
        return self.counters.reached(kind, worker, key, target - short)

    async def wait_for_others(self, kind: int, key: int, waiting: list[tuple[int, int]],
                              timeout: float, what: str) -> None:
        """Until each (worker, target) of waiting is finished, or timeout (then
        what is missing is counted as finished from now on, and the caller goes on)."""
        deadline = time.monotonic() + timeout
        pause = 0.0005      # doubling to 20 ms: most waits are a commit's few milliseconds
        while not all(self._reached(kind, worker, key, target) for worker, target in waiting):
            if time.monotonic() > deadline:
                log.warning("%s %s: another worker's was not done in %.0f s; going on", what, key, timeout)
                self.give_up(kind, key, waiting)
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.02)

    def give_up(self, kind: int, key: int, waiting: list[tuple[int, int]]) -> None:
        slot = key % KEY_SLOTS
        for worker, target in waiting:
            finished = self.counters.finished_count(kind, worker, key)
            if finished < target:
                self._short[(kind, worker, slot)] = target - finished
