"""A private PostgreSQL for the tests: Debian's postgresql (15) started as user
`postgres` (it refuses root) on a free 127.0.0.1 port, in a temporary
directory, for the whole test session; stopped at the end. Skips, saying why,
where the binaries or the `postgres` user are missing."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import pytest

def _pg_bin() -> str:
    """$POSTHOUSE_PG_BIN, else Debian's newest /usr/lib/postgresql/N/bin (15 on bookworm)."""
    if os.environ.get("POSTHOUSE_PG_BIN"):
        return os.environ["POSTHOUSE_PG_BIN"]
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else "/usr/lib/postgresql/15/bin"


PG_BIN = _pg_bin()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    def __init__(self):
        self.dir = None
        self.port = None
        self._as_user: list[str] = []

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

    def start(self) -> str:
        self.dir = tempfile.mkdtemp(prefix="posthouse-pg-")
        if self._as_user:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        data = os.path.join(self.dir, "data")
        self._run(os.path.join(PG_BIN, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")
        self.port = _free_port()
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run(os.path.join(PG_BIN, "pg_ctl"), "-D", data, "-l", os.path.join(self.dir, "log"),
                  "-o", options, "-w", "-t", "60", "start")
        self._run(os.path.join(PG_BIN, "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", "crmtest")
        return f"postgresql://postgres@127.0.0.1:{self.port}/crmtest"

    def stop(self) -> None:
        if self.dir is None:
            return
        try:
            data = os.path.join(self.dir, "data")
            if os.path.exists(os.path.join(data, "postmaster.pid")):
                self._run(os.path.join(PG_BIN, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a session-wide private PostgreSQL database (skips when there is none)."""
    pg = PrivatePostgres()
    why = pg.why_not()
    if why:
        pytest.skip(why)
    try:
        url = pg.start()
    except Exception as e:      # a half-started server is stopped below
        pg.stop()
        pytest.skip(f"PostgreSQL did not start: {e}")
    try:
        yield url
    finally:
        pg.stop()
