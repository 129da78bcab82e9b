"""`workers = 2` (issue 24): two session processes over one store, on the same
ports. Everything correct in one process holds across them; each test puts
its sessions on different workers (the ID response says which serves one)."""
from __future__ import annotations

import os
import poplib
import re
import select
import signal
import smtplib
import statistics
import time

import pytest

from tests.conftest import RawClient, WorkersServer, sqlite_only, worker_of

pytestmark = sqlite_only("the workers' tests start `posthouse serve` on a SQLite data directory")


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    srv = WorkersServer(str(tmp_path_factory.mktemp("workers")), workers=2)
    yield srv
    srv.stop()
    assert "posthouse stopped (SIGTERM)" in srv.log()


def login(srv, user) -> RawClient:
    c = RawClient(srv.host, srv.port)
    assert c.cmd("L", f"LOGIN {user[0]} {user[1]}")[-1].startswith(b"L OK")
    return c


def on_workers(srv, user, wanted: list[int]) -> list[RawClient]:
    """Logged-in sessions, the i-th served by worker wanted[i] (connecting until so)."""
    got: list[RawClient | None] = [None] * len(wanted)
    spare = []
    for _ in range(80):
        if all(got):
            break
        c = login(srv, user)
        n = worker_of(c)
        slot = next((i for i, w in enumerate(wanted) if w == n and got[i] is None), None)
        if slot is None:
            spare.append(c)
        else:
            got[slot] = c
    for c in spare:
        c.close()
    assert all(got), f"no session on each of workers {wanted}"
    return got


def message(subject: str) -> bytes:
    return (f"From: a@example.org\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.org>\r\n\r\nbody {subject}\r\n").encode()


def append(c: RawClient, mailbox: str, subject: str, flags: str = "") -> list[bytes]:
    data = message(subject)
    c.send(f"A APPEND {mailbox} {('(' + flags + ') ') if flags else ''}{{{len(data)}}}\r\n".encode())
    assert c.readline().startswith(b"+")
    c.send(data + b"\r\n")
    lines = c.read_until_tag("A")
    assert lines[-1].startswith(b"A OK"), lines
    return lines


def wait_for(c: RawClient, pattern: bytes, timeout: float = 10) -> bytes:
    """The next line the server sends unasked that contains pattern."""
    deadline = time.monotonic() + timeout
    while True:
        if b"\r\n" not in c.buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} within {timeout} s"
            ready, _, _ = select.select([c.sock], [], [], left)
            if not ready:
                continue
        line = c.readline()
        if pattern in line:
            return line


def test_sessions_are_spread_over_the_workers(farm):
    user = farm.add_user()
    a, b = on_workers(farm, user, [0, 1])
    pids = farm.worker_pids()
    assert len(pids) == 2 and pids[0] != pids[1]
    a.close()
    b.close()


