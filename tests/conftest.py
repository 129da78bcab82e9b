"""Shared fixtures: a real Posthouse server on 127.0.0.1, and fresh users."""
from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import signal
import socket
import sys
import threading
import time

import pytest

from posthouse.auth.passwords import hash_password
from posthouse.config import Config

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
DEFAULT_BOXES = [("INBOX", None), ("Drafts", "\\Drafts"), ("Sent", "\\Sent"), ("Trash", "\\Trash"),
                 ("Junk", "\\Junk"), ("Archive", "\\Archive")]


# -- the run leaves no process behind -------------------------------------------------
_PR_SET_CHILD_SUBREAPER = 36


def pytest_sessionstart(session):
    """Processes orphaned under this run (a killed server's children) become
    this process's children, so the check at the end sees them too (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _running_children() -> list[tuple[int, str]]:
    """This process's children that still run (zombies are reaped), but the
    multiprocessing resource tracker, which is this process's own and ends with it."""
    me = os.getpid()
    try:
        from multiprocessing import resource_tracker
        tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    except Exception:
        tracker = None
    out = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not name.isdigit() or int(name) == tracker:
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            if int(fields[1]) != me:
                continue
            if fields[0] == "Z":
                os.waitpid(int(name), os.WNOHANG)
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                out.append((int(name), f.read().replace(b"\0", b" ").decode(errors="replace")[:150]))
        except (OSError, ValueError, ChildProcessError):
            continue
    return out


