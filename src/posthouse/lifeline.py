"""Child processes end with the server that started them.

A server killed with SIGKILL runs no clean-up: its children (the store
process, the MIME parse workers) would go on forever, holding the data
directory's files (and, for the parse workers, the multiprocessing resource
tracker, which ends once they have). Each child calls die_with_parent()
first thing. On Linux the kernel sends it SIGKILL when the parent ends
(prctl PR_SET_PDEATHSIG); elsewhere a thread watches for the parent's end.
"""
from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

_PR_SET_PDEATHSIG = 1
WATCH_EVERY = 1.0       # seconds between looks at the parent, where prctl is missing


def die_with_parent(parent_pid: int) -> None:
    """End this process when parent_pid (its parent, which started it) ends."""
    if not _death_signal(signal.SIGKILL):
        threading.Thread(target=_watch, args=(parent_pid,), name="posthouse-lifeline", daemon=True).start()
    if os.getppid() != parent_pid:
        # The parent ended before the signal was asked for: it will never come.
        os._exit(1)


def _death_signal(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_EVERY)
    os._exit(1)
