"""Counters in shared memory that tell a worker, without a system call,
whether the shared store process has sent it other workers' changes.

Before each command a worker takes in what the others committed (so the
command's untagged responses tell of it). Asking the socket costs a recv()
that nearly always finds nothing, on every command. Instead the store
process adds one to the worker's counter after each frame of others'
changes it has written to that worker's socket, and the worker reads its
socket only when the counter moved: the frame is in the socket's buffer by
then, since the count follows the send.

A memfd: the workers inherit its mapping when forked, the store process
(started with exec) gets the descriptor and maps it; a store process
started again maps the same counters.
"""
from __future__ import annotations

import mmap
import os
import struct

SLOTS = 256         # worker numbers, modulo
_COUNTER = struct.Struct("=Q")


class WakeCounters:
    def __init__(self, fd: int):
        self.fd = fd
        self._map = mmap.mmap(fd, SLOTS * _COUNTER.size)

    @classmethod
    def create(cls) -> "WakeCounters | None":
        """New zeroed counters; None where memfds are not to be had (each
        command then asks the socket)."""
        try:
            fd = os.memfd_create("posthouse-wake-counters")
            os.ftruncate(fd, SLOTS * _COUNTER.size)
        except (AttributeError, OSError):
            return None
        return cls(fd)

    def bump(self, worker: int) -> None:
        """(The store process, the counters' only writer.)"""
        offset = (worker % SLOTS) * _COUNTER.size
        _COUNTER.pack_into(self._map, offset, _COUNTER.unpack_from(self._map, offset)[0] + 1)

    def value(self, worker: int) -> int:
        return _COUNTER.unpack_from(self._map, (worker % SLOTS) * _COUNTER.size)[0]


class WakeWatch:
    """One worker's view of its counter: changed() is True when frames came
    since it last said so (and at first)."""

    def __init__(self, counters: WakeCounters, worker: int):
        self.counters = counters
        self.worker = worker
        self.seen = -1

    def changed(self) -> bool:
        value = self.counters.value(self.worker)
        if value == self.seen:
            return False
        self.seen = value
        return True