def _xdist_controller(config) -> bool:
    """The process that hands tests to pytest-xdist's workers (`-n N`): its
    children are the workers; each checks its own."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_testnodedown(node, error):
    """(xdist) What a worker found left running, reported by the controller."""
    left = getattr(node, "workeroutput", {}).get("left_running")
    if left:
        node.config._left_by_workers = getattr(node.config, "_left_by_workers", []) + [left]


def _fail_the_run(session, text: str) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(text, red=True)
    else:
        print(text, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_sessionfinish(session, exitstatus):
    """Any child process still running once every test and fixture is done
    is killed, named, and fails the run."""
    if _xdist_controller(session.config):
        for text in getattr(session.config, "_left_by_workers", []):
            _fail_the_run(session, text)
        return
    from tests import pgserver
    pgserver.stop_shared()      # the private PostgreSQL, if a test started it
    deadline = time.monotonic() + 3      # (a moment for ones on their way out)
    left = _running_children()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _running_children()
    if not left:
        return
    for pid, _cmd in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    text = "processes left running by the tests (killed now):\n" + "\n".join(f"  {p} {c}" for p, c in left)
    if hasattr(session.config, "workerinput"):
        session.config.workeroutput["left_running"] = text      # (for the controller to report)
    _fail_the_run(session, text)


def shared_path(*parts) -> str:
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"../shared is absent here ({path} not found)")
    return path


class RunningServer:
    """A Posthouse server on its own event loop in a background thread."""

    def __init__(self, data_dir: str, store: str | None = None, **overrides):
        """store: "sqlite" or "postgresql"; by default the kind the running
        test is parametrized with (live_store), else $POSTHOUSE_TEST_STORE."""
        from posthouse.app import build_context, start_arrivals, stop_arrivals
        self._stop_arrivals = stop_arrivals
        from posthouse.delivery.lmtp import LmtpServer
        from posthouse.delivery.smtp import SmtpServer
        from posthouse.delivery.submission import SubmissionServer
        from posthouse.managesieve.server import ManageSieveServer
        from posthouse.pop3.server import Pop3Server
        from posthouse.imap.server import ImapServer
        opts = dict(data_dir=data_dir, imap_port=0, imap_tls_port=0, lmtp_port=0, smtp_port=0, pop3_port=0, pop3_tls_port=0, managesieve_port=0,
                    submission_port=0, submission_tls_port=0,
                    web_port=None,     # (tests/web starts the API on a free port of its own)
                    fsync=False,
                    domains=["example.com", "mail.test"],
                    failure_delay=0.05, max_message_size=1024 * 1024, hostname="mx.test",
                    # Every test logs in from 127.0.0.1, some with wrong passwords on purpose:
                    # the guessing throttle is off here (tests/live/test_throttle.py turns it on).
                    auth_throttle_max=0)
        if (store or current_store()) == "postgresql" and "database_url" not in overrides:
            # The mail store in PostgreSQL (issue 24): one database per data
            # directory, so a server started again over it finds its mail.
            key = os.path.abspath(data_dir)
            opts["database_url"] = _PG_DATABASES.get(key) or _PG_DATABASES.setdefault(key, postgres_database())
        opts.update(overrides)
        self.config = Config(**opts)
        self.loop = asyncio.new_event_loop()
        self.ctx = build_context(self.config)
        self.server = ImapServer(self.ctx)
        self.lmtp = LmtpServer(self.ctx)
        self.smtp = SmtpServer(self.ctx)
        self.pop3 = Pop3Server(self.ctx)
        self.sieve = ManageSieveServer(self.ctx)
        self.queue = self.ctx.queue
        self.submission = SubmissionServer(self.ctx)
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(start_arrivals(self.ctx))
            self.loop.run_until_complete(self.server.start())
            self.loop.run_until_complete(self.lmtp.start())
            self.loop.run_until_complete(self.smtp.start())
            self.loop.run_until_complete(self.pop3.start())
            self.loop.run_until_complete(self.sieve.start())
            self.loop.run_until_complete(self.submission.start())
            self.loop.call_soon(self.queue.start)
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(10)
        self.host = "127.0.0.1"
        self.port, self.tls_port = self.server.ports[0], self.server.ports[1]
        self.lmtp_port = self.lmtp.ports[0] if self.lmtp.ports else None
        self.smtp_port = self.smtp.ports[0] if self.smtp.ports else None
        self.pop3_port, self.pop3_tls_port = self.pop3.ports
        self.sieve_port = self.sieve.ports[0]
        self.submission_port, self.submission_tls_port = self.submission.ports
        self._names = itertools.count(1)

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def add_user(self, name: str | None = None, password: str = "pw-secret") -> tuple[str, str]:
        name = name or f"user{next(self._names)}"
        self.call(self.ctx.service.call("create_user", name, hash_password(password), DEFAULT_BOXES))
        return name, password

    def stop(self):
        self.call(self.sieve.close())
        self.call(self.submission.close())
        self.call(self.queue.close())
        self.call(self.pop3.close())
        self.call(self.smtp.close())
        self.call(self.lmtp.close())
        self.call(self._stop_arrivals(self.ctx))
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.ctx.service.close()


def free_ports(n: int) -> list[int]:
    """n TCP ports free on 127.0.0.1 now (held together while chosen, so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class WorkersServer:
    """`posthouse serve` with `workers = N` (issue 24), in a process of its own
    (the supervisor, its store process and N session processes), on free
    ports: the attributes a test reads of RunningServer (ports, add_user,
    stop), plus the workers' pids and which worker served a connection."""

    PORT_KEYS = ["imap_port", "imap_tls_port", "lmtp_port", "smtp_port", "pop3_port", "pop3_tls_port",
                 "managesieve_port", "submission_port", "submission_tls_port"]

    def __init__(self, data_dir: str, workers: int = 2, **overrides):
        import dataclasses
        import subprocess
        from posthouse import config_schema
        self.data_dir = data_dir
        self.workers = workers
        ports = dict(zip(self.PORT_KEYS, free_ports(len(self.PORT_KEYS))))
        opts = dict(data_dir=data_dir, **ports, web_port=None, tracker_enabled=False, fsync=False,
                    domains=["example.com", "mail.test"], failure_delay=0.05, max_message_size=1024 * 1024,
                    hostname="mx.test", auth_throttle_max=0, workers=workers, parse_processes=1)
        opts.update(overrides)
        self.config = Config(**opts)
        os.makedirs(data_dir, exist_ok=True)
        self.config_path = os.path.join(data_dir, "..", os.path.basename(data_dir) + ".toml")
        with open(self.config_path, "w") as f:
            f.write(config_schema.render(dataclasses.asdict(self.config)))
        self.log_path = self.config_path + ".log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", self.config_path, "serve"],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.host = "127.0.0.1"
        c = self.config
        self.port, self.tls_port = c.imap_port, c.imap_tls_port
        self.lmtp_port, self.smtp_port = c.lmtp_port, c.smtp_port
        self.pop3_port, self.pop3_tls_port = c.pop3_port, c.pop3_tls_port
        self.sieve_port = c.managesieve_port
        self.submission_port, self.submission_tls_port = c.submission_port, c.submission_tls_port
        self._names = itertools.count(1)
        self.wait_ready(set(range(workers)))

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def worker_pids(self) -> dict[int, int]:
        """worker number -> pid of each worker that is ready (data_dir/workers.pids)."""
        try:
            with open(os.path.join(self.data_dir, "workers.pids")) as f:
                return {int(n): int(p) for n, p in (line.split() for line in f if line.strip())}
        except (OSError, ValueError):
            return {}

    def wait_ready(self, numbers: set, besides: dict | None = None, timeout: float = 60) -> None:
        """Until every worker numbered so says it is ready (with a pid not in besides)."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.worker_pids()
            if all(n in pids and (besides is None or pids[n] != besides.get(n)) for n in numbers):
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the workers did not start:\n" + self.log()[-4000:])
            time.sleep(0.05)

    def add_user(self, name: str | None = None, password: str = "pw-secret") -> tuple[str, str]:
        from posthouse.store.sqlite.backend import SQLiteStore
        name = name or f"user{next(self._names)}"
        store = SQLiteStore(self.data_dir, fsync=False)
        try:
            store.create_user(name, hash_password(password), DEFAULT_BOXES)
        finally:
            store.close()
        return name, password

    def __getattr__(self, name):
        if name in ("ctx", "call", "loop", "server", "queue", "lmtp", "pop3", "smtp", "sieve", "submission"):
            pytest.skip(f"reaches into the server's process (server.{name}): not with --workers")
        raise AttributeError(name)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def worker_of(client) -> int:
    """Which worker serves an IMAP connection (its ID response says), for a
    RawClient or an imaplib client."""
    if isinstance(client, RawClient):
        lines = client.cmd("WID", "ID NIL")
        text = b"".join(lines).decode()
    else:
        typ, _ = client.xatom("ID", "NIL")
        text = str(client.untagged_responses.pop("ID", [b""])[-1])
    import re
    found = re.search(r'"x-posthouse-worker" "(\d+)"', text)
    assert found, text
    return int(found[1])


# -- the mail store the tests run on: SQLite, or PostgreSQL (tests/pgserver.py) --------
STORE_KINDS = ["sqlite", "postgresql"]
_PG_DATABASES: dict[str, str] = {}     # a test server's data directory -> its database's URL
# The live tests (tests/live, tests/conformance) that run a test server run
# once on each store: live_store is their parameter. $POSTHOUSE_TEST_STORE
# (sqlite or postgresql) narrows them to one.
LIVE_DIRS = ("live", "conformance")
_live_store: str | None = None        # the kind of the live_store now set up


def wanted_stores() -> list[str]:
    only = os.environ.get("POSTHOUSE_TEST_STORE")
    return [only] if only in STORE_KINDS else list(STORE_KINDS)


def current_store() -> str:
    """The store kind test servers start on now."""
    return _live_store or wanted_stores()[0]


def sqlite_only(reason: str):
    """A live test of what only the SQLite store has: it runs on SQLite only (and says why)."""
    return pytest.mark.sqlite_only(reason=f"SQLite store only: {reason}")


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): a live test that runs on the SQLite store only")
    config.addinivalue_line("markers", "own_store: a live module that picks the stores of its servers itself")


def _runs_a_test_server(metafunc) -> bool:
    """A test of tests/live or tests/conformance that uses the session's test
    server, or is in a module that starts RunningServers of its own; not one
    that only runs `posthouse serve` programs (they have their own config)."""
    path = str(metafunc.definition.path)
    here = os.path.dirname(os.path.abspath(__file__))
    if not any(path.startswith(os.path.join(here, d) + os.sep) for d in LIVE_DIRS):
        return False
    if metafunc.definition.get_closest_marker("own_store"):
        return False
    if "server" in metafunc.fixturenames:
        return True
    try:
        with open(path, encoding="utf-8") as f:
            return "RunningServer(" in f.read()
    except OSError:
        return False


def pytest_generate_tests(metafunc):
    if "live_store" not in metafunc.fixturenames or not _runs_a_test_server(metafunc):
        return
    kinds = wanted_stores()
    only = metafunc.definition.get_closest_marker("sqlite_only")
    if only is not None:
        kinds = [k for k in kinds if k == "sqlite"] or [
            pytest.param("postgresql", marks=pytest.mark.skip(reason=only.kwargs.get("reason", "SQLite only")))]
    metafunc.parametrize("live_store", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session", autouse=True)
def live_store(request):
    """The mail store this test's servers run on (see pytest_generate_tests):
    the session's `server`, the module-scoped ones and those a test starts.
    Session-scoped and first of all fixtures, so it is set before any server
    starts; one parameter's servers are all stopped before the next's start."""
    global _live_store
    _live_store = getattr(request, "param", None) or wanted_stores()[0]
    yield _live_store
    _live_store = None


def postgres_database() -> str:
    """The URL of a new database on the session's private PostgreSQL (skips without one)."""
    from tests import pgserver
    pg = pgserver.shared()
    if pg is None:
        pytest.skip(pgserver.why())
    return pg.new_database()


