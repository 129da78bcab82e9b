"""Counters in shared memory that tell a worker, without a system call,
whether the shared store process has sent it other workers' changes.

Before each command a worker takes in what the others committed (so the
command's untagged responses tell of it). Asking the socket costs a recv()
that nearly always finds nothing, on every command. Instead the store
process adds one to the worker's counter after each frame of others'
changes it has written to that worker's socket, and the worker reads its
socket only when the counter moved: the frame is in the socket's buffer by
then, since the count follows the send.

The same memory counts write-behind STOREs (imap/write_behind.py) across
workers, per worker and mailbox (a mailbox's slot is its id modulo
MAILBOX_SLOTS): the worker counts each it sends ("sent"), the store process
each it has committed and sent to the other workers ("done"). A session of
another worker about to run a command on that mailbox waits until "done"
reaches the "sent" it read: the change a client was told is done is then in
its socket, and its command tells of it, as in one process. Each counter
has one writer, so no atomic operations are needed.

A memfd: the workers inherit its mapping when forked, the store process
(started with exec) gets the descriptor and maps it; a store process
started again maps the same counters.
"""
from __future__ import annotations

import mmap
import os
import struct

SLOTS = 256         # worker numbers, modulo
BEHIND_WORKERS = 64     # worker numbers with write-behind counters (more: no write-behind)
MAILBOX_SLOTS = 1024    # mailbox ids, modulo (two mailboxes sharing a slot only wait for each other)
_COUNTER = struct.Struct("=Q")
_SENT = SLOTS * _COUNTER.size
_DONE = _SENT + BEHIND_WORKERS * MAILBOX_SLOTS * _COUNTER.size
_SIZE = _DONE + BEHIND_WORKERS * MAILBOX_SLOTS * _COUNTER.size


class WakeCounters:
    def __init__(self, fd: int):
        self.fd = fd
        self._map = mmap.mmap(fd, _SIZE)

    @classmethod
    def create(cls) -> "WakeCounters | None":
        """New zeroed counters; None where memfds are not to be had (each
        command then asks the socket)."""
        try:
            fd = os.memfd_create("posthouse-wake-counters")
            os.ftruncate(fd, _SIZE)
        except (AttributeError, OSError):
            return None
        return cls(fd)

    def bump(self, worker: int) -> None:
        """(The store process, the counters' only writer.)"""
        offset = (worker % SLOTS) * _COUNTER.size
        _COUNTER.pack_into(self._map, offset, _COUNTER.unpack_from(self._map, offset)[0] + 1)

    def value(self, worker: int) -> int:
        return _COUNTER.unpack_from(self._map, (worker % SLOTS) * _COUNTER.size)[0]

    # -- write-behind STOREs ---------------------------------------------------------
    @staticmethod
    def _behind(base: int, worker: int, mailbox_id: int) -> int:
        return base + (worker * MAILBOX_SLOTS + mailbox_id % MAILBOX_SLOTS) * _COUNTER.size

    def _add(self, offset: int) -> None:
        _COUNTER.pack_into(self._map, offset, _COUNTER.unpack_from(self._map, offset)[0] + 1)

    def behind_sent(self, worker: int, mailbox_id: int) -> None:
        """(Worker `worker`, before it answers the STORE.)"""
        self._add(self._behind(_SENT, worker, mailbox_id))

    def behind_done(self, worker: int, mailbox_id: int) -> None:
        """(The store process, once the STORE's events are sent to every worker.)"""
        if worker < BEHIND_WORKERS:
            self._add(self._behind(_DONE, worker, mailbox_id))

    def behind_waiting(self, worker: int, mailbox_id: int) -> int | None:
        """The count "done" must reach for the STOREs worker has sent on the
        mailbox so far, or None if they are all done."""
        sent = _COUNTER.unpack_from(self._map, self._behind(_SENT, worker, mailbox_id))[0]
        done = _COUNTER.unpack_from(self._map, self._behind(_DONE, worker, mailbox_id))[0]
        return sent if done < sent else None

    def behind_reached(self, worker: int, mailbox_id: int, target: int) -> bool:
        return _COUNTER.unpack_from(self._map, self._behind(_DONE, worker, mailbox_id))[0] >= target

    def behind_forget(self, worker: int) -> None:
        """(The store process, when a worker's connection ended: what it sent
        and did not reach us never will; nobody waits for it.)"""
        if worker >= BEHIND_WORKERS:
            return
        for slot in range(MAILBOX_SLOTS):
            sent = _COUNTER.unpack_from(self._map, self._behind(_SENT, worker, slot))[0]
            _COUNTER.pack_into(self._map, self._behind(_DONE, worker, slot), sent)


class WakeWatch:
    """One worker's view of its counter: changed() is True when frames came
    since it last said so (and at first)."""

    def __init__(self, counters: WakeCounters, worker: int, workers: int = 1):
        self.counters = counters
        self.worker = worker
        self.workers = workers      # how many there are (their numbers: 0 .. workers - 1)
        self.seen = -1
        # Write-behind STOREs across workers need a counter of our own, and of each other's.
        self.write_behind = workers <= BEHIND_WORKERS
        # (worker, mailbox slot) -> a count waited for in vain: not waited for again.
        self._gave_up: dict[tuple[int, int], int] = {}

    def give_up(self, mailbox_id: int, waiting: list[tuple[int, int]]) -> None:
        for worker, target in waiting:
            self._gave_up[(worker, mailbox_id % MAILBOX_SLOTS)] = target

    def others_behind(self, mailbox_id: int) -> list[tuple[int, int]]:
        """(worker, target) of the other workers with write-behind STOREs on
        the mailbox not yet done (see WakeCounters.behind_waiting)."""
        counters, me = self.counters, self.worker
        waiting = []
        for worker in range(self.workers):
            if worker != me:
                target = counters.behind_waiting(worker, mailbox_id)
                if target is not None and target > self._gave_up.get((worker, mailbox_id % MAILBOX_SLOTS), 0):
                    waiting.append((worker, target))
        return waiting

    def changed(self) -> bool:
        value = self.counters.value(self.worker)
        if value == self.seen:
            return False
        self.seen = value
        return True
