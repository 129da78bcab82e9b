"""Running a store's calls in group commits, with its deferred work between
them: what the database thread and the store process both do."""
from __future__ import annotations

import asyncio
import logging
import time

from .space import is_disk_full

log = logging.getLogger("posthouse.store")


class BatchRunner:
    IDLE_AFTER = 0.2      # seconds without calls before deferred work runs

    def __init__(self, store):
        self._run_batch = getattr(store, "run_batch", None) or _one_by_one
        self._idle_work = getattr(store, "idle_work", None)
        self._busy_work = getattr(store, "busy_work", None)
        self._idle_pending = self._idle_work is not None
        self._last_call = time.monotonic()

    def idle_wait(self) -> float | None:
        """How long to wait for a call before deferred work is due; None: as long as it takes."""
        if not self._idle_pending:
            return None
        # Deferred work waits until calls have stopped for a moment, then goes
        # on chunk after chunk for as long as nothing else is asked.
        return max(0.0, self.IDLE_AFTER - (time.monotonic() - self._last_call))

    def idle(self) -> None:
        """No call came within idle_wait(): a chunk of the deferred work."""
        if time.monotonic() - self._last_call >= self.IDLE_AFTER:
            self._idle_pending = _logged(self._idle_work, False)

    def run(self, calls: list, durable: bool) -> list[tuple[bool, object]]:
        """(ok, result or exception) per call, once their one commit is done."""
        try:
            results = self._run_batch(calls, durable)
        except BaseException as e:      # the commit itself failed: every call in the batch did
            results = [(False, e)] * len(calls)
        self._idle_pending = self._idle_work is not None
        self._last_call = time.monotonic()
        return results

    def between_batches(self) -> None:
        """After a batch's callers have their answers: work that must keep pace with calls."""
        if self._busy_work is not None:
            _logged(self._busy_work, None)


def _logged(work, on_failure):
    try:
        return work()
    except Exception as e:
        if is_disk_full(e):     # it waits for room; a traceback would tell no more
            log.warning("deferred store work waits for room on the disk: %s", e)
        else:
            log.exception("deferred store work failed")
        return on_failure


def _one_by_one(calls, durable=True):
    out = []
    for call in calls:
        try:
            out.append((True, call()))
        except Exception as e:
            out.append((False, e))
    return out


def settle(future: asyncio.Future, ok: bool, value) -> None:
    """Give a waiting caller its answer, unless it stopped waiting."""
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
