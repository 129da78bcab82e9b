"""Three nodes over one PostgreSQL (issue 24): any node serves any user; a
change on one reaches sessions on the others (LISTEN/NOTIFY, and the check
that finds what a lost notification didn't say); one mailbox driven from all
three at once keeps UIDs unique and ascending and MODSEQs rising in every
session; a node killed mid-load loses nothing acknowledged and its clients
resynchronize elsewhere with QRESYNC; the outbound queue sends each message
once. Latencies are printed, never asserted beyond a generous bound."""
from __future__ import annotations

import random
import re
import smtplib
import statistics
import threading
import time

from tests.cluster.conftest import PASSWORD, QUEUED
from tests.cluster.mirror import Broken, Mirror

BOUND = 10.0        # seconds: "arrives", generously (the figures are printed)


def message(token: str, size: int = 200) -> bytes:
    return (f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {token}\r\n"
            f"Message-ID: <{token}@cluster.test>\r\n\r\n" + "x" * size + "\r\n").encode()


def idle(node, user: str, mailbox: str = "INBOX"):
    c = node.login(user)
    lines = c.cmd("S", f"SELECT {mailbox}")
    assert lines[-1].startswith(b"S OK"), lines
    exists = next(int(line.split()[1]) for line in lines if line.endswith(b"EXISTS\r\n"))
    c.send(b"I IDLE\r\n")
    assert c.readline().startswith(b"+")
    return c, exists


