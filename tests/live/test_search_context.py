"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267): PARTIAL, and searches kept up
to date with ADDTO/REMOVEFROM, on a live server."""
from __future__ import annotations

import pytest

from tests.conftest import raw_login


def _msg(n: int, subject: str) -> bytes:
    return (f"From: a@example.com\r\nSubject: {subject}\r\n"
            f"Date: Tue, 02 Jan 2024 10:{n:02d}:00 +0000\r\n\r\nbody {n}\r\n").encode()


@pytest.fixture
def pair(server):
    user = server.add_user()
    a, b = raw_login(server, user), raw_login(server, user)
    # Subjects sort as e, d, c, b, a: SORT (SUBJECT) is the reverse of arrival.
    assert a.cmd("C", "CREATE ctx")[-1].startswith(b"C OK")
    for n, subject in enumerate("edcba", 1):
        data = _msg(n, subject)
        assert a.cmd("A", b"APPEND ctx {%d+}\r\n" % len(data) + data)[-1].startswith(b"A OK")
    a.cmd("S", "SELECT ctx")
    b.cmd("S", "SELECT ctx")
    yield a, b
    a.close()
    b.close()


def _esearch(lines, tag):
    return [line for line in lines if line.startswith(b'* ESEARCH (TAG "%s")' % tag.encode())]


def test_partial(pair):
    a, _b = pair
    assert _esearch(a.cmd("P", "SEARCH RETURN (PARTIAL 2:3 COUNT) ALL"), "P") == \
        [b'* ESEARCH (TAG "P") COUNT 5 PARTIAL (2:3 2:3)\r\n']
    assert _esearch(a.cmd("P", "SORT RETURN (PARTIAL 1:2) (SUBJECT) UTF-8 ALL"), "P") == \
        [b'* ESEARCH (TAG "P") PARTIAL (1:2 5,4)\r\n']
    assert _esearch(a.cmd("P", "UID SEARCH RETURN (PARTIAL 9:7) ALL"), "P") == \
        [b'* ESEARCH (TAG "P") UID PARTIAL (7:9 NIL)\r\n']
    for bad in ("PARTIAL 0:2", "PARTIAL 1", "PARTIAL 1:*", "PARTIAL", "PARTIAL 1:2 ALL", "PARTIAL x:y",
                "PARTIAL 1:99999999999", "UPDATE SAVE", "BOGUS"):
        assert a.cmd("P", f"SEARCH RETURN ({bad}) ALL")[-1].startswith(b"P BAD"), bad


def test_search_update_follows_every_change(pair):
    a, b = pair
    lines = a.cmd("U1", "SEARCH RETURN (UPDATE ALL) FLAGGED")
    assert _esearch(lines, "U1") == [b'* ESEARCH (TAG "U1")\r\n']
    # Our own STORE, another session's STORE, and a message that arrives.
    assert _esearch(a.cmd("T", "STORE 2,4 +FLAGS (\\Flagged)"), "U1") == [b'* ESEARCH (TAG "U1") ADDTO (0 2,4)\r\n']
    b.cmd("T", "STORE 1 +FLAGS (\\Flagged)")
    assert _esearch(a.cmd("N", "NOOP"), "U1") == [b'* ESEARCH (TAG "U1") ADDTO (0 1)\r\n']
    data = _msg(9, "z")
    b.cmd("A", b"APPEND ctx (\\Flagged) {%d+}\r\n" % len(data) + data)
    lines = a.cmd("N", "NOOP")
    assert lines.index(b"* 6 EXISTS\r\n") < lines.index(b'* ESEARCH (TAG "U1") ADDTO (0 6)\r\n')
    # An expunge: REMOVEFROM numbered as before the EXPUNGE that follows it.
    b.cmd("T", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.cmd("E", "EXPUNGE")
    lines = a.cmd("N", "NOOP")
    assert lines.index(b'* ESEARCH (TAG "U1") REMOVEFROM (0 2)\r\n') < lines.index(b"* 2 EXPUNGE\r\n")
    assert _esearch(a.cmd("T", "STORE 1 -FLAGS (\\Flagged)"), "U1") == [b'* ESEARCH (TAG "U1") REMOVEFROM (0 1)\r\n']
    # Another kept search, by UID, alongside; then each is cancelled on its own.
    assert _esearch(a.cmd("U2", "UID SEARCH RETURN (UPDATE) UNSEEN"), "U2") == [b'* ESEARCH (TAG "U2") UID\r\n']
    lines = a.cmd("T", "STORE 2 +FLAGS (\\Seen \\Flagged)")       # message 2 is UID 3 now
    assert b'* ESEARCH (TAG "U1") ADDTO (0 2)\r\n' in lines
    assert b'* ESEARCH (TAG "U2") UID REMOVEFROM (0 3)\r\n' in lines
    assert a.cmd("X", 'CANCELUPDATE "U1"')[-1].startswith(b"X OK")
    lines = a.cmd("T", "STORE 2 -FLAGS (\\Seen \\Flagged)")
    assert _esearch(lines, "U1") == [] and _esearch(lines, "U2") == [b'* ESEARCH (TAG "U2") UID ADDTO (0 3)\r\n']
    assert a.cmd("X", 'CANCELUPDATE "U1"')[-1].startswith(b"X BAD")      # gone already
    assert a.cmd("X", "CANCELUPDATE")[-1].startswith(b"X BAD")
    # Closing the mailbox ends them all.
    a.cmd("S", "SELECT ctx")
    assert a.cmd("X", 'CANCELUPDATE "U2"')[-1].startswith(b"X BAD")


def test_sort_update_positions(pair):
    a, b = pair
    # SORT (SUBJECT): e(1) d(2) c(3) b(4) a(5); keep those not \Seen.
    lines = a.cmd("S1", "SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 UNSEEN")
    assert _esearch(lines, "S1") == [b'* ESEARCH (TAG "S1") ALL 5,4,3,2,1\r\n']
    # Seen: d (place 4) and b (place 2) drop out, last place first.
    lines = a.cmd("T", "STORE 2,4 +FLAGS (\\Seen)")
    assert _esearch(lines, "S1") == [b'* ESEARCH (TAG "S1") REMOVEFROM (4 2 2 4)\r\n']
    # Back again: each at its place in the new order, first place first.
    lines = a.cmd("T", "STORE 2,4 -FLAGS (\\Seen)")
    assert _esearch(lines, "S1") == [b'* ESEARCH (TAG "S1") ADDTO (2 4 4 2)\r\n']
    # A new message "aa" sorts second; an expunge takes away place 5.
    data = _msg(9, "aa")
    b.cmd("A", b"APPEND ctx {%d+}\r\n" % len(data) + data)
    assert _esearch(a.cmd("N", "NOOP"), "S1") == [b'* ESEARCH (TAG "S1") ADDTO (2 6)\r\n']
    b.cmd("T", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.cmd("E", "EXPUNGE")
    lines = a.cmd("N", "NOOP")
    assert lines.index(b'* ESEARCH (TAG "S1") REMOVEFROM (5 2)\r\n') < lines.index(b"* 2 EXPUNGE\r\n")


def test_min_max_count_updates(pair):
    a, b = pair
    lines = a.cmd("M", "SEARCH RETURN (UPDATE MIN MAX COUNT) UNSEEN")
    assert _esearch(lines, "M") == [b'* ESEARCH (TAG "M") MIN 1 MAX 5 COUNT 5\r\n']
    assert _esearch(a.cmd("T", "STORE 1 +FLAGS (\\Seen)"), "M") == [b'* ESEARCH (TAG "M") MIN 2 MAX 5 COUNT 4\r\n']
    # A change outside the result tells nothing.
    assert _esearch(a.cmd("T", "STORE 1 +FLAGS (\\Flagged)"), "M") == []
    # An expunge of a message outside the result still moves the numbers.
    b.cmd("T", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd("E", "EXPUNGE")
    lines = a.cmd("N", "NOOP")
    assert lines.index(b"* 1 EXPUNGE\r\n") < lines.index(b'* ESEARCH (TAG "M") MIN 1 MAX 4 COUNT 4\r\n')


def test_sequence_number_search_after_expunge(pair):
    a, b = pair
    lines = a.cmd("Q", "SEARCH RETURN (UPDATE ALL) 4:5")
    assert _esearch(lines, "Q") == [b'* ESEARCH (TAG "Q") ALL 4:5\r\n']
    b.cmd("T", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd("E", "EXPUNGE")
    # "4:5" now names what were messages 5 and 6 (there is no 6): the old 4 (now 3) drops out.
    lines = a.cmd("N", "NOOP")
    assert b'* ESEARCH (TAG "Q") REMOVEFROM (0 3)\r\n' in lines


def test_too_many_contexts(pair):
    a, _b = pair
    for n in range(32):
        assert a.cmd(f"K{n}", "SEARCH RETURN (UPDATE) SEEN")[-1].startswith(f"K{n} OK".encode())
    lines = a.cmd("K99", "SEARCH RETURN (UPDATE COUNT) SEEN")
    assert b'* NO [NOUPDATE "K99"] Too many searches kept up to date\r\n' in lines
    assert _esearch(lines, "K99") == [b'* ESEARCH (TAG "K99") COUNT 0\r\n']   # answered all the same