@pytest.fixture(scope="session")
def postgres_url():
    """A session-wide database for the CRM side's tests on the private
    PostgreSQL (skips, saying why, when there can be none here)."""
    return postgres_database()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request):
    return request.param


@pytest.fixture
def open_store(store_kind, tmp_path):
    """open_store(**options): a store of store_kind, always the same one in
    this test (tmp_path, or one new database), opened anew at each call."""
    from posthouse.store.postgres.backend import PostgresStore
    from posthouse.store.sqlite.backend import SQLiteStore
    url = postgres_database() if store_kind == "postgresql" else None

    def opener(**options):
        if url is None:
            return SQLiteStore(str(tmp_path), **{"fsync": False, **options})
        options.pop("inline_max", None)
        return PostgresStore(url, synchronous=options.pop("fsync", False), **options)
    return opener


def pytest_addoption(parser):
    parser.addoption("--workers", type=int, default=int(os.environ.get("POSTHOUSE_TEST_WORKERS") or 1),
                     help="run the `server` fixture as `posthouse serve` with workers = N (issue 24); "
                          "tests that reach into the server's process then don't apply")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--workers") > 1:
        skip = pytest.mark.skip(reason="patches or hears the server's modules in the test's process: not with --workers")
        for item in items:
            names = getattr(item, "fixturenames", ())
            if "server" in names and ("monkeypatch" in names or "caplog" in names):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def server(live_store, tmp_path_factory, request):
    workers = request.config.getoption("--workers")
    if workers > 1:
        if live_store != "sqlite":
            pytest.skip("--workers runs the live tests on the SQLite store")
        srv = WorkersServer(str(tmp_path_factory.mktemp("posthouse")), workers=workers)
        yield srv
        srv.stop()
        return
    srv = RunningServer(str(tmp_path_factory.mktemp("posthouse")), store=live_store)
    yield srv
    srv.stop()


