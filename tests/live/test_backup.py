"""`posthouse backup` of a running server under delivery load, and
`posthouse restore`: every message acknowledged before the backup started
is in the restored store, once; restores that would do harm are refused."""
from __future__ import annotations

import imaplib
import os
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time

from ..conftest import sqlite_only
from .test_durability import _free_port

DELIVERIES = 400        # bounded: the load runs until the backup is done or this many
BIG = 200 * 1024        # kept as a file of its own (not inside the database)


def posthouse(*args, data_dir=None, config=None, input=None, timeout=120):
    cmd = [sys.executable, "-m", "posthouse"]
    if config:
        cmd += ["--config", config]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    return subprocess.run(cmd + list(args), input=input, capture_output=True, timeout=timeout)


class Server:
    """`posthouse serve` in a subprocess: IMAP and LMTP on free ports (and metrics, if asked)."""

    def __init__(self, tmp_path, data_dir: str, metrics: bool = False, name: str = "server",
                 workers: int | None = None):
        self.data_dir = data_dir
        self.imap_port, self.lmtp_port = _free_port(), _free_port()
        self.metrics_port = _free_port() if metrics else None
        self.config = str(tmp_path / f"{name}.toml")
        with open(self.config, "w") as f:
            f.write(f'data_dir = "{data_dir}"\nfsync = false\nparse_processes = 0\nfailure_delay = 0.05\n'
                    'auth_throttle_max = 0\n' + (f'workers = {workers}\n' if workers else '')
                    + f'[imap]\nport = {self.imap_port}\ntls_port = false\n[lmtp]\nport = {self.lmtp_port}\n'
                    '[smtp]\nport = false\n[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
                    '[submission]\nport = false\ntls_port = false\n[web]\nport = false\n'
                    + (f'[metrics]\nport = {self.metrics_port}\n' if metrics else ""))
        self.log = str(tmp_path / f"{name}.log")
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", self.config, "serve"],
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(data_dir, "admin.sock")) or not self._answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("server did not start: " + open(self.log).read()[-2000:])
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=2).logout()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def add_user(data_dir: str, name: str = "alice", password: str = "pw-secret") -> None:
    added = posthouse("user", "add", name, "--password-stdin", data_dir=data_dir, input=password.encode() + b"\n")
    assert added.returncode == 0, added.stderr


