"""SIGKILL in the middle of APPENDs from several clients loses and duplicates nothing."""
from __future__ import annotations

import imaplib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_the_last_server(data_dir, timeout: float = 10) -> None:
    """Until no process of a server killed before holds the data directory:
    with several workers (issue 24), a killed supervisor's workers end a
    moment after it, and until then they still answer on its ports."""
    import fcntl
    path = os.path.join(data_dir, "serve.lock")
    if not os.path.exists(path):
        return
    deadline = time.time() + timeout
    with open(path, "rb") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                if time.time() > deadline:
                    return
                time.sleep(0.01)


def _start(data_dir, port, tls_port, lmtp_port=None, log=None):
    """`posthouse serve` on data_dir, IMAP (and LMTP if lmtp_port) on 127.0.0.1;
    its log to the file log, if given."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    _wait_for_the_last_server(data_dir)
    cfg = os.path.join(data_dir, "..", "posthouse.toml")
    with open(cfg, "w") as f:
        f.write(f'data_dir = "{data_dir}"\nfsync = true\n[imap]\nport = {port}\ntls_port = {tls_port}\n'
                f'[lmtp]\nport = {lmtp_port or "false"}\n[smtp]\nport = false\n[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n[submission]\nport = false\ntls_port = false\n[web]\nport = false\n')
    err = open(log, "ab") if log else subprocess.DEVNULL
    try:
        proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", cfg, "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    finally:
        if log:
            err.close()
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def kill_amid(proc, client, clients: int, acked: list, how_many: int, stop: threading.Event) -> None:
    """Run clients (client(n) on threads) until how_many writes are
    acknowledged (or 30 s), then SIGKILL the server and wait for them."""
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while len(acked) < how_many and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join(10)


def test_sigkill_during_appends(tmp_path):
    data = str(tmp_path / "data")
    subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", data, "user", "add", "dura",
                    "--password-stdin"], input=b"pw\n", check=True, stdout=subprocess.DEVNULL)
    port, tls_port = _free_port(), _free_port()
    proc = _start(data, port, tls_port)
    acked: list[tuple[int, int, bytes]] = []    # (uidvalidity, uid, marker)
    lock = threading.Lock()
    stop = threading.Event()

    def client(n):
        try:
            c = imaplib.IMAP4("127.0.0.1", port)
            c.login("dura", "pw")
            for i in range(10_000):
                if stop.is_set():
                    return
                marker = f"c{n}-m{i}".encode()
                msg = b"Subject: " + marker + b"\r\nX-Marker: " + marker + b"\r\n\r\nbody " + marker + b"\r\n"
                typ, data = c.append("INBOX", None, None, msg)
                if typ != "OK":
                    return
                m = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
                with lock:
                    acked.append((int(m.group(1)), int(m.group(2)), marker))
        except (OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error):
            return   # the kill cut us off mid-command: that APPEND was never acknowledged

    kill_amid(proc, client, 4, acked, 60, stop)
    assert len(acked) >= 20, "too few appends acknowledged before the kill"
    uidvalidities = {a[0] for a in acked}
    assert len(uidvalidities) == 1

    proc = _start(data, port, tls_port)
    try:
        c = imaplib.IMAP4("127.0.0.1", port)
        c.login("dura", "pw")
        c.select("INBOX")
        assert c.untagged_responses["UIDVALIDITY"] == [str(uidvalidities.pop()).encode()]
        typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (X-MARKER)])")
        found = {}
        for item in data:
            if isinstance(item, tuple):
                uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                marker = item[1].split(b":", 1)[1].strip()
                assert marker not in found.values(), f"duplicate {marker!r}"
                found[uid] = marker
        uids = sorted(found)
        assert uids == sorted(set(uids))
        for _v, uid, marker in acked:
            assert found.get(uid) == marker, f"acknowledged {marker!r} (UID {uid}) lost"
        # UIDs keep growing after the restart, never reusing one
        typ, resp = c.append("INBOX", None, None, b"Subject: after\r\n\r\nx\r\n")
        new_uid = int(re.search(rb"APPENDUID \d+ (\d+)", resp[0]).group(1))
        assert new_uid > max(uids)
        c.logout()
    finally:
        proc.terminate()
        proc.wait(10)
