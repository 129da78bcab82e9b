"""What the three tracker benchmarks share: the tracker runner as a child
process (its peak memory from wait4), accounts in a data directory's CRM
database, figures of the CRM database, percentiles, and a process group
that is always killed at the end."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(BENCH, "tracker_runner.py")
GEN_MBOX = os.path.join(BENCH, "..", "..", "shared", "tools", "gen_mbox.py")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))     # ceil
    return ordered[int(rank) - 1]


class Child:
    """A subprocess in its own process group: wait() gives (returncode,
    peak RSS in KiB from wait4's ru_maxrss, wall seconds); stop() ends it
    and everything it started."""

    def __init__(self, argv: list[str], log_path: str, **kw):
        self.t0 = time.monotonic()
        self.log_path = log_path
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(log_path, "ab"),
                                     start_new_session=True, text=True, **kw)
        self.pid = self.proc.pid
        self.rusage = None
        self.returncode = None
        self.seconds = None

    def wait(self, timeout: float) -> tuple[int, int, float]:
        """Waits at most timeout seconds (then kills it: returncode -9)."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.kill()
                pid, status, rusage = os.wait4(self.pid, 0)
                break
            time.sleep(0.05)
        self.seconds = time.monotonic() - self.t0
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode      # Popen must not wait for it again
        self.rusage = rusage
        return self.returncode, rusage.ru_maxrss, self.seconds

    def output(self) -> str:
        return self.proc.stdout.read() if self.proc.stdout else ""

    def last_json(self) -> dict:
        for line in reversed(self.output().splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        return {}

    def log_tail(self, n: int = 3000) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def terminate(self, timeout: float = 30) -> None:
        if self.returncode is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.wait(timeout)

    def kill(self) -> None:
        if self.returncode is not None:     # reaped: its id may be another process's by now
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def runner(data_dir: str | None, log_path: str, *extra: str, config: str | None = None) -> Child:
    argv = [sys.executable, RUNNER] + (["--config", config] if config else ["--data-dir", data_dir]) + list(extra)
    return Child(argv, log_path)


def account_store(data_dir: str, config_path: str | None = None):
    """(engine, AccountStore) on data_dir's CRM database, tables made."""
    from posthouse.accounts.store import AccountStore
    from posthouse.db.engine import make_engine
    from posthouse.db.migrate import upgrade
    config = None
    if config_path:
        from posthouse.config import load_config
        config = load_config(config_path)
        data_dir = config.data_dir
    engine = make_engine(config.database_url if config else None, data_dir)
    upgrade(engine)
    return engine, AccountStore(engine, data_dir, config)


def crm_counts(data_dir: str) -> dict[str, int]:
    """Rows in the CRM database: messages, places (copies on servers), activities."""
    db = sqlite3.connect(f"file:{os.path.join(data_dir, 'crm.sqlite3')}?mode=ro", uri=True, timeout=30)
    try:
        return {name: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for name, table in (("messages", "messages"), ("places", "message_places"),
                                    ("activities", "activities"))}
    finally:
        db.close()


def read_status(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def wait_status(path: str, child: Child, predicate, timeout: float, what: str) -> dict:
    """The runner's status snapshot once predicate(snapshot) holds; SystemExit after timeout."""
    deadline = time.monotonic() + timeout
    status = {}
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise SystemExit(f"the tracker runner exited ({child.proc.returncode}) while waiting for {what}:\n"
                             + child.log_tail())
        status = read_status(path)
        if status and predicate(status):
            return status
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}; last status {status}\n"
                     + child.log_tail())


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tcp_connections(pid: int, remote_port: int | None = None) -> int:
    """Established TCP sockets the process holds (to remote_port, if given),
    from its /proc/PID/fd and /proc/net/tcp{,6}."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[9] not in inodes or fields[3] != "01":     # 01: ESTABLISHED
                        continue
                    if remote_port is None or int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
                        count += 1
        except OSError:
            pass
    return count
