"""Room on the disk where the store writes, and the errors that mean there is none.

New mail is refused while the data directory's file system has less than a
reserve free (`min_free_space`): a refusal the sender retries (452 4.3.1,
`NO [LIMIT]`) is better than an answer the store can't keep. The reserve
leaves the database room to file what was accepted, to commit flag changes
and expunges, and to start again. Reads need no room and go on.
"""
from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time

from .api import DiskFull

log = logging.getLogger("posthouse.store")

# No room on the device (ENOSPC), or over the file system's quota for our user (EDQUOT).
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# SQLite's SQLITE_FULL, as its text: a code doesn't survive the pickling to and from the store process.
_SQLITE_FULL_TEXT = "database or disk is full"


def is_disk_full(error: BaseException) -> bool:
    """Whether an error from a write means the disk (or our quota on it) is full."""
    if isinstance(error, DiskFull):
        return True
    if isinstance(error, OSError):
        return error.errno in _FULL_ERRNOS
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or _SQLITE_FULL_TEXT in str(error)
    return False


class FreeSpace:
    """Free bytes on a directory's file system (one statvfs), looked up again
    after TTL seconds while far from the reserve, and every time near it: a
    disk filling fast is seen at once, and every delivery and APPEND may ask."""

    TTL = 1.0
    NEAR = 256 << 20     # bytes above the reserve within which every question looks again

    def __init__(self, path: str | None, reserve: int = 0):
        self.path = path            # None: never short of room (a store without a disk of its own)
        self.reserve = reserve
        self._free = 0
        self._checked = float("-inf")
        self._short = False         # below the reserve when last looked (logged when it changes)

    def free(self) -> int:
        """Bytes an unprivileged writer may still use (f_bavail: what stays
        usable when root's share of the disk is all that is left)."""
        now = time.monotonic()
        if now - self._checked >= self.TTL or self._free < self.reserve + self.NEAR:
            st = os.statvfs(self.path)
            self._free = st.f_bavail * st.f_frsize
            self._checked = now
        return self._free

    def room_for(self, size: int = 0) -> bool:
        """Whether size more bytes leave the reserve free. A full disk has
        room for nothing, whatever the reserve."""
        if self.path is None:
            return True
        try:
            free = self.free()
        except OSError:
            return True     # can't tell: the write itself will say
        low = free <= 0 or free < self.reserve
        if low != self._short:
            self._short = low
            if not low:
                log.info("%s has room again (%.1f MiB free): taking new mail", self.path, free / 2**20)
            else:
                log.warning("%s has %.1f MiB free, below min_free_space (%.1f MiB): new mail is refused "
                            "for now (452 4.3.1, NO [LIMIT]) until there is room; reading goes on",
                            self.path, free / 2**20, self.reserve / 2**20)
        return not low and free - size >= self.reserve

    def forget(self) -> None:
        """Look again next time (a write just failed for want of room)."""
        self._checked = float("-inf")