def wait_for(c, pattern: bytes, timeout: float = BOUND) -> bytes:
    """The next line from an IDLE session matching pattern (within timeout)."""
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"{pattern!r} did not come within {timeout} s"
        c.sock.settimeout(left)
        try:
            line = c.readline()
        except TimeoutError:
            raise AssertionError(f"{pattern!r} did not come within {timeout} s") from None
        assert line, "connection closed"
        if rx.search(line):
            return line


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def test_any_node_serves_any_user_and_sees_mail_added_on_another(cluster):
    n0, n1, n2 = cluster.nodes
    for node in cluster.nodes + [cluster.deaf]:
        for user in ("ann", "bob"):
            c = node.login(user)
            assert c.cmd("S", "SELECT INBOX")[-1].startswith(b"S OK")
            c.close()
    a = Mirror(n0.imap_port, "bob", PASSWORD, "bob@n0")
    uid = a.append(message("any-node"))
    for node in (n1, n2):
        # (Its INBOX is kept open there since the SELECT above: it hears of the
        # new message within milliseconds; a NOOP takes it in.)
        c = node.login("bob")
        c.cmd("S", "EXAMINE INBOX")
        deadline = time.monotonic() + BOUND
        while True:
            lines = c.cmd("F", f"UID FETCH {uid} (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            if any(b"any-node" in line for line in lines) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
            c.cmd("N", "NOOP")
        assert any(b"any-node" in line for line in lines), lines
        c.close()
    a.close()


def test_append_and_delivery_on_one_node_reach_an_idle_session_on_another(cluster):
    n0, n1, _n2 = cluster.nodes
    watcher, exists = idle(n1, "ann")
    writer = Mirror(n0.imap_port, "ann", PASSWORD, "ann@n0")
    lmtp = smtplib.LMTP("127.0.0.1", n0.lmtp_port, timeout=30)
    appended, delivered = [], []
    try:
        for i in range(200):
            started = time.perf_counter()
            if i % 2:
                lmtp.sendmail("s@elsewhere.test", ["ann@example.com"], message(f"lat-l{i}"))
            else:
                writer.append(message(f"lat-a{i}"))
            exists += 1
            wait_for(watcher, rb"^\* %d EXISTS" % exists)
            (delivered if i % 2 else appended).append(time.perf_counter() - started)
    finally:
        lmtp.close()
        writer.close()
        watcher.close()
    both = appended + delivered
    print(f"\nnode A -> IDLE on node B, from the command sent to EXISTS seen (ms): "
          f"APPEND p50 {1000 * statistics.median(appended):.1f} p99 {1000 * percentile(appended, 99):.1f}; "
          f"LMTP p50 {1000 * statistics.median(delivered):.1f} p99 {1000 * percentile(delivered, 99):.1f}; "
          f"all {len(both)}: p50 {1000 * statistics.median(both):.1f} p99 {1000 * percentile(both, 99):.1f} "
          f"max {1000 * max(both):.1f}")


def test_a_node_that_hears_no_notification_learns_of_changes_at_its_next_check(cluster):
    """The deaf node drops every notification (a lost one, each time): its
    check of MODSEQs still brings new mail, flag changes and expunges."""
    n0 = cluster.nodes[0]
    watcher, exists = idle(cluster.deaf, "dan", "Archive")
    writer = Mirror(n0.imap_port, "dan", PASSWORD, "dan@n0")
    try:
        writer.select("Archive")
        uid = int(re.search(rb"APPENDUID \d+ (\d+)", writer.cmd("APPEND Archive ()", message("deaf-1"))[-1])[1])
        wait_for(watcher, rb"^\* %d EXISTS" % (exists + 1))
        writer.cmd(f"UID STORE {uid} +FLAGS (\\Flagged)")
        wait_for(watcher, rb"^\* \d+ FETCH \(.*\\Flagged")
        writer.cmd(f"UID STORE {uid} +FLAGS (\\Deleted)")
        writer.cmd(f"UID EXPUNGE {uid}")
        wait_for(watcher, rb"^\* \d+ EXPUNGE")
    finally:
        writer.close()
        watcher.close()


def test_notify_on_one_node_tells_of_mailboxes_made_and_mail_added_on_another(cluster):
    n0, n1, _ = cluster.nodes
    watcher = n1.login("bob")      # (news comes between commands, too)
    assert watcher.cmd("N", "NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")[-1].startswith(b"N OK")
    maker = n0.login("bob")
    try:
        assert maker.cmd("C", "CREATE Projects")[-1].startswith(b"C OK")
        wait_for(watcher, rb'^\* LIST \(\) "/" Projects')
        assert maker.cmd("A", b"APPEND Archive {%d+}\r\n" % len(message("notify-1")) + message("notify-1"))[-1] \
            .startswith(b"A OK")
        wait_for(watcher, rb"^\* STATUS Archive \(MESSAGES \d+")
        assert maker.cmd("D", "DELETE Projects")[-1].startswith(b"D OK")
        wait_for(watcher, rb'^\* LIST \(\\NonExistent\) "/" Projects')
    finally:
        maker.close()
        watcher.close()


def _driver(node, who: str, rounds: int, acked: list, problems: list, start: threading.Barrier,
            done: threading.Barrier) -> None:
    """APPEND (a keeper and a throwaway), STORE on what it sees, EXPUNGE its throwaways."""
    rng = random.Random(who)
    m = None
    try:
        m = Mirror(node.imap_port, "cat", PASSWORD, who)
        m.select()
        start.wait(60)
        throwaways = []
        for i in range(rounds):
            acked.append((who, f"keep-{who}-{i}", m.append(message(f"keep-{who}-{i}"))))
            throwaways.append(m.append(message(f"toss-{who}-{i}"), "$Toss"))
            acked.append((who, None, throwaways[-1]))
            if m.uids:
                m.cmd(f"UID STORE {rng.choice(m.uids)} +FLAGS (${who})")
            if i % 3 == 2:
                uids = ",".join(map(str, throwaways))
                m.cmd(f"UID STORE {uids} +FLAGS.SILENT (\\Deleted)")
                m.cmd(f"UID EXPUNGE {uids}")
                throwaways = []
            m.cmd("NOOP")
        done.wait(120)
        # Everyone has stopped: the view settles on the truth (what the check reads).
        deadline = time.monotonic() + BOUND
        truth = None
        while time.monotonic() < deadline:
            m.cmd("NOOP")
            truth = _truth(node, "cat")
            if m.uids == sorted(truth) and all(m.flags.get(u) == f for u, f in truth.items()):
                break
            time.sleep(0.1)
        assert m.uids == sorted(truth), f"{who}: view {len(m.uids)} UIDs, mailbox {len(truth)}"
        for uid, flags in truth.items():
            assert m.flags.get(uid) == flags, (who, uid, m.flags.get(uid), flags)
    except BaseException as e:      # (Broken included)
        problems.append(f"{who}: {e!r}"[:2000])
        start.abort()
        done.abort()
    finally:
        if m is not None:
            m.close()


def _truth(node, user: str) -> dict[int, frozenset]:
    """UID -> flags of a user's INBOX, read by a new session."""
    c = node.login(user)
    try:
        lines = c.cmd("S", "EXAMINE INBOX")
        assert lines[-1].startswith(b"S OK")
        lines = c.cmd("F", "UID FETCH 1:* (FLAGS)")
        out = {}
        for line in lines[:-1]:
            m = re.match(rb"^\* \d+ FETCH \((.*)\)", line)
            if m:
                uid = int(re.search(rb"UID (\d+)", line)[1])
                out[uid] = frozenset(re.search(rb"FLAGS \(([^)]*)\)", line)[1].split()) - {b"\\Recent"}
        return out
    finally:
        c.close()


def _subjects(node, user: str) -> dict[int, str]:
    c = node.login(user)
    try:
        c.cmd("S", "EXAMINE INBOX")
        lines = c.cmd("F", "UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = {}
        for i, line in enumerate(lines):
            m = re.match(rb"^\* \d+ FETCH \(.*UID (\d+)", line)
            if m:
                subject = re.search(rb"Subject: (\S+)", lines[i + 1])
                out[int(m[1])] = subject[1].decode() if subject else ""
        return out
    finally:
        c.close()


def test_one_mailbox_driven_from_three_nodes_at_once(cluster):
    per_node, rounds = 2, 12
    drivers = [(node, f"{node.name}c{k}") for node in cluster.nodes for k in range(per_node)]
    acked: list = []
    problems: list = []
    start, done = threading.Barrier(len(drivers)), threading.Barrier(len(drivers))
    threads = [threading.Thread(target=_driver, args=(node, who, rounds, acked, problems, start, done))
               for node, who in drivers]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads)
    assert not problems, "\n".join(problems)
    print(f"\n{len(drivers)} sessions on 3 nodes, {len(drivers) * rounds * 2} APPENDs with STORE and EXPUNGE "
          f"between: {time.perf_counter() - started:.1f} s")
    # No UID given twice; every acknowledged keeper there, once, under the UID it was given.
    uids = [uid for _who, _token, uid in acked]
    assert len(uids) == len(set(uids)) == len(drivers) * rounds * 2
    subjects = _subjects(cluster.nodes[0], "cat")
    keepers = [s for s in subjects.values() if s.startswith("keep-")]
    assert sorted(keepers) == sorted(token for _who, token, _uid in acked if token)
    for _who, token, uid in acked:
        if token:
            assert subjects[uid] == token


def test_a_node_killed_mid_load_loses_nothing_acknowledged_and_its_clients_resync_elsewhere(cluster):
    n0, n1, n2 = cluster.nodes
    user = "dan"
    acked: list[int] = []
    mirrors: list[Mirror] = []
    problems: list = []
    busy = [threading.Event(), threading.Event()]      # each appender: some APPENDs acknowledged

    def appender(k: int) -> None:
        i = 0
        try:
            m = Mirror(n2.imap_port, user, PASSWORD, f"dan@n2c{k}")
            m.select()
            mirrors.append(m)
            while True:
                acked.append(m.append(message(f"kill-{k}-{i}")))
                i += 1
                m.cmd("NOOP")
                if i >= 8:
                    busy[k].set()
        except (ConnectionError, OSError, AssertionError, IndexError) as e:
            if isinstance(e, Broken) or not busy[k].is_set():
                problems.append(repr(e))        # (not the node dying under it)
        finally:
            busy[k].set()

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    assert all(b.wait(60) for b in busy)
    assert not problems, problems
    n2.kill()
    for t in threads:
        t.join(60)
    assert not problems, problems
    # Meanwhile, on another node: some of what the killed node's clients know goes, some is flagged.
    other = Mirror(n0.imap_port, user, PASSWORD, "dan@n0")
    other.select()
    known = {uid for m in mirrors for uid in m.uids}
    gone = sorted(known)[::4]
    flagged = sorted(known - set(gone))[::3]
    other.cmd(f"UID STORE {','.join(map(str, gone))} +FLAGS.SILENT (\\Deleted)")
    other.cmd(f"UID EXPUNGE {','.join(map(str, gone))}")
    other.cmd(f"UID STORE {','.join(map(str, flagged))} +FLAGS (\\Answered)")
    other.close()
    truth = _truth(n0, user)
    assert set(acked) - set(gone) <= set(truth), "an acknowledged APPEND was lost"
    # The killed node's clients come back on n1 and resynchronize from what they knew.
    for m in mirrors:
        before_modseq = dict(m.modseq)
        # What it knew: every change up to the highest MODSEQ it was shown.
        old = (m.uidvalidity, max([m.highest, *m.modseq.values()]), sorted(m.uids))
        back = Mirror(n1.imap_port, user, PASSWORD, m.who + "@n1")
        back.highest, back.modseq, back.max_uid = m.highest, dict(before_modseq), 0
        back.select(qresync=old)
        assert sorted(set(back.vanished_earlier) & set(old[2])) == sorted(set(gone) & set(old[2])), \
            (back.vanished_earlier, gone)
        # Changed since: told with their new flags; the view now is the mailbox.
        for uid in set(flagged) & set(old[2]):
            assert "\\Answered" in {f.decode() for f in back.flags.get(uid, ())}, (uid, back.flags.get(uid))
            assert back.modseq[uid] > before_modseq.get(uid, 0)
        assert back.uids == sorted(truth)
        back.close()
    # The node comes back, and serves again.
    n2.start()
    n2.wait_ready()
    assert set(_truth(n2, user)) == set(truth)


def test_the_outbound_queue_on_three_nodes_sends_each_message_once(cluster):
    deadline = time.monotonic() + 60
    ids = lambda: [re.search(rb"Message-ID: <([^>]+)>", d)[1] for d in cluster.sink.received]  # noqa: E731
    while len(set(ids())) < QUEUED and time.monotonic() < deadline:
        time.sleep(0.2)
    store = cluster.store()
    try:
        while store.next_outbound_time() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        left = store.db.execute("SELECT count(*) FROM outbound").fetchone()[0]
    finally:
        store.close()
    sent = ids()
    assert left == 0
    assert sorted(sent) == sorted({f"queued-{i}@cluster.test".encode() for i in range(QUEUED)}), \
        f"{len(sent)} sent for {QUEUED} queued"


def test_a_qresync_select_on_a_node_behind_the_client_reads_what_the_client_knows_first(cluster):
    """The client comes from a node that showed it MODSEQ m; this node's open
    index has not heard of it yet (the deaf node hears nothing until its
    check): SELECT reads the change log first, so HIGHESTMODSEQ doesn't go
    back and the client's messages are there."""
    n0 = cluster.nodes[0]
    keeper = cluster.deaf.login("dan")          # keeps Drafts open on the deaf node
    assert keeper.cmd("S", "SELECT Drafts")[-1].startswith(b"S OK")
    writer = Mirror(n0.imap_port, "dan", PASSWORD, "dan@n0")
    try:
        writer.select("Drafts")
        uid = int(re.search(rb"APPENDUID \d+ (\d+)", writer.cmd("APPEND Drafts ()", message("behind-1"))[-1])[1])
        writer.cmd(f"UID STORE {uid} +FLAGS (\\Seen)")
        known = max(writer.modseq.values())
        back = Mirror(cluster.deaf.imap_port, "dan", PASSWORD, "dan@deaf")
        back.highest = known
        back.select("Drafts", qresync=(writer.uidvalidity, known, [uid]))    # Broken if HIGHESTMODSEQ < known
        assert back.uids[-1] == uid and back.highest >= known
        back.close()
    finally:
        writer.close()
        keeper.close()


def test_status_and_metrics_of_a_node_tell_of_the_database_and_the_other_nodes(cluster):
    import json
    import subprocess
    import sys
    import urllib.request
    n0 = cluster.nodes[0]
    Mirror(cluster.nodes[1].imap_port, "ann", PASSWORD, "ann@n1").append(message("status-1"))
    shown = subprocess.run([sys.executable, "-m", "posthouse", "--config", n0.config, "status"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in shown.stdout.splitlines())
    assert re.match(r"PostgreSQL: \d+ messages \(.*\) in \d+ mailboxes, 4 users; database ", lines["store"]), lines
    assert re.match(r"node \w+, listening for other nodes: [1-9]\d* notifications heard", lines["cluster"]), lines
    doc = json.loads(subprocess.run([sys.executable, "-m", "posthouse", "--config", n0.config, "status", "--json"],
                                    capture_output=True, text=True, timeout=60).stdout)
    store = cluster.store()
    try:
        assert doc["store"]["messages"] == store.db.execute("SELECT count(*) FROM messages").fetchone()[0]
    finally:
        store.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{n0.metrics_port}/metrics", timeout=30) as response:
        text = response.read().decode()
    figures = dict(re.findall(r"^(posthouse_(?:store|cluster|queue)_\w+) (\S+)$", text, re.M))
    assert float(figures["posthouse_store_messages"]) == doc["store"]["messages"]
    assert float(figures["posthouse_cluster_notifications_total"]) > 0
    assert figures["posthouse_cluster_listening"] == "1.0" and "posthouse_queue_length" in figures


def test_a_node_whose_listening_connection_is_cut_connects_again_and_misses_nothing(cluster):
    import psycopg
    n0, n1, _ = cluster.nodes
    watcher, exists = idle(n1, "bob", "Sent")
    with psycopg.connect(cluster.url, autocommit=True) as db:
        # Every node's LISTEN connection is cut (as by a restart of the database's side of it).
        cut = db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = 'posthouse-listen'").fetchall()
    assert cut
    writer = n0.login("bob")
    try:
        raw = message("after-cut")
        assert writer.cmd("A", b"APPEND Sent {%d+}\r\n" % len(raw) + raw)[-1].startswith(b"A OK")
        wait_for(watcher, rb"^\* %d EXISTS" % (exists + 1))
        # Listening again: the next change comes by notification.
        deadline = time.monotonic() + BOUND
        while "listening for other nodes' changes again" not in n1.text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "listening for other nodes' changes again" in n1.text()
        assert writer.cmd("B", b"APPEND Sent {%d+}\r\n" % len(raw) + raw)[-1].startswith(b"B OK")
        wait_for(watcher, rb"^\* %d EXISTS" % (exists + 2))
    finally:
        writer.close()
        watcher.close()


def test_a_node_that_hears_no_notification_follows_a_mailbox_made_elsewhere_after_its_check(cluster):
    """NOTIFY on the deaf node: the mailbox made on another node is not told
    of, but its check of the user's list finds it, and then its mail is."""
    watcher = cluster.deaf.login("ann")
    assert watcher.cmd("N", "NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")[-1] \
        .startswith(b"N OK")
    maker = cluster.nodes[0].login("ann")
    try:
        assert maker.cmd("C", "CREATE Later")[-1].startswith(b"C OK")
        # Its checks (every second) find the list changed, then follow the new
        # mailbox from the MODSEQ it has then: mail added after that is told.
        for n in range(1, 6):
            raw = message(f"later-{n}")
            assert maker.cmd("A", b"APPEND Later {%d+}\r\n" % len(raw) + raw)[-1].startswith(b"A OK")
            try:
                wait_for(watcher, rb"^\* STATUS Later \(MESSAGES \d+ ", timeout=3)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("the deaf node never told of mail in a mailbox made on another node:\n"
                                 + cluster.deaf.text()[-3000:])
    finally:
        maker.close()
        watcher.close()
