"""A private PostgreSQL for the tests: Debian's postgresql (the newest
/usr/lib/postgresql/N/bin, or $POSTHOUSE_PG_BIN) started as user `postgres`
(it refuses root) on a free 127.0.0.1 port, in a temporary directory owned by
that user, once per test session and stopped at its end. fsync is off: the
tests need no durability from it. why_not() says why there can be none (the
tests that want it then skip). new_database() gives each test an empty one.
"""
from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading


def _pg_bin() -> str:
    if os.environ.get("POSTHOUSE_PG_BIN"):
        return os.environ["POSTHOUSE_PG_BIN"]
    found = [p for p in glob.glob("/usr/lib/postgresql/*/bin/initdb") if p.split("/")[4].isdigit()]
    found.sort(key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else "/usr/lib/postgresql/15/bin"


PG_BIN = _pg_bin()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    def __init__(self, fsync: bool = False):
        self.fsync = fsync          # (the benchmarks want a durable one, as their other servers are)
        self.dir: str | None = None
        self.port: int | None = None
        self._as_user: list[str] = []
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    def why_not(self) -> str | None:
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not os.access(os.path.join(PG_BIN, tool), os.X_OK):
                return f"PostgreSQL binaries not found ({PG_BIN}/{tool}); install Debian's postgresql"
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "psycopg (3) is not installed"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no `postgres` user to run PostgreSQL as"
            if not shutil.which("runuser"):
                return "running as root and runuser is missing"
            self._as_user = ["runuser", "-u", "postgres", "--"]
        return None

    def _run(self, *args: str) -> None:
        done = subprocess.run(self._as_user + list(args), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="posthouse-pg-")
        if self._as_user:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        data = os.path.join(self.dir, "data")
        self._run(os.path.join(PG_BIN, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")
        self.port = _free_port()
        durability = "" if self.fsync else "-c fsync=off -c full_page_writes=off "
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 {durability}"
                   "-c max_connections=300")
        self._run(os.path.join(PG_BIN, "pg_ctl"), "-D", data, "-l", os.path.join(self.dir, "log"),
                  "-o", options, "-w", "-t", "60", "start")
        atexit.register(self.stop)     # even if the session is cut short

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """The URL of a new, empty database."""
        import psycopg
        with self._lock:
            name = f"{prefix}{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.dir is None:
            return
        try:
            data = os.path.join(self.dir, "data")
            if os.path.exists(os.path.join(data, "postmaster.pid")):
                self._run(os.path.join(PG_BIN, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


_server: PrivatePostgres | None = None
_why_not: str | None = None


def shared() -> PrivatePostgres | None:
    """The session's one server, started on first use; None (see why()) if it can't be."""
    global _server, _why_not
    if _server is None and _why_not is None:
        pg = PrivatePostgres()
        _why_not = pg.why_not()
        if _why_not is None:
            try:
                pg.start()
                _server = pg
            except Exception as e:
                pg.stop()
                _why_not = f"PostgreSQL did not start: {e}"
    return _server


def why() -> str | None:
    return _why_not


def stop_shared() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
