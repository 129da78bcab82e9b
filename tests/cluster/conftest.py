"""A cluster on loopback: three `posthouse serve` processes (nodes) over one
private PostgreSQL database (tests/pgserver.py), each with its own data
directory and ports, and an SMTP sink as the smarthost of all three. A fourth
node drops every LISTEN/NOTIFY notification it receives
($POSTHOUSE_TEST_DROP_NOTIFY): what it learns, it learns from its checks.

Before the nodes start, messages are queued for the smarthost, so the three
race for them at once (tests/cluster/test_cluster.py counts each arrival).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest

from tests.conftest import DEFAULT_BOXES, RawClient, postgres_database

USERS = ["ann", "bob", "cat", "dan"]
PASSWORD = "cluster-pw"
QUEUED = 45         # messages queued for the smarthost before the nodes start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink(socketserver.ThreadingTCPServer):
    """The smarthost: takes every message, keeps (Message-ID, node) of each."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        self.received: list[bytes] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _SinkHandler(socketserver.StreamRequestHandler):
    def handle(self):
        w = self.wfile.write
        w(b"220 sink ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                w(b"250-sink\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                w(b"354 go on\r\n")
                data = b""
                while True:
                    part = self.rfile.readline()
                    if not part or part == b".\r\n":
                        break
                    data += part
                with self.server.lock:
                    self.server.received.append(data)
                w(b"250 kept\r\n")
            elif verb == b"QUIT":
                w(b"221 bye\r\n")
                return
            else:
                w(b"250 ok\r\n")


@dataclass
class Node:
    name: str
    dir: str
    url: str
    sink_port: int
    env: dict = field(default_factory=dict)
    imap_port: int = 0
    lmtp_port: int = 0
    metrics_port: int = 0
    config: str = ""
    proc: subprocess.Popen | None = None
    log: object = None
    since: int = 0
    killed_at: int | None = None

    def write_config(self) -> str:
        self.imap_port, self.lmtp_port, self.metrics_port = free_port(), free_port(), free_port()
        config = os.path.join(self.dir, "posthouse.toml")
        with open(config, "w") as f:
            f.write(f'data_dir = "{self.dir}/data"\ndatabase_url = "{self.url}"\nfsync = false\n'
                    f'parse_processes = 0\nfailure_delay = 0.05\ndomains = ["example.com"]\n'
                    f'[imap]\nport = {self.imap_port}\ntls_port = false\n[lmtp]\nport = {self.lmtp_port}\n'
                    '[smtp]\nport = false\n[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
                    '[submission]\nport = false\ntls_port = false\n[web]\nport = false\n'
                    f'[relay]\nhost = "127.0.0.1"\nport = {self.sink_port}\ntls = "none"\nretry_base = 1\n'
                    '[limits]\nauth_throttle_max = 0\n[tracker]\nenabled = false\n'
                    f'[metrics]\nport = {self.metrics_port}\n')
        self.config = config
        return config

    def start(self) -> None:
        config = self.write_config()
        self.log = open(os.path.join(self.dir, "serve.log"), "a+")
        self.since = self.log.tell()        # (a node started again appends to its log)
        self.proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", config, "serve"],
                                     stdout=subprocess.DEVNULL, stderr=self.log,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1", **self.env))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while "IMAP listening" not in self.text()[self.since:]:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.text()[-3000:]
            time.sleep(0.1)

    def text(self) -> str:
        with open(self.log.name) as f:
            return f.read()

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush."""
        self.killed_at = len(self.text())
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def problems(self) -> list[str]:
        """Tracebacks and ERROR lines in the log, but its store process's
        complaint that the server it served died under it (SIGKILL), which
        may come out among the lines of the node started again."""
        text = self.text()
        found = [line for line in text.splitlines() if "Traceback" in line or re.search(r"\bERROR\b", line)]
        if self.killed_at is not None:
            after = text[self.killed_at:]
            orphans = after.count("ConnectionResetError: [Errno 104]") if "store/process.py" in after else 0
            for _ in range(orphans):
                if "Traceback (most recent call last):" in found:
                    found.remove("Traceback (most recent call last):")
        return found

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()

    def login(self, user: str = "ann") -> RawClient:
        c = RawClient("127.0.0.1", self.imap_port, timeout=30)
        assert c.cmd("L", f"LOGIN {user} {PASSWORD}")[-1].startswith(b"L OK")
        return c


@dataclass
class Cluster:
    nodes: list[Node]           # the three that hear one another
    deaf: Node                  # drops every notification
    sink: SmtpSink
    url: str

    def store(self):
        from posthouse.store.postgres.backend import PostgresStore
        return PostgresStore(self.url, synchronous=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from posthouse.auth.passwords import hash_password
    from posthouse.store.postgres.backend import PostgresStore
    url = postgres_database()
    sink = SmtpSink()
    store = PostgresStore(url, synchronous=False)
    try:
        digest = hash_password(PASSWORD)
        for name in USERS:
            store.create_user(name, digest, DEFAULT_BOXES)
        now = time.time()
        for i in range(QUEUED):
            store.enqueue(None, "ann@example.com", [f"r{i}@elsewhere.test"],
                          f"Message-ID: <queued-{i}@cluster.test>\r\nSubject: q{i}\r\n\r\nbody {i}\r\n".encode(), now)
    finally:
        store.close()
    nodes = [Node(f"n{i}", str(tmp_path_factory.mktemp(f"node{i}")), url, sink.port) for i in range(3)]
    deaf = Node("deaf", str(tmp_path_factory.mktemp("deaf")), url, sink.port, env={"POSTHOUSE_TEST_DROP_NOTIFY": "1"})
    everyone = nodes + [deaf]
    try:
        for node in everyone:       # all at once: they race for the queue
            node.start()
        for node in everyone:
            node.wait_ready()
        yield Cluster(nodes, deaf, sink, url)
    finally:
        for node in everyone:
            node.stop()
        sink.close()
    for node in everyone:
        assert not node.problems(), f"{node.name}:\n{node.text()[-5000:]}"
