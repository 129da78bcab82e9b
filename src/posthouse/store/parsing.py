"""MIME parsing of new mail in worker processes.

Parsing is pure Python and holds the GIL; in the server's own process it
would compete with every session. Messages above a small size go to a pool of
worker processes (spawned, not forked: the server has threads), which uses
the other cores. Smaller ones (most mail) are parsed right on the event loop:
at most about half a millisecond, less than the hop to a worker and back
costs, and a thread would hold the same GIL anyway. A broken pool (a worker
killed) is replaced, and the message is parsed on a thread meanwhile.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..lifeline import die_with_parent, ignore_stop_signals, stop_signals_held
from ..mime.binary import encode_nul_parts
from ..mime.message import ParsedMessage, normalize_newlines, parse_message

log = logging.getLogger("posthouse.store")

# Below this size a message is parsed on the event loop (or, APPENDed, by the
# store process). Measured: a round trip to a worker costs 0.7 ms more than
# parsing 10 KB here (0.25 ms), and 1.1 ms more at 64 KB (0.55 ms here).
PROCESS_FROM = 64 * 1024


def normalize_and_parse(raw: bytes, binary: bool = False) -> tuple[bytes, ParsedMessage]:
    if not binary:
        raw = normalize_newlines(raw)
    # A NUL can't go out in an ordinary literal: a part holding one (a ~{n} APPEND,
    # or mail delivered with one) is stored base64 (RFC 3516 4); BINARY decodes it.
    raw = encode_nul_parts(raw)
    return raw, parse_message(raw)


def _worker_start(parent_pid: int) -> None:
    ignore_stop_signals()       # the server stops the workers itself (see lifeline)
    die_with_parent(parent_pid)


class ParsePool:
    def __init__(self, processes: int, threads):
        self.processes = processes
        self.threads = threads
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Workers end with the server, even one killed (SIGKILL) that can't stop them;
            # then the multiprocessing resource tracker, which they keep open, ends too.
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_start, initargs=(os.getpid(),))
        return self._pool

    def warm_up(self) -> None:
        """Start the workers now rather than on the first big message."""
        if self.processes:
            pool = self._executor()
            with stop_signals_held():       # (workers are started by submit)
                for _ in range(self.processes):
                    pool.submit(normalize_and_parse, b"Subject: warm-up\r\n\r\n")

    async def parse(self, raw: bytes, binary: bool = False) -> tuple[bytes, ParsedMessage]:
        if len(raw) < PROCESS_FROM:
            return normalize_and_parse(raw, binary)
        loop = asyncio.get_running_loop()
        if self.processes:
            try:
                with stop_signals_held():   # (a worker may be started by the submit)
                    parsed = loop.run_in_executor(self._executor(), normalize_and_parse, raw, binary)
                return await parsed
            except BrokenProcessPool:
                log.error("a parser process died; starting new ones")
                self._pool = None
        return await loop.run_in_executor(self.threads, normalize_and_parse, raw, binary)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