def message(n: int, size: int = 0) -> bytes:
    body = b"x" * 76 + b"\r\n"
    return (b"From: load@example.com\r\nTo: alice@example.com\r\nSubject: load %d\r\n\r\n" % n
            + body * max(1, size // len(body)))


def subjects(port: int, user: str = "alice", password: str = "pw-secret") -> list[str]:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    try:
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        if typ != "OK" or data == [None]:
            return []
        return [part[1].decode().strip().removeprefix("Subject: ") for part in data if isinstance(part, tuple)]
    finally:
        imap.logout()


def test_backup_under_delivery_load_restores_every_acknowledged_message(tmp_path):
    data = str(tmp_path / "data")
    add_user(data)
    server = Server(tmp_path, data)
    acked: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def deliver():
        try:
            with smtplib.LMTP("127.0.0.1", server.lmtp_port, timeout=30) as lmtp:
                for n in range(DELIVERIES):
                    if stop.is_set():
                        return
                    # Every tenth a big one, kept as a message file of its own.
                    lmtp.sendmail("load@example.com", ["alice@example.com"], message(n, BIG if n % 10 == 0 else 0))
                    acked.append(n)
        except BaseException as e:      # (reported below)
            errors.append(e)

    loader = threading.Thread(target=deliver)
    try:
        loader.start()
        deadline = time.monotonic() + 60
        while len(acked) < 40 and loader.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        before = list(acked)            # acknowledged before the backup started
        dest = str(tmp_path / "backup")
        made = posthouse("backup", dest, config=server.config)
        assert made.returncode == 0, made.stderr
        stop.set()
        loader.join(60)
        assert not errors, errors
        assert len(before) >= 40
        assert b"messages" in made.stdout
    finally:
        stop.set()
        loader.join(60)
        server.stop()

    fresh = str(tmp_path / "restored")
    restored = posthouse("restore", dest, data_dir=fresh)
    assert restored.returncode == 0, restored.stderr
    assert not os.path.exists(os.path.join(fresh, "posthouse-backup.json"))
    again = Server(tmp_path, fresh, name="restored")
    try:
        found = subjects(again.imap_port)
    finally:
        again.stop()
    for n in before:
        assert found.count(f"load {n}") == 1, (n, found.count(f"load {n}"))
    # Nothing there that was never sent, nor twice.
    assert len(found) == len(set(found)) and len(found) <= len(acked)


def test_restore_refuses_what_would_do_harm(tmp_path):
    data = str(tmp_path / "data")
    add_user(data)
    dest = str(tmp_path / "backup")
    server = Server(tmp_path, data)
    try:
        with smtplib.LMTP("127.0.0.1", server.lmtp_port, timeout=30) as lmtp:
            lmtp.sendmail("load@example.com", ["alice@example.com"], message(1, BIG))
        made = posthouse("backup", dest, config=server.config)
        assert made.returncode == 0, made.stderr
        # Not into a directory that holds something.
        again = posthouse("backup", dest, config=server.config)
        assert again.returncode == 1 and b"not an empty directory" in again.stderr
        # Not while a server runs on the data directory, even with --force.
        refused = posthouse("restore", dest, "--force", data_dir=data)
        assert refused.returncode == 1 and b"server is running" in refused.stderr, refused.stderr
        assert server.proc.poll() is None
    finally:
        server.stop()
    assert not os.path.exists(os.path.join(dest, "serve.lock"))
    assert not os.path.exists(os.path.join(dest, "admin.sock"))

    # With no server running, a backup is taken as it is.
    offline = posthouse("backup", str(tmp_path / "offline"), data_dir=data)
    assert offline.returncode == 0 and b"1 messages, 1 message files" in offline.stdout, offline

    # Into the non-empty data directory it came from: not without --force.
    refused = posthouse("restore", dest, data_dir=data)
    assert refused.returncode == 1 and b"not empty" in refused.stderr, refused.stderr

    # Damaged backups: refused before anything is touched.
    def damaged(name, harm):
        copy = str(tmp_path / name)
        subprocess.run(["cp", "-a", dest, copy], check=True)
        harm(copy)
        refused = posthouse("restore", copy, data_dir=str(tmp_path / "new"))
        assert refused.returncode == 1 and not os.path.exists(tmp_path / "new")
        return refused.stderr.decode()

    def truncate(copy):
        with open(os.path.join(copy, "index.sqlite3"), "r+b") as f:
            f.truncate(4096)

    def drop_message_file(copy):
        [path] = [os.path.join(d, n) for d, _s, names in os.walk(os.path.join(copy, "blobs")) for n in names]
        os.unlink(path)

    assert "damaged" in damaged("truncated", truncate)
    assert "message file" in damaged("no-file", drop_message_file)
    assert "not a posthouse backup" in damaged("no-manifest",
                                               lambda copy: os.unlink(os.path.join(copy, "posthouse-backup.json")))

    # With --force, on a stopped server's directory: in place, the old one kept aside.
    forced = posthouse("restore", dest, "--force", data_dir=data)
    assert forced.returncode == 0, forced.stderr
    kept = [n for n in os.listdir(tmp_path) if n.startswith("data.replaced-")]
    assert len(kept) == 1 and kept[0].encode() in forced.stdout
    listed = posthouse("user", "list", data_dir=data)
    assert listed.stdout.split() == [b"alice"]


@sqlite_only("posthouse backup copies a SQLite store (PostgreSQL: pg_dump)")
def test_a_backup_holds_the_journal_so_its_records_keep_their_filing_rows(tmp_path, monkeypatch):
    """While a backup copies the journal and then takes the database's
    snapshot, the server drops no segment and prunes no filing row: a
    record the copy holds and the snapshot has filed is known as filed
    (else the restored server would file it again)."""
    from posthouse.admin.backup import _copy_journal, _snapshot
    from posthouse.delivery.journal import Journal, decode_records
    from .test_arrivals import deliver, markers_in, segments
    from ..conftest import RunningServer
    monkeypatch.setattr(Journal, "SEGMENT_BYTES", 256)      # a segment per delivery
    data = str(tmp_path / "data")
    srv = RunningServer(data)
    try:
        user = srv.add_user()
        arrivals = srv.ctx.deliverer.arrivals
        srv.call(arrivals.hold_segments())
        assert [c for c, _t in deliver(srv.lmtp_port, user[0], "a", "b", "c")] == [250] * 3
        assert markers_in(srv.port, user) == ["a", "b", "c"]
        copy = str(tmp_path / "journal-copy")
        _copy_journal(os.path.join(data, "arrivals"), copy)
        # Filings meanwhile would drop the segments copied, then prune their rows.
        assert [c for c, _t in deliver(srv.lmtp_port, user[0], "d", "e", "f")] == [250] * 3
        assert markers_in(srv.port, user) == ["a", "b", "c", "d", "e", "f"]
        _snapshot(os.path.join(data, "index.sqlite3"), str(tmp_path / "snapshot.sqlite3"))
        db = sqlite3.connect(str(tmp_path / "snapshot.sqlite3"))
        filed = {r[0] for r in db.execute("SELECT seq FROM arrivals_filed")}
        db.close()
        copied = [r.seq for name in sorted(os.listdir(copy))
                  for r in decode_records(open(os.path.join(copy, name), "rb").read())[0]]
        assert len(copied) == 3 and set(copied) <= filed, (copied, filed)
        held = len(segments(data))
        srv.loop.call_soon_threadsafe(arrivals.release_segments)
        assert [c for c, _t in deliver(srv.lmtp_port, user[0], "g")] == [250]
        assert markers_in(srv.port, user)[-1] == "g"
        deadline = time.monotonic() + 10
        while len(segments(data)) >= held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(segments(data)) < held        # released: dropped again
    finally:
        srv.stop()
