"""The store process killed again and again while mail arrives: nothing that
was acknowledged stays out of sight, and UIDs are shown in ascending order.

A real `posthouse serve`: two LMTP senders and two APPEND clients deliver
to one user while a session keeps INBOX selected and notes each UID it is
shown; meanwhile the server's store process (its child running
posthouse.store.process) is SIGKILLed at random moments, hundreds of times.
Then every acknowledged message must be visible, once, to that open session
and to a new one, and no UID may ever have been shown below one shown before.
"""
from __future__ import annotations

import os
import random
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time

from ..conftest import RawClient, sqlite_only
from .test_arrivals import message
from .test_durability import _free_port, _start

KILLS = 300             # at most this many kills ...
KILL_SECONDS = 40.0     # ... within this long


def children_of(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the ppid follows it.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            out.append(int(name))
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def store_child(server_pid: int) -> int | None:
    for pid in children_of(server_pid):
        if "posthouse.store.process" in cmdline(pid):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rpartition(")")[2].split()[0] == "Z":
                        continue    # killed already, not yet reaped
            except OSError:
                continue
            return pid
    return None


def wrote(pid: int) -> int:
    """Bytes the process has written so far (0 while it is still starting)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Watcher:
    """A session with INBOX selected that learns each new message's UID
    (FETCH of the new sequence numbers) and notes any shown out of order."""

    def __init__(self, port: int):
        self.c = RawClient("127.0.0.1", port, timeout=60)
        assert self.c.cmd("L", "LOGIN st pw")[-1].startswith(b"L OK")
        self.exists = 0
        self.uids: list[int] = []
        self.out_of_order: list[tuple[int, int]] = []     # (uid shown, highest shown before)
        self._n = 0
        self.catch_up(self.c.cmd("S", "SELECT INBOX"))

    def command(self, text: str) -> list[bytes]:
        self._n += 1
        tag = f"W{self._n}"
        lines = self.c.cmd(tag, text)
        assert lines[-1].startswith(f"{tag} OK".encode()), lines[-1]
        return lines

    def catch_up(self, lines: list[bytes]) -> None:
        for line in lines:
            m = re.match(rb"\* (\d+) EXISTS", line)
            if m:
                exists = int(m.group(1))
                assert exists >= self.exists, "messages vanished (no expunges here)"
                if exists > self.exists:
                    self._fetch_new(self.exists + 1, exists)

    def _fetch_new(self, first: int, last: int) -> None:
        lines = self.command(f"FETCH {first}:{last} (UID)")
        for line in lines:
            m = re.match(rb"\* (\d+) FETCH \(UID (\d+)\)", line)
            if m and int(m.group(1)) >= first:
                uid = int(m.group(2))
                highest = self.uids[-1] if self.uids else 0
                if uid <= highest:
                    self.out_of_order.append((uid, highest))
                self.uids.append(uid)
        self.exists = last

    def poll(self) -> None:
        self.catch_up(self.command("NOOP"))

    def markers(self) -> dict[str, list[int]]:
        return markers_of(self.c, "M")


def markers_of(c: RawClient, tag: str) -> dict[str, list[int]]:
    """Marker -> the UIDs of the messages that carry it, for all of INBOX."""
    c.send(f"{tag} UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (X-MARKER)])\r\n".encode())
    found: dict[str, list[int]] = {}
    while True:
        line = c.readline()
        assert line, "connection closed"
        if line.startswith(f"{tag} ".encode()):
            assert line.startswith(f"{tag} OK".encode()), line
            return found
        m = re.match(rb"\* \d+ FETCH \(.*UID (\d+).*\{(\d+)\}\r\n$", line)
        if m:
            body = b""
            while len(body) < int(m.group(2)):
                body += c.readline()
            marker = body.split(b":", 1)[1].strip().decode() if b":" in body else ""
            found.setdefault(marker, []).append(int(m.group(1)))


def test_store_process_killed_again_and_again_hides_no_acknowledged_mail(tmp_path):
    data = str(tmp_path / "data")
    subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", data, "user", "add", "st",
                    "--password-stdin"], input=b"pw\n", check=True, stdout=subprocess.DEVNULL)
    port, tls_port, lmtp_port = _free_port(), _free_port(), _free_port()
    log_path = str(tmp_path / "server.log")
    proc = _start(data, port, tls_port, lmtp_port, log=log_path)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def lmtp_sender(n):
        i = 0
        while not stop.is_set():
            try:
                with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=60) as lmtp:
                    while not stop.is_set():
                        marker = f"l{n}-{i}"
                        i += 1
                        if not lmtp.sendmail("s@example.org", ["st"], message(marker)):
                            with lock:
                                acked.append(marker)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)     # refused (a 451 while the store is down): a new connection

    def appender(n):
        c = RawClient("127.0.0.1", port, timeout=60)
        try:
            assert c.cmd("L", "LOGIN st pw")[-1].startswith(b"L OK")
            i = 0
            while not stop.is_set():
                marker = f"a{n}-{i}"
                i += 1
                raw = message(marker)
                c.send(f"A{i} APPEND INBOX {{{len(raw)}}}\r\n".encode())
                if not c.readline().startswith(b"+"):
                    c.read_until_tag(f"A{i}")
                    continue
                c.send(raw + b"\r\n")
                if c.read_until_tag(f"A{i}")[-1].startswith(f"A{i} OK".encode()):
                    with lock:
                        acked.append(marker)
                else:
                    time.sleep(0.05)    # NO: the store was down; not acknowledged
        finally:
            c.close()

    watcher = Watcher(port)

    watch_errors = []

    def watch():
        try:
            while not stop.is_set():
                watcher.poll()
                time.sleep(0.02)
        except Exception as e:
            watch_errors.append(e)

    threads = [threading.Thread(target=lmtp_sender, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=appender, args=(n,)) for n in range(2)]
    threads.append(threading.Thread(target=watch))
    for t in threads:
        t.start()
    kills = 0
    rng = random.Random()
    try:
        deadline = time.monotonic() + KILL_SECONDS
        while kills < KILLS and time.monotonic() < deadline:
            pid = store_child(proc.pid)
            if pid is None:         # not restarted yet: it is, on the next call
                time.sleep(0.01)
                continue
            # A random point in its work: once it has started to write (commits, replies).
            started = time.monotonic()
            while wrote(pid) == 0 and time.monotonic() - started < 3:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
            while store_child(proc.pid) == pid and time.monotonic() < deadline:
                time.sleep(0.005)       # (until the server has reaped it)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    try:
        assert proc.poll() is None, "the server died"
        assert not watch_errors, f"the open session failed: {watch_errors[0]!r}"
        assert kills >= 20, f"only {kills} kills"
        assert len(acked) >= 50, f"only {len(acked)} messages acknowledged"
        watcher.poll()
        problems = []
        if watcher.out_of_order:
            problems.append(f"UIDs shown below one shown before (uid, highest before): {watcher.out_of_order[:5]}")
        fresh = RawClient("127.0.0.1", port, timeout=60)
        try:
            assert fresh.cmd("L", "LOGIN st pw")[-1].startswith(b"L OK")
            fresh.cmd("S", "SELECT INBOX")
            for who, found in (("the open session", watcher.markers()), ("a new session", markers_of(fresh, "M"))):
                missing = sorted(set(acked) - set(found))
                twice = sorted(m for m, uids in found.items() if len(uids) > 1)
                if missing:
                    problems.append(f"{who}: {len(missing)} acknowledged messages not visible, e.g. {missing[:5]}")
                if twice:
                    problems.append(f"{who}: messages there twice: {twice[:5]}")
        finally:
            fresh.close()
        print(f"store process killed {kills} times; {len(acked)} messages acknowledged")
        assert not problems, f"after {kills} kills, {len(acked)} acknowledged: " + "; ".join(problems)
    finally:
        watcher.c.close()
        proc.terminate()
        proc.wait(30)


@sqlite_only("the reply lost is the filing's only where RCPT lookups are quick reads on the loop; on PostgreSQL they go to the store process, whose lost reply is the lookup's (451)")
def test_changes_whose_replies_died_with_the_store_process_are_seen(tmp_path, monkeypatch):
    """The store process commits, then dies before its reply is read: the
    open session and a new one still see the message (an APPEND answered NO,
    a delivery answered 250), and UIDs come in ascending order after it."""
    from posthouse.store.process import StoreProcess
    from ..conftest import RunningServer, raw_login
    from .test_arrivals import deliver

    lose_next_reply = threading.Event()
    readable = StoreProcess._readable

    def losing_readable(self, child):
        if lose_next_reply.is_set():
            lose_next_reply.clear()
            self._ended(child, "test: the store process died before its reply was read")
            return
        readable(self, child)

    monkeypatch.setattr(StoreProcess, "_readable", losing_readable)
    srv = RunningServer(str(tmp_path / "data"))
    clients = []
    try:
        user = srv.add_user()
        watcher = raw_login(srv, user)
        appender = raw_login(srv, user)
        clients += [watcher, appender]
        assert watcher.cmd("S", "SELECT INBOX")[-1].startswith(b"S OK")

        lose_next_reply.set()
        raw = b"Subject: lost reply\r\nX-Marker: appended\r\n\r\nx\r\n"
        appender.send(b"A1 APPEND INBOX {%d}\r\n" % len(raw))
        assert appender.readline().startswith(b"+")
        appender.send(raw + b"\r\n")
        assert appender.read_until_tag("A1")[-1].startswith(b"A1 NO")

        lose_next_reply.set()
        assert deliver(srv.lmtp_port, user[0], "delivered")[0][0] == 250

        uids = []
        for tag in ("N1", "N2", "N3"):
            lines = watcher.cmd(tag, "UID SEARCH ALL")
            uids = [int(u) for u in lines[-2].split()[2:]] if lines[-2].startswith(b"* SEARCH") else []
            if len(uids) == 2:
                break
            time.sleep(0.2)
        assert len(uids) == 2, f"the open session sees {uids}, not both messages"
        assert markers_of(watcher, "W") == {"appended": [uids[0]], "delivered": [uids[1]]}
        fresh = raw_login(srv, user)
        clients.append(fresh)
        fresh.cmd("S", "SELECT INBOX")
        assert markers_of(fresh, "F") == {"appended": [uids[0]], "delivered": [uids[1]]}
        # Later mail comes after them.
        assert deliver(srv.lmtp_port, user[0], "later")[0][0] == 250
        lines = watcher.cmd("N4", "NOOP")
        assert b"* 3 EXISTS\r\n" in lines
        assert markers_of(watcher, "W2")["later"][0] > uids[1]
    finally:
        for c in clients:
            c.close()
        srv.stop()
