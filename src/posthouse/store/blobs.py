"""Message bytes as immutable files named by their SHA-256, written durably.

A file is written under tmp/ (named by the writing process and thread) and
renamed into place once complete, so a reader never sees half of one. A
write that fails removes its temporary file; one left by a process that
died is removed when a store is next opened (sweep_temporary).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading


class BlobStore:
    def __init__(self, root: str, fsync: bool = True):
        self.root = root
        self.fsync = fsync
        self.tmp = os.path.join(root, "tmp")
        os.makedirs(self.tmp, exist_ok=True)

    def path(self, key: str) -> str:
        return os.path.join(self.root, key[:2], key[2:4], key)

    @staticmethod
    def key_for(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def put(self, data: bytes) -> str:
        """Write data (if not already there) and return its key; durable on return."""
        key = self.key_for(data)
        path = self.path(key)
        if os.path.exists(path) and os.path.getsize(path) == len(data):
            return key
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(self.tmp, f"{key}.{os.getpid()}.{threading.get_ident()}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            # A full disk, most likely: what was written of it is no use to anyone.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync:
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return key

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        with open(self.path(key), "rb") as f:
            if start:
                f.seek(start)
            return f.read() if end is None else f.read(max(0, end - start))

    def delete(self, key: str) -> None:
        _remove(self.path(key))

    def sweep_temporary(self) -> int:
        """Remove temporary files whose writer is gone (a process that died
        mid-write); those of live processes (the server's, while a command
        line tool opens the store) are theirs. The number removed."""
        removed = 0
        for name in os.listdir(self.tmp):
            pid = name.split(".")[1] if name.count(".") == 2 else ""
            if pid.isdigit() and _alive(int(pid)):
                continue
            _remove(os.path.join(self.tmp, name))
            removed += 1
        return removed


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True         # someone else's: alive
    return True
