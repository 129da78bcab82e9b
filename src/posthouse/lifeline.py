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


# -- the server stops its children itself ----------------------------------------------
# A terminal's Ctrl-C goes to the whole process group, and systemd's SIGTERM to
# the whole control group: a child that died of it would print a traceback, or
# cut short the server's own clean stop. Children are started with these
# signals blocked (the mask is inherited across fork and exec, so none arrives
# while the child's interpreter starts) and call ignore_stop_signals() first thing.
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class stop_signals_held:
    """`with stop_signals_held(): start the child`: the calling thread blocks
    SIGINT and SIGTERM meanwhile (the process still gets them, on another thread)."""

    def __enter__(self):
        self._old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        return self

    def __exit__(self, *exc):
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old)


def ignore_stop_signals() -> None:
    """In a child: SIGINT and SIGTERM are ignored (any that came while held are dropped)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
