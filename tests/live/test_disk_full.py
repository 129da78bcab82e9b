"""A full disk: new mail is refused before it is answered (452 4.3.1 over
LMTP/SMTP, NO [LIMIT] over IMAP), reading goes on, no temporary file is left,
mail is taken again once there is room, and a restart on a full disk either
starts (reads work, mail is refused) or says in one line why it can't.

The data directory is on a small tmpfs of its own, which takes root to mount."""
from __future__ import annotations

import asyncio
import os
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import time

import pytest

from posthouse.delivery.journal import Journal
from posthouse.store.api import DiskFull
from posthouse.store.blobs import BlobStore
from posthouse.store.space import FreeSpace, is_disk_full

from ..conftest import RunningServer, raw_login, sqlite_only

DISK = "8m"
RESERVE = 1 << 20       # min_free_space on that disk
SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")
BIG = 300_000           # over the 128 KiB kept inside the database: a blob file of its own


@pytest.fixture
def small_disk():
    """A directory on an 8 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for a full disk takes root")
    mount = tempfile.mkdtemp(prefix="posthouse-full-")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", mount],
                          capture_output=True, text=True)
    if done.returncode != 0:
        os.rmdir(mount)
        pytest.skip(f"can't mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", mount], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mount], capture_output=True)
        os.rmdir(mount)


def fill(mount: str) -> str:
    """Take every free byte of the disk with one file (grown, if it is there); its path."""
    path = os.path.join(mount, "filler")
    with open(path, "ab", buffering=0) as f:
        try:
            for _ in range(4096):
                f.write(b"\0" * (64 << 10))
            f.write(b"\0" * 4096)       # the last bits: tmpfs has pages of 4 KiB
            while True:
                f.write(b"\0" * 512)
        except OSError as e:
            assert is_disk_full(e)
    assert os.statvfs(mount).f_bavail == 0
    return path


def start(mount: str, **overrides) -> RunningServer:
    return RunningServer(os.path.join(mount, "data"), min_free_space=RESERVE, **overrides)


def lmtp_send(server, rcpt: str, body: bytes) -> tuple[int, bytes]:
    """The reply to MAIL, RCPT or DATA, whichever refuses first (or DATA's)."""
    client = smtplib.LMTP(server.host, server.lmtp_port, timeout=30)
    try:
        client.ehlo("test")
        code, text = client.mail("sender@example.org")
        if code == 250:
            code, text = client.rcpt(rcpt)
        if code == 250:
            code, text = client.data(body)
        return code, text
    finally:
        client.quit()


def message(n: int, size: int = 0) -> bytes:
    return (f"From: a@example.org\r\nSubject: mail {n}\r\nMessage-ID: <m{n}@example.org>\r\n\r\n"
            f"hello number {n}\r\n").encode() + (b"y" * 78 + b"\r\n") * (size // 80)


def append(client, data: bytes) -> bytes:
    """APPEND to INBOX (a non-synchronizing literal): the tagged reply."""
    client.send(f"A APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    return client.read_until_tag("A")[-1]


def leftovers(data_dir: str) -> list[str]:
    return [os.path.join(d, f) for d, _dirs, files in os.walk(data_dir) for f in files
            if ".tmp" in f or d.endswith(os.path.join("blobs", "tmp"))]


def messages_in_inbox(client) -> int:
    line = client.cmd("S", "STATUS INBOX (MESSAGES)")[0]
    return int(line.split(b"MESSAGES ")[1].split(b")")[0])


def wait_for_messages(client, count: int) -> int:
    """Bounded: the INBOX's count once it reaches count, or after 60 s."""
    deadline = time.monotonic() + 60
    while (seen := messages_in_inbox(client)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return seen


def test_full_disk_refuses_new_mail_and_goes_on_reading(small_disk):
    server = start(small_disk)
    client = None
    try:
        name, _pw = user = server.add_user()
        for n in range(3):
            assert lmtp_send(server, name, message(n))[0] == 250
        client = raw_login(server, user)
        assert append(client, message(3, BIG)).startswith(b"A OK")
        assert client.cmd("S", "SELECT INBOX")[-1].startswith(b"S OK")
        filler = fill(small_disk)

        # New mail is refused before it is answered, so nothing is taken that can't be kept.
        code, text = lmtp_send(server, name, message(4))
        assert (code, text[:5]) == (452, b"4.3.1")
        smtp = smtplib.SMTP(server.host, server.smtp_port, timeout=30)
        try:
            smtp.ehlo("test")
            assert smtp.mail("sender@example.org")[0] == 452
        finally:
            smtp.quit()
        assert append(client, message(5, BIG)).startswith(b"A NO [LIMIT]")
        assert append(client, message(6)).startswith(b"A NO [LIMIT]")
        assert client.cmd("C", "COPY 1 Archive")[-1].startswith(b"C NO [LIMIT]")

        # Reading goes on, in this session and in a new one.
        other = raw_login(server, user)
        try:
            lines = other.cmd("S", "SELECT INBOX")
            assert b"* 4 EXISTS\r\n" in lines and lines[-1].startswith(b"S OK")
            fetched = b"".join(other.cmd("F", "FETCH 1:4 (FLAGS BODY.PEEK[])"))
            assert fetched.count(b"hello number") == 4 and fetched.count(b"y" * 78) == BIG // 80
            assert other.cmd("R", "SEARCH BODY number")[0] == b"* SEARCH 1 2 3 4\r\n"
            # Setting \Seen needs a write the disk may not take: the message is read all the same.
            read = other.cmd("G", "FETCH 2 BODY[]")
            assert b"hello number 1" in b"".join(read) and read[-1].startswith(b"G OK")
            assert other.cmd("N", "NOOP")[-1].startswith(b"N OK")
        finally:
            other.close()
        assert leftovers(os.path.join(small_disk, "data")) == []

        # Room again: mail is taken at once, and all acknowledged mail is there.
        os.unlink(filler)
        assert lmtp_send(server, name, message(7))[0] == 250
        assert append(client, message(8, BIG)).startswith(b"A OK")
        assert wait_for_messages(client, 6) == 6
    finally:
        if client is not None:
            client.close()
        server.stop()


@sqlite_only("the data directory's disk holds the store (PostgreSQL's is elsewhere)")
def test_a_write_that_meets_a_full_disk_is_refused_cleanly(small_disk):
    """Another process fills the disk between the check for room and the
    write: the write's failure is refused as the check would have been (not a
    dropped connection), and its temporary file is gone."""
    server = start(small_disk)
    client = None
    try:
        name, _pw = user = server.add_user()
        client = raw_login(server, user)
        filler = fill(small_disk)
        server.ctx.service.space = FreeSpace(None)      # the check saw room: the write finds none
        assert append(client, message(1, BIG)).startswith(b"A NO [LIMIT]")
        code, text = lmtp_send(server, name, message(2, BIG))
        assert (code, text[:5]) == (452, b"4.3.1")
        assert client.cmd("N", "NOOP")[-1].startswith(b"N OK")
        assert leftovers(os.path.join(small_disk, "data")) == []
        os.unlink(filler)
        assert append(client, message(3, BIG)).startswith(b"A OK")
    finally:
        if client is not None:
            client.close()
        server.stop()


@sqlite_only("the data directory's disk holds the store (PostgreSQL's is elsewhere)")
def test_restart_on_a_full_disk(small_disk):
    """Started again on a full disk, the server opens its store without
    writing: reads work, mail is refused, and taken again once there is room."""
    server = start(small_disk)
    name, _pw = user = server.add_user()
    database = os.path.join(small_disk, "data", "index.sqlite3")
    # The store's files as a crash leaves them: its WAL and the WAL's index,
    # which SQLite removes when the last connection closes (this one is last).
    keeper = sqlite3.connect(database)
    try:
        keeper.execute("SELECT count(*) FROM users").fetchone()
        try:
            assert lmtp_send(server, name, message(1))[0] == 250
        finally:
            server.stop()
        filler = fill(small_disk)
        server = start(small_disk)
        try:
            client = raw_login(server, user)
            try:
                assert b"* 1 EXISTS\r\n" in client.cmd("S", "SELECT INBOX")
                assert b"hello number 1" in b"".join(client.cmd("F", "FETCH 1 BODY.PEEK[]"))
                assert lmtp_send(server, name, message(2))[:1] == (452,)
                os.unlink(filler)
                assert lmtp_send(server, name, message(3))[0] == 250
                assert wait_for_messages(client, 2) == 2
            finally:
                client.close()
        finally:
            server.stop()
    finally:
        keeper.close()
    assert leftovers(os.path.join(small_disk, "data")) == []


@sqlite_only("the data directory's disk holds the store (PostgreSQL's is elsewhere)")
def test_start_on_a_full_disk_without_room_to_open_the_store(small_disk):
    """After a clean stop SQLite needs a few pages of room to open the store
    (the WAL's shared-memory index): with none, `posthouse serve` says why in
    one line and exits, for whatever restarts it to try again later."""
    data = os.path.join(small_disk, "data")
    start(small_disk).stop()
    fill(small_disk)
    with pytest.raises(DiskFull, match="disk is full.*free some space"):
        start(small_disk)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", data, "serve"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "disk is full" in errors[0] and "free some space" in errors[0], done.stderr


def test_a_journal_write_on_a_full_disk_fails_and_leaves_no_segment(small_disk):
    journal = Journal(os.path.join(small_disk, "arrivals"), fsync=False)
    journal.recover()
    fill(small_disk)

    async def write() -> BaseException:
        _seq, written = journal.append(b"x" * 10_000)
        with pytest.raises(OSError) as failed:
            await written
        return failed.value
    try:
        assert is_disk_full(asyncio.run(write()))
        assert os.listdir(journal.directory) == [] and journal.segments == []
    finally:
        journal.close()


def test_temporary_blob_files_of_dead_writers_are_swept(tmp_path):
    blobs = BlobStore(str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = os.path.join(blobs.tmp, f"{'a' * 64}.{dead.pid}.1")
    ours = os.path.join(blobs.tmp, f"{'b' * 64}.{os.getpid()}.1")
    for path in (stale, ours):
        with open(path, "wb") as f:
            f.write(b"half a message")
    assert blobs.sweep_temporary() == 1
    assert not os.path.exists(stale) and os.path.exists(ours)     # a live writer's is its own


def test_disk_full_errors_are_recognised():
    import errno
    import sqlite3
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert is_disk_full(DiskFull())
    assert not is_disk_full(OSError(errno.EIO, "I/O error"))
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))
