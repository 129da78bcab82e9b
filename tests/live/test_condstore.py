"""CONDSTORE and QRESYNC (RFC 7162) on a live server, byte for byte."""
from __future__ import annotations

import re

import pytest

from tests.conftest import RawClient


def _msg(n: int) -> bytes:
    return f"From: a@example.com\r\nSubject: m{n}\r\n\r\nbody {n}\r\n".encode()


def _fill(c: RawClient, mailbox: str, count: int) -> None:
    assert c.cmd("C", f"CREATE {mailbox}")[-1].startswith(b"C OK")
    for n in range(count):
        data = _msg(n)
        assert c.cmd("A", b"APPEND %s {%d+}\r\n" % (mailbox.encode(), len(data)) + data)[-1].startswith(b"A OK")


def _one(lines, pattern: bytes) -> re.Match:
    found = [m for m in (re.search(pattern, line) for line in lines) if m]
    assert len(found) == 1, (pattern, lines)
    return found[0]


def _modseq(lines, uid: int) -> int:
    return int(_one(lines, rb"UID %d .*MODSEQ \((\d+)\)" % uid).group(1))


def _changes_waited_for(server, monkeypatch) -> list[str]:
    """The store changes the server waits for from now on, by method name."""
    asked = []
    real_change = server.ctx.service.change

    async def counting(method, *args):
        asked.append(method)
        return await real_change(method, *args)
    monkeypatch.setattr(server.ctx.service, "change", counting)
    return asked


@pytest.fixture
def pair(raw_pair):
    return raw_pair