@pytest.fixture
def user(server):
    return server.add_user()


@pytest.fixture
def imap(server, user):
    """A logged-in imaplib client."""
    import imaplib
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    yield c
    try:
        c.logout()
    except Exception:
        pass


class RawClient:
    """A plain socket client for exact protocol checks."""

    def __init__(self, host, port, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.greeting = self.readline()

    def send(self, data: bytes | str):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def readline(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def read_until_tag(self, tag: str) -> list[bytes]:
        lines = []
        while True:
            line = self.readline()
            if not line:
                raise ConnectionError("closed; got " + repr(lines))
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def cmd(self, tag: str, text: str | bytes) -> list[bytes]:
        if isinstance(text, str):
            text = text.encode()
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.read_until_tag(tag)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def raw_login(server, user) -> RawClient:
    """A RawClient logged in as user (name, password)."""
    c = RawClient(server.host, server.port)
    assert c.cmd("L", f"LOGIN {user[0]} {user[1]}")[-1].startswith(b"L OK")
    return c


@pytest.fixture
def raw(server, user):
    c = raw_login(server, user)
    yield c
    c.close()


@pytest.fixture
def raw_pair(server):
    """Two raw sessions of one new user: one to watch, one to make changes."""
    user = server.add_user()
    a, b = raw_login(server, user), raw_login(server, user)
    yield a, b
    a.close()
    b.close()
