"""The machinery of the pipelined benchmarks (capacity.py, fanout.py).

- `Conn`: a raw asyncio Protocol for one IMAP connection that counts tagged
  completions and does nothing else per byte: one regular expression (in C)
  finds tagged lines and literal announcements in each chunk received, and a
  literal's bytes are skipped unread. A response is never cut into lines.
- `Generators`: the load generator in several processes (this file's
  `worker` mode), so that it can use more than one core: each process
  connects and logs in its share of the sessions, says "ready", and on "go T"
  runs its job on a timeline shared through CLOCK_MONOTONIC (which is
  system-wide on Linux); it then prints one JSON line with what it counted and
  the CPU it used.
- `cpu_seconds(pids)`: user+system CPU of processes and all their
  descendants, from /proc (a server's figure is the sum over its tree).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# A literal announcement (its bytes follow, to be skipped), or a tagged line
# ("c<number> OK|NO|BAD ..."): the only two things ever looked for.
_EVENT = re.compile(rb"\{(\d+)\+?\}\r\n|^c(\d+) (OK|NO|BAD)([^\n]*)\n", re.M)
STATUSES = (b"OK", b"NO", b"BAD")


class Conn(asyncio.Protocol):
    """One connection. Subclasses get tagged(number, status, rest) for each
    tagged response, and chunk(buffer) for every chunk (to look for an
    untagged response they want, only while they want one)."""

    def __init__(self):
        self.transport = None
        self.greeted = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self._tail = b""      # the start of a line not yet whole
        self._skip = 0        # bytes of a literal still to come
        self.next_tag = 1

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(exc)
        if not self.greeted.done():
            self.greeted.set_exception(ConnectionError("closed before the greeting"))
        self.lost()

    def lost(self) -> None:
        pass

    def send(self, text: bytes) -> int:
        """Send one command (text without its tag; a literal must be LITERAL+'s
        {n+}); returns its tag's number."""
        n = self.next_tag
        self.next_tag += 1
        self.transport.write(b"c%d %s\r\n" % (n, text))
        return n

    def data_received(self, data: bytes) -> None:
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return
            data = data[self._skip:]
            self._skip = 0
        buf = self._tail + data if self._tail else data
        if not self.greeted.done():
            if b"\n" not in buf:
                self._tail = buf
                return
            line, _, buf = buf.partition(b"\n")
            if line.startswith(b"* OK"):
                self.greeted.set_result(line)
            else:
                self.greeted.set_exception(ConnectionError(f"greeting: {line[:100]!r}"))
                return
        self.chunk(buf)
        end = buf.rfind(b"\n") + 1
        pos = 0
        search = _EVENT.search
        while pos < end:
            m = search(buf, pos, end)
            if m is None:
                break
            if m.group(1) is not None:
                pos = m.end() + int(m.group(1))
                if pos > len(buf):
                    self._skip = pos - len(buf)
                    self._tail = b""
                    return
                if pos >= end:
                    end = buf.rfind(b"\n", pos) + 1
                    if end <= pos:
                        break
            else:
                self.tagged(int(m.group(2)), m.group(3), m.group(4))
                pos = m.end()
        self._tail = buf[max(pos, end):]

    def chunk(self, buf: bytes) -> None:
        pass

    def tagged(self, number: int, status: bytes, rest: bytes) -> None:
        pass


async def connect(cls, host: str, port: int, *args):
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: cls(*args), host, port)
    await conn.greeted
    return conn


def cpu_seconds(roots: list[int]) -> float:
    """CPU seconds (user+system, with those of reaped children) of the
    processes roots and all their descendants."""
    from servers import process_tree
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for root in roots:
        for pid in process_tree(root):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            total += sum(int(x) for x in fields[11:15])   # utime stime cutime cstime
    return total / tick


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Generators:
    """Generator processes, each running `script --worker` with one job (a
    JSON-able dict) on its standard input; what they print is read by a
    thread each (a buffered pipe can't be waited on with select)."""

    def __init__(self, script: str, jobs: list[dict]):
        import queue
        import threading
        self.procs = [subprocess.Popen([sys.executable, script, "--worker"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True) for _ in jobs]
        self.queues = []
        for proc, job in zip(self.procs, jobs):
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
            q: queue.Queue = queue.Queue()
            threading.Thread(target=self._read, args=(proc, q), daemon=True).start()
            self.queues.append(q)

    @staticmethod
    def _read(proc, q) -> None:
        for line in proc.stdout:
            q.put(line)
        q.put("")           # the end

    def _next(self, deadline: float, what: str) -> list[str]:
        import queue
        out = []
        for q in self.queues:
            try:
                out.append(q.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise TimeoutError(f"a generator process: no {what} in time") from None
        return out

    def ready(self, timeout: float) -> None:
        """Wait until every process has made its connections."""
        for line in self._next(time.monotonic() + timeout, "ready"):
            if line.strip() != "ready":
                raise RuntimeError(f"a generator process failed: {line.strip() or 'it ended'}")

    def go(self, at: float) -> None:
        for proc in self.procs:
            proc.stdin.write(f"go {at!r}\n")
            proc.stdin.flush()

    def lines(self, timeout: float) -> list[dict]:
        """One JSON line from each process."""
        out = []
        for line in self._next(time.monotonic() + timeout, "result"):
            if not line.startswith("{"):
                raise RuntimeError(f"a generator process failed: {line.strip() or 'it ended'}")
            out.append(json.loads(line))
        return out

    def results(self, timeout: float) -> list[dict]:
        """The last line of each, which then ends."""
        try:
            out = self.lines(timeout)
            for proc in self.procs:
                proc.wait(max(1.0, timeout))
            return out
        finally:
            self.stop()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def worker_main(job_coroutine) -> int:
    """A generator process: read the job, run job_coroutine(job, ready) where
    `await ready()` says "ready" and returns the start time given by "go",
    print its result as JSON."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    from servers import generator_scheduling
    generator_scheduling()
    job = json.loads(sys.stdin.readline())

    async def ready() -> float:
        print("ready", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line.startswith("go "):
            raise SystemExit("no go")
        return float(line.split()[1])

    result = asyncio.run(job_coroutine(job, ready))
    emit(result)
    return 0


def emit(result: dict) -> None:
    """In a generator process: one JSON line to the benchmark."""
    print(json.dumps(result), flush=True)


async def sleep_until(at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