def test_condstore_select_fetch_store(pair):
    a, b = pair
    _fill(a, "cs", 3)
    plain = a.cmd("S", "SELECT cs")
    assert not any(b"HIGHESTMODSEQ" in line for line in plain)      # not enabled yet
    lines = a.cmd("S", "SELECT cs (CONDSTORE)")
    highest = int(_one(lines, rb"^\* OK \[HIGHESTMODSEQ (\d+)\]").group(1))
    assert lines[-1].startswith(b"S OK [READ-WRITE]")

    lines = a.cmd("F", "FETCH 1:* (UID MODSEQ)")
    seqs = [_modseq(lines, uid) for uid in (1, 2, 3)]
    assert max(seqs) == highest

    # A STORE gives a MODSEQ above everything before it, and reports it with the UID.
    lines = a.cmd("T", "STORE 2 +FLAGS (\\Seen)")
    new = _modseq(lines, 2)
    assert new > highest
    assert b"FLAGS (\\Seen)" in _one(lines, rb"^\* 2 FETCH").string

    # CHANGEDSINCE returns only what changed, with MODSEQ added unasked.
    lines = a.cmd("F", f"FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})")
    fetches = [line for line in lines if line.startswith(b"* ") and b" FETCH " in line]
    assert len(fetches) == 1 and fetches[0].startswith(b"* 2 FETCH") and b"MODSEQ (%d)" % new in fetches[0]
    assert [line for line in a.cmd("F", f"UID FETCH 1:* FLAGS (CHANGEDSINCE {new})") if b"FETCH (" in line] == []

    # UNCHANGEDSINCE: message 2 changed after `highest`, so it is refused and named by
    # its sequence number (STORE) or UID (UID STORE); the others change.
    lines = a.cmd("T", f"STORE 1:3 (UNCHANGEDSINCE {highest}) +FLAGS (\\Flagged)")
    assert lines[-1].startswith(b"T OK [MODIFIED 2]")
    assert not any(line.startswith(b"* 2 FETCH") for line in lines)
    assert b"\\Flagged" in _one(lines, rb"^\* 1 FETCH").string
    lines = a.cmd("U", f"UID STORE 2 (UNCHANGEDSINCE {highest}) -FLAGS (\\Seen)")
    assert lines[-1].startswith(b"U OK [MODIFIED 2]")
    assert a.cmd("U", "UID STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")[-1].startswith(b"U OK [MODIFIED 1]")

    # .SILENT still tells the new MODSEQ, and nothing else.
    before = _modseq(a.cmd("F", "FETCH 3 (UID MODSEQ)"), 3)
    lines = a.cmd("T", "STORE 3 +FLAGS.SILENT (\\Answered)")
    line = _one(lines, rb"^\* 3 FETCH").string
    assert b"FLAGS" not in line and _modseq(lines, 3) > before
    # A STORE that changes nothing gives no new MODSEQ.
    same = _modseq(a.cmd("T", "STORE 3 +FLAGS (\\Answered)"), 3)
    assert same == _modseq(lines, 3)

    # Another session's change reaches us with UID and MODSEQ.
    b.cmd("S", "SELECT cs")
    b.cmd("T", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    lines = a.cmd("N", "NOOP")
    assert re.search(rb"^\* 1 FETCH \(UID 1 FLAGS \([^)]*\\Deleted[^)]*\) MODSEQ \(\d+\)\)", _one(lines, rb"^\* 1 FETCH").string)

    # EXPUNGE ends with the mailbox's new HIGHESTMODSEQ.
    lines = a.cmd("E", "EXPUNGE")
    expunged_at = int(_one(lines, rb"^E OK \[HIGHESTMODSEQ (\d+)\]").group(1))
    assert b"* 1 EXPUNGE\r\n" in lines
    status = b.cmd("X", "STATUS cs (HIGHESTMODSEQ MESSAGES)")
    assert int(_one(status, rb"STATUS cs \(HIGHESTMODSEQ (\d+)").group(1)) == expunged_at


def test_condstore_enabling_commands_announce_highestmodseq(pair):
    a, _b = pair
    _fill(a, "en", 2)
    a.cmd("S", "SELECT en")
    # The first enabling command with a mailbox selected says HIGHESTMODSEQ; later ones don't.
    lines = a.cmd("F", "FETCH 1 MODSEQ")
    _one(lines, rb"^\* OK \[HIGHESTMODSEQ \d+\]")
    assert not any(b"HIGHESTMODSEQ" in line for line in a.cmd("F", "FETCH 1 MODSEQ"))


def test_search_modseq(pair):
    a, _b = pair
    _fill(a, "sm", 4)
    a.cmd("S", "SELECT sm (CONDSTORE)")
    marks = {}
    for seq in (1, 3, 2):
        marks[seq] = _modseq(a.cmd("T", f"STORE {seq} +FLAGS (\\Seen)"), seq)
    lines = a.cmd("R", f'SEARCH MODSEQ "/flags/\\\\seen" all {marks[3]}')
    assert b"* SEARCH 2 3 (MODSEQ %d)\r\n" % marks[2] in lines
    lines = a.cmd("R", f"UID SEARCH MODSEQ {marks[2] + 1}")
    assert b"* SEARCH\r\n" in lines                               # none: no MODSEQ either
    lines = a.cmd("R", f"SEARCH RETURN (MIN COUNT) MODSEQ {marks[1]}")
    assert b'* ESEARCH (TAG "R") MIN 1 COUNT 3 MODSEQ %d\r\n' % marks[2] in lines
    lines = a.cmd("R", f"SEARCH RETURN (MIN) MODSEQ {marks[1]}")
    assert b'* ESEARCH (TAG "R") MIN 1 MODSEQ %d\r\n' % marks[1] in lines
    lines = a.cmd("R", f"SORT (REVERSE ARRIVAL) UTF-8 MODSEQ {marks[1]}")
    assert b"* SORT 3 2 1 (MODSEQ %d)\r\n" % marks[2] in lines
    for bad in ('MODSEQ "/flags/\\\\seen" bogus 1', 'MODSEQ "/other" all 1', "MODSEQ x", "MODSEQ",
                "MODSEQ 99999999999999999999"):
        assert a.cmd("R", "SEARCH " + bad)[-1].startswith(b"R BAD"), bad


def _qresync_selected(c: RawClient, mailbox: str, count: int) -> tuple[int, int]:
    """A new mailbox of count messages, QRESYNC enabled, selected: its (UIDVALIDITY, HIGHESTMODSEQ)."""
    _fill(c, mailbox, count)
    assert b"* ENABLED QRESYNC\r\n" in c.cmd("N", "ENABLE QRESYNC")
    lines = c.cmd("S", f"SELECT {mailbox}")
    return int(_one(lines, rb"UIDVALIDITY (\d+)").group(1)), int(_one(lines, rb"HIGHESTMODSEQ (\d+)").group(1))


def test_qresync_vanished_and_select(pair):
    a, b = pair
    uidvalidity, base = _qresync_selected(a, "qr", 6)

    # Expunges from elsewhere arrive as VANISHED, by UID.
    b.cmd("S", "SELECT qr")
    b.cmd("T", "STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    b.cmd("E", "EXPUNGE")
    b.cmd("T", "UID STORE 5 +FLAGS.SILENT (\\Flagged)")
    lines = a.cmd("N", "NOOP")
    assert b"* VANISHED 2,4\r\n" in lines
    assert not any(b"EXPUNGE" in line for line in lines)
    assert _one(lines, rb"^\* 3 FETCH \(UID 5 ")

    # A client back after being away: one SELECT tells it everything.
    a.cmd("U", "UNSELECT")
    b.cmd("T", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd("E", "EXPUNGE")
    lines = a.cmd("S", f"SELECT qr (QRESYNC ({uidvalidity} {base}))")
    assert b"* VANISHED (EARLIER) 1:2,4\r\n" in lines
    fetches = [line for line in lines if line.startswith(b"* ") and b" FETCH " in line]
    assert len(fetches) == 1 and fetches[0].startswith(b"* 2 FETCH (UID 5 FLAGS (\\Flagged) MODSEQ (")
    assert not any(b"CLOSED" in line for line in lines)       # nothing was selected
    # Switching mailboxes says CLOSED first. Known UIDs narrow both answers; the sequence match data is checked for form.
    lines = a.cmd("S", f"SELECT qr (QRESYNC ({uidvalidity} {base} 3:4 (1:2 3:4)))")
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed.\r\n"
    assert b"* VANISHED (EARLIER) 4\r\n" in lines
    assert not any(line.startswith(b"* ") and b" FETCH " in line for line in lines)
    # A UIDVALIDITY that changed makes the client start over: nothing is claimed.
    lines = a.cmd("S", f"SELECT qr (QRESYNC ({uidvalidity + 1} {base}))")
    assert not any(b"VANISHED" in line or (line.startswith(b"* ") and b" FETCH " in line) for line in lines)
    assert lines[-1].startswith(b"S OK")

    # UID FETCH ... (CHANGEDSINCE n VANISHED) answers the same within its UID set.
    lines = a.cmd("F", f"UID FETCH 1:* FLAGS (CHANGEDSINCE {base} VANISHED)")
    assert b"* VANISHED (EARLIER) 1:2,4\r\n" in lines
    assert [line for line in lines if line.startswith(b"* ") and b" FETCH " in line][0].startswith(b"* 2 FETCH (UID 5 FLAGS")
    lines = a.cmd("F", f"UID FETCH 3:4 FLAGS (CHANGEDSINCE {base} VANISHED)")
    assert b"* VANISHED (EARLIER) 4\r\n" in lines


def test_qresync_errors(pair):
    a, _b = pair
    _fill(a, "qe", 2)
    # QRESYNC's SELECT parameter and FETCH's VANISHED need ENABLE QRESYNC first.
    assert a.cmd("S", "SELECT qe (QRESYNC (1 1))")[-1].startswith(b"S BAD")
    a.cmd("S", "SELECT qe")
    assert a.cmd("F", "UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)")[-1].startswith(b"F BAD")
    a.cmd("N", "ENABLE QRESYNC")
    for bad in ("FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)",         # not UID FETCH
                "UID FETCH 1:* FLAGS (VANISHED)",                      # no CHANGEDSINCE
                "UID FETCH 1:* FLAGS (CHANGEDSINCE x)",
                "UID FETCH 1:* FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)",
                "UID FETCH 1:* FLAGS (BOGUS)",
                "STORE 1 (UNCHANGEDSINCE -1) +FLAGS (\\Seen)",
                "STORE 1 (UNCHANGEDSINCE 99999999999999999999) +FLAGS (\\Seen)"):
        assert a.cmd("F", bad)[-1].startswith(b"F BAD"), bad
    for bad in ("(QRESYNC)", "(QRESYNC (1))", "(QRESYNC (0 1))", "(QRESYNC (1 0))", "(QRESYNC (1 1 x))",
                "(QRESYNC (1 1 1:2 (1 1:2)))", "(QRESYNC (1 1 1:2 (1:2 3:4) 5))", "(BOGUS)",
                "(CONDSTORE CONDSTORE)"):
        assert a.cmd("S", "SELECT qe " + bad)[-1].startswith(b"S BAD"), bad
    # Still a working session.
    assert a.cmd("S", "EXAMINE qe (CONDSTORE)")[-1].startswith(b"S OK [READ-ONLY]")
    assert a.cmd("F", "FETCH 1 (MODSEQ)")[-1].startswith(b"F OK")


def test_imapclient_condstore(server, user):
    imapclient = pytest.importorskip("imapclient")
    with imapclient.IMAPClient(server.host, port=server.port, ssl=False) as c:
        c.login(*user)
        c.create_folder("icl")
        for n in range(3):
            c.append("icl", _msg(n))
        c.enable("CONDSTORE")
        info = c.select_folder("icl")
        highest = c.folder_status("icl", [b"HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"]
        c.add_flags([2], [b"\\Seen"])
        changed = c.fetch([1, 2, 3], ["FLAGS"], modifiers=[f"CHANGEDSINCE {highest}"])
        assert list(changed) == [2]
        assert changed[2][b"MODSEQ"][0] > highest
        assert b"\\Seen" in changed[2][b"FLAGS"]
        assert info[b"UIDVALIDITY"]


def test_a_store_that_changes_nothing_is_answered_from_the_index(server, pair, monkeypatch):
    a, b = pair
    _fill(a, "same", 2)
    a.cmd("S", "SELECT same (CONDSTORE)")
    b.cmd("S", "SELECT same")
    lines = a.cmd("T", "STORE 1:2 +FLAGS (\\Seen $Label)")
    first = _modseq(lines, 1)
    b.cmd("N", "NOOP")
    asked = _changes_waited_for(server, monkeypatch)

    # Already so (a keyword in another case is the same keyword): the store is not asked.
    for command in ("STORE 1 +FLAGS (\\Seen $label)", "STORE 1 -FLAGS (\\Draft)", "STORE 1 FLAGS (\\Seen $LABEL)"):
        lines = a.cmd("T", command)
        assert lines[-1].startswith(b"T OK"), lines
        assert re.search(rb"^\* 1 FETCH \(UID 1 FLAGS \(\$Label \\Seen \\Recent\) MODSEQ \(%d\)\)" % first,
                         _one(lines, rb"^\* 1 FETCH").string)
    assert asked == []
    assert b.cmd("N", "NOOP") == [b"N OK NOOP completed\r\n"]     # nobody hears of a change

    # One message of two would change: the store is asked, and only that one moves.
    a.cmd("T", "STORE 2 -FLAGS.SILENT ($Label)")
    asked.clear()
    lines = a.cmd("T", "STORE 1:2 +FLAGS ($Label)")
    assert asked == ["store_flags"]
    assert _modseq(lines, 1) == first and _modseq(lines, 2) > first
    # UNCHANGEDSINCE always goes to the store, which judges the MODSEQ.
    asked.clear()
    assert a.cmd("U", "STORE 1 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)")[-1].startswith(b"U OK [MODIFIED 1]")
    assert asked == ["store_flags"]


def test_a_store_answered_before_its_commit_is_seen_in_order(server, pair, monkeypatch):
    """A session without CONDSTORE is answered from the index while its STORE
    goes on to the store (imap/write_behind.py). Its next commands, sent in
    the same packet, see the change (EXPUNGE, STATUS, COPY read the store);
    another session hears of it by its next command, with the new MODSEQ."""
    a, b = pair
    _fill(a, "wb", 4)
    _fill(a, "wbcopy", 0)
    b.cmd("S", "SELECT wb (CONDSTORE)")
    before = _modseq(b.cmd("F", "FETCH 2 (UID MODSEQ)"), 2)
    a.cmd("S", "SELECT wb")
    waited = _changes_waited_for(server, monkeypatch)

    a.send(b"T1 STORE 1 +FLAGS (\\Deleted)\r\nT2 STORE 2 +FLAGS (\\Seen $Done)\r\n"
           b"X EXPUNGE\r\nS STATUS wb (MESSAGES UNSEEN)\r\nC COPY 1 wbcopy\r\n")
    lines = a.read_until_tag("C")
    assert b"* 1 FETCH (FLAGS (\\Deleted))\r\n" in lines      # (b had them \\Recent)
    assert b"* 2 FETCH (FLAGS ($Done \\Seen))\r\n" in lines
    assert b"* 1 EXPUNGE\r\n" in lines and b"X OK" in lines[lines.index(b"* 1 EXPUNGE\r\n") + 1]
    assert b"* STATUS wb (MESSAGES 3 UNSEEN 2)\r\n" in lines
    assert "store_flags" not in waited          # the STOREs were not waited for
    # The copy of (new) message 1, once message 2, has the flags that STORE gave it.
    a.cmd("S", "SELECT wbcopy")
    assert b"FLAGS ($Done \\Seen" in _one(a.cmd("F", "FETCH 1 FLAGS"), rb"^\* 1 FETCH").string

    lines = b.cmd("N", "NOOP")
    assert b"* 1 EXPUNGE\r\n" in lines
    fetch = _one(lines, rb"^\* 1 FETCH").string         # the old message 2, now 1
    assert b"$Done" in fetch and b"\\Seen" in fetch and _modseq(lines, 2) > before


def test_qresync_from_before_the_kept_expunge_history_names_every_missing_uid(tmp_path):
    """Expunge history is kept to a bound; a client back from before what is
    kept is told every UID the mailbox lacks (within the UIDs it knows), as a
    server that keeps no history does. Within the kept history: exactly."""
    import time
    from tests.conftest import RunningServer, raw_login
    srv = RunningServer(str(tmp_path), store_process=False)
    a = b = None
    try:
        store = srv.ctx.service.store
        store.EXPUNGE_HISTORY_MAX, store.EXPUNGE_HISTORY_KEEP, store.EXPUNGE_CHECK_EVERY = 6, 3, 1
        user = srv.add_user("q")
        a, b = raw_login(srv, user), raw_login(srv, user)
        uidvalidity, base = _qresync_selected(a, "qr", 20)
        a.cmd("U", "UNSELECT")
        b.cmd("S", "SELECT qr")
        for uid in range(1, 13):           # twelve expunges, one MODSEQ each
            b.cmd("X", f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
            assert b.cmd("E", f"UID EXPUNGE {uid}")[-1].startswith(b"E OK")
        user_id = srv.call(srv.ctx.service.call("get_user", "q")).id
        box = srv.call(srv.ctx.service.call("get_mailbox", user_id, "qr"))
        deadline = time.monotonic() + 10
        while srv.call(srv.ctx.service.call("vanished_since", box.id, base)) is not None:
            assert time.monotonic() < deadline, "the history was never trimmed"
            time.sleep(0.05)
        lines = a.cmd("S", f"SELECT qr (QRESYNC ({uidvalidity} {base}))")
        assert b"* VANISHED (EARLIER) 1:12\r\n" in lines
        lines = a.cmd("S", f"SELECT qr (QRESYNC ({uidvalidity} {base} 5:15,19))")
        assert b"* VANISHED (EARLIER) 5:12\r\n" in lines
        lines = a.cmd("F", f"UID FETCH 1:* FLAGS (CHANGEDSINCE {base} VANISHED)")
        assert b"* VANISHED (EARLIER) 1:12\r\n" in lines
        # From within the kept history the answer is exact.
        recent = int(_one(a.cmd("S", "STATUS qr (HIGHESTMODSEQ)"), rb"STATUS qr \(HIGHESTMODSEQ (\d+)").group(1))
        lines = a.cmd("F", f"UID FETCH 1:* FLAGS (CHANGEDSINCE {recent - 1} VANISHED)")
        assert b"* VANISHED (EARLIER) 12\r\n" in lines
    finally:
        for c in (a, b):
            if c is not None:
                c.close()
        srv.stop()