def test_append_reaches_idle_and_notify_sessions_of_the_other_worker(farm):
    user = farm.add_user()
    writer, idler, notified = on_workers(farm, user, [0, 1, 1])
    writer.cmd("S", "SELECT INBOX")
    idler.cmd("S", "SELECT INBOX")
    idler.send("I IDLE\r\n")
    assert idler.readline().startswith(b"+")
    assert notified.cmd("N", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")[-1].startswith(b"N OK")
    latencies = []
    for i in range(1, 21):
        started = time.perf_counter()
        append(writer, "INBOX", f"fan{i}")
        assert wait_for(idler, b"EXISTS") == b"* %d EXISTS\r\n" % i
        latencies.append(time.perf_counter() - started)
        assert b"INBOX" in wait_for(notified, b"STATUS")
    print(f"\nAPPEND on worker 0 -> IDLE on worker 1 (including the APPEND's own answer): "
          f"p50 {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    idler.send("DONE\r\n")
    assert idler.read_until_tag("I")[-1].startswith(b"I OK")
    for c in (writer, idler, notified):
        c.close()


def test_next_command_hears_expunge_and_flags_from_the_other_worker(farm):
    user = farm.add_user()
    a, b = on_workers(farm, user, [0, 1])
    for i in range(3):
        append(a, "INBOX", f"x{i}")
    a.cmd("S", "SELECT INBOX")
    assert b"* 3 EXISTS\r\n" in b.cmd("S", "SELECT INBOX")
    # A STORE answered on worker 0 is there for worker 1's very next command.
    assert a.cmd("F", "STORE 2 +FLAGS (\\Flagged)")[-1].startswith(b"F OK")
    lines = b.cmd("G", "FETCH 2 FLAGS")
    assert any(b"FETCH (FLAGS (\\Flagged))" in x for x in lines), lines
    assert a.cmd("D", "STORE 1 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"D OK")
    assert a.cmd("E", "EXPUNGE")[-1].startswith(b"E OK")
    lines = b.cmd("N", "NOOP")
    assert b"* 1 EXPUNGE\r\n" in lines, lines
    # And flags another session set, unasked, with the next command.
    a.cmd("F", "STORE 1 +FLAGS (\\Answered)")
    lines = b.cmd("N", "NOOP")
    assert any(x.startswith(b"* 1 FETCH") and b"FLAGS (\\Answered \\Flagged)" in x for x in lines), lines
    a.close()
    b.close()


def test_write_behind_stores_of_one_worker_are_in_the_next_command_of_another(farm):
    """Worker 0 answers each STORE before the store has it (write-behind);
    worker 1's very next command still tells of it, every time."""
    user = farm.add_user()
    a, b = on_workers(farm, user, [0, 1])
    append(a, "INBOX", "x")
    append(a, "INBOX", "y")
    a.cmd("S", "SELECT INBOX")
    b.cmd("S", "SELECT INBOX")
    for i in range(40):
        assert a.cmd("F", f"STORE {i % 2 + 1} FLAGS (k{i})")[-1].startswith(b"F OK")
        lines = b.cmd("G", f"FETCH {i % 2 + 1} FLAGS")
        assert any(b"FLAGS (k%d)" % i in x for x in lines), (i, lines)
    # And a SELECT on worker 1 right after a STORE on worker 0.
    assert a.cmd("F", "STORE 1 FLAGS (\\Seen)")[-1].startswith(b"F OK")
    lines = b.cmd("S", "SELECT INBOX")
    assert b"* OK [UNSEEN 2]" in b"".join(lines), lines
    a.close()
    b.close()
    assert "was not done in" not in farm.log()      # (no wait ran out: every count was finished)


def test_recent_goes_to_exactly_one_session_across_workers(farm):
    user = farm.add_user()
    sessions = on_workers(farm, user, [0, 1, 0, 1])
    appender = on_workers(farm, user, [1])[0]
    for i in range(3):
        append(appender, "INBOX", f"r{i}")
    recent = 0
    for i, c in enumerate(sessions):
        lines = c.cmd("S", "SELECT INBOX")
        recent += sum(int(m[1]) for m in (re.match(rb"\* (\d+) RECENT", x) for x in lines) if m)
    assert recent == 3
    # New mail while they are selected: each message is \Recent in one of them.
    for i in range(4):
        append(appender, "INBOX", f"s{i}")
    told = set()
    for c in sessions:
        c.cmd("N", "NOOP")      # (the new mail is claimed as the session hears of it)
        lines = c.cmd("R", "SEARCH RECENT")
        found = [x for x in lines if x.startswith(b"* SEARCH")][0].split()[2:]
        assert not told & set(found)
        told |= set(found)
    assert told == {b"%d" % n for n in range(1, 8)}
    for c in sessions + [appender]:
        c.close()


def test_qresync_vanished_earlier_after_expunges_in_the_other_worker(farm):
    user = farm.add_user()
    a, b = on_workers(farm, user, [0, 1])
    for i in range(5):
        append(a, "INBOX", f"q{i}")
    b.cmd("E", "ENABLE QRESYNC")
    lines = b.cmd("S", "SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(lines))[1])
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines))[1])
    b.cmd("U", "UNSELECT")
    a.cmd("S", "SELECT INBOX")
    a.cmd("D", "UID STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    assert a.cmd("E", "EXPUNGE")[-1].startswith(b"E OK")
    lines = b.cmd("Q", f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
    assert b"* VANISHED (EARLIER) 2,4\r\n" in lines, lines
    a.close()
    b.close()


def test_search_context_update_hears_the_other_worker(farm):
    user = farm.add_user()
    a, b = on_workers(farm, user, [0, 1])
    for i in range(3):
        append(a, "INBOX", f"c{i}")
    a.cmd("S", "SELECT INBOX")
    b.cmd("S", "SELECT INBOX")
    lines = b.cmd("U1", "SEARCH RETURN (UPDATE ALL) FLAGGED")
    assert lines[-1].startswith(b"U1 OK")
    a.cmd("F", "STORE 2 +FLAGS (\\Flagged)")
    assert b'* ESEARCH (TAG "U1") ADDTO (0 2)\r\n' in b.cmd("N", "NOOP")
    b.cmd("T", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert a.cmd("E", "EXPUNGE")[-1].startswith(b"E OK")
    lines = b.cmd("N", "NOOP")
    assert b"* 1 EXPUNGE\r\n" in lines, lines
    a.close()
    b.close()


def test_pop3_lock_holds_across_workers(farm):
    name, password = farm.add_user()

    def pop3() -> RawClient:
        c = RawClient(farm.host, farm.pop3_port)
        c.send(f"USER {name}\r\n")
        assert c.readline().startswith(b"+OK")
        c.send(f"PASS {password}\r\n")
        return c

    holder = pop3()
    assert holder.readline().startswith(b"+OK")
    # Connections spread by the kernel over both workers (each a 1 in 2 chance,
    # so 10 of them all on the holder's worker is a 1 in 1024 chance).
    for _ in range(10):
        c = pop3()
        assert c.readline().startswith(b"-ERR [IN-USE]")
        c.close()
    holder.send("QUIT\r\n")
    assert holder.readline().startswith(b"+OK")
    holder.close()
    c = pop3()
    assert c.readline().startswith(b"+OK")
    c.close()


def test_quota_holds_across_workers(farm):
    from posthouse.store.sqlite.backend import SQLiteStore
    user = farm.add_user()
    store = SQLiteStore(farm.data_dir, fsync=False)
    try:
        store.set_quota(user[0], None, 3)
    finally:
        store.close()
    a, b = on_workers(farm, user, [0, 1])
    append(a, "INBOX", "u1")
    append(b, "INBOX", "u2")
    append(a, "INBOX", "u3")
    data = message("u4")
    b.send(f"A APPEND INBOX {{{len(data)}}}\r\n".encode())
    if b.readline().startswith(b"+"):
        b.send(data + b"\r\n")
    assert b"[OVERQUOTA]" in b.read_until_tag("A")[-1]
    assert b"* STATUS INBOX (MESSAGES 3)" in b"".join(a.cmd("T", "STATUS INBOX (MESSAGES)"))
    a.close()
    b.close()


def _lmtp_deliver(srv, rcpt: str, subjects: list[str]) -> None:
    client = smtplib.LMTP(srv.host, srv.lmtp_port, timeout=30)
    try:
        client.ehlo_or_helo_if_needed()
        for s in subjects:
            assert client.sendmail("a@example.org", [rcpt], message(s)) == {}
    finally:
        client.quit()


def _message_ids(srv, user) -> list[bytes]:
    c = login(srv, user)
    c.cmd("S", "SELECT INBOX")
    lines = c.cmd("F", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    c.close()
    return re.findall(rb"<([^>]+)@example\.org>", b"".join(lines))


def test_sigkilled_worker_costs_only_its_connections_and_loses_nothing(farm):
    user = farm.add_user()
    a, b = on_workers(farm, user, [0, 1])
    a.cmd("S", "SELECT INBOX")
    b.cmd("S", "SELECT INBOX")
    acked = []
    for i in range(5):
        append(b, "INBOX", f"k{i}")
        acked.append(f"k{i}".encode())
    # Mail through LMTP (on either worker: its journal), answered, then worker 1 killed at once.
    subjects = [f"j{i}" for i in range(10)]
    _lmtp_deliver(farm, f"{user[0]}@example.com", subjects)
    acked += [s.encode() for s in subjects]
    before = farm.worker_pids()
    os.kill(before[1], signal.SIGKILL)
    # Worker 0's session goes on; worker 1's connection is gone.
    assert a.cmd("N", "NOOP")[-1].startswith(b"N OK")
    b.sock.settimeout(10)
    try:
        gone = b.cmd("N", "NOOP")
    except (ConnectionError, OSError):
        gone = None
    assert gone is None or not gone[-1].startswith(b"N OK")
    b.close()
    farm.wait_ready({1}, besides=before)
    assert "worker 1" in farm.log() and "killed by SIGKILL" in farm.log()
    # Every acknowledged message is there, once (a journal of the dead worker's is filed on its restart).
    deadline = time.monotonic() + 20
    while sorted(_message_ids(farm, user)) != sorted(acked) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(_message_ids(farm, user)) == sorted(acked)
    c = on_workers(farm, user, [1])[0]      # the new worker 1 serves
    assert c.cmd("S", "SELECT INBOX")[-1].startswith(b"S OK")
    c.close()
    a.close()


def test_lmtp_deliveries_through_both_workers_are_filed_once(farm):
    user = farm.add_user()
    subjects = [f"d{i}" for i in range(16)]
    # Connections spread over the workers; each delivery filed from the journal of the one that took it.
    for i in range(0, 16, 2):
        _lmtp_deliver(farm, f"{user[0]}@example.com", subjects[i:i + 2])
    deadline = time.monotonic() + 20
    while len(_message_ids(farm, user)) < 16 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(_message_ids(farm, user)) == sorted(s.encode() for s in subjects)
    assert os.path.isdir(os.path.join(farm.data_dir, "arrivals.1"))


def test_mail_answered_250_by_one_worker_is_in_the_next_command_of_a_session_on_another(farm):
    """In one process a session's next command waits for the mail answered
    "250" to be filed; across workers too: each delivery (whichever worker
    took its LMTP connection) is told by the very next command of a session
    on either worker, and a POP3 login's maildrop has it."""
    user = farm.add_user()
    watchers = on_workers(farm, user, [0, 1])
    for c in watchers:
        c.cmd("S", "SELECT INBOX")
    for i in range(12):
        subject = f"now{i}"
        _lmtp_deliver(farm, f"{user[0]}@example.com", [subject])
        for c in watchers:
            lines = c.cmd("N", "NOOP")
            assert b"* %d EXISTS\r\n" % (i + 1) in lines, (i, lines)
    pop = poplib.POP3(farm.host, farm.pop3_port, timeout=30)
    try:
        pop.user(user[0])
        pop.pass_(user[1])
        assert pop.stat()[0] == 12
    finally:
        pop.quit()
    for c in watchers:
        c.close()
    assert "was not done in" not in farm.log()      # (no wait ran out: every count was finished)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    srv = WorkersServer(str(tmp_path_factory.mktemp("guarded")), workers=2, auth_throttle_max=1.0)
    yield srv
    srv.stop()


def unauthenticated_on(srv, number: int) -> RawClient:
    for _ in range(80):
        c = RawClient(srv.host, srv.port)
        if worker_of(c) == number:
            return c
        c.close()
    raise AssertionError(f"no connection served by worker {number}")


def test_login_throttle_counts_failures_of_every_worker(guarded):
    name, password = guarded.add_user()
    # Guesses on worker 0 (a connection each: ID says which worker serves it).
    for i in range(6):
        c = unauthenticated_on(guarded, 0)
        assert c.cmd("g", f"LOGIN {name} wrong{i}")[-1].startswith(b"g NO")
        c.close()
    # A guess on worker 1 right after waits for its slot there too: the
    # failures made on worker 0 count (delay_after(6) = the 1 s maximum).
    # (Without them, a clean address is answered at once.)
    c = unauthenticated_on(guarded, 1)
    started = time.monotonic()
    assert c.cmd("g", f"LOGIN {name} wrong-again")[-1].startswith(b"g NO")
    assert time.monotonic() - started >= 0.5
    c.close()
