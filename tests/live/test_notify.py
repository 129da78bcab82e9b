"""NOTIFY (RFC 5465) on a live server: news of other mailboxes as STATUS, of
names and subscriptions as LIST, during IDLE and between commands."""
from __future__ import annotations

import re
import pytest

from tests.conftest import RawClient


def _append(c, mailbox: str, text: str = "Subject: n\r\n\r\nnew\r\n", flags: str = "") -> None:
    data = text.encode()
    assert c.cmd("A", f"APPEND {mailbox} {flags}".encode() + b"{%d+}\r\n" % len(data) + data)[-1].startswith(b"A OK")


@pytest.fixture
def pair(raw_pair):
    return raw_pair


def _lines_until(c: RawClient, pattern: bytes, limit: int = 20) -> list[bytes]:
    lines = []
    for _ in range(limit):
        lines.append(c.readline())
        if re.search(pattern, lines[-1]):
            return lines
    raise AssertionError(lines)


def test_status_of_other_mailboxes(pair):
    a, b = pair
    a.cmd("C", "CREATE news")
    a.cmd("C", "CREATE quiet")
    _append(a, "news")
    lines = a.cmd("N", "NOTIFY SET STATUS (SELECTED (MessageNew MessageExpunge)) "
                       "(MAILBOXES (news quiet) (MessageNew MessageExpunge FlagChange))")
    assert re.search(rb"^\* STATUS news \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ HIGHESTMODSEQ \d+\)", b"".join(lines),
                     re.M)
    assert lines[-1].startswith(b"N OK")
    # Without STATUS, nothing at once.
    lines = a.cmd("N", "NOTIFY SET (MAILBOXES news (MessageNew MessageExpunge))")
    assert not any(line.startswith(b"* STATUS") for line in lines)

    # Between commands: another session's delivery comes to us unasked.
    _append(b, "news")
    line = _lines_until(a, rb"^\* STATUS")[-1]
    assert re.match(rb"\* STATUS news \(MESSAGES 2 UIDNEXT 3 UIDVALIDITY \d+\)\r\n", line)
    # Flag changes weren't asked for this time.
    b.cmd("S", "SELECT news")
    b.cmd("T", "STORE 1 +FLAGS (\\Seen)")
    assert not any(line.startswith(b"* STATUS") for line in a.cmd("N", "NOOP"))
    b.cmd("T", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd("E", "EXPUNGE")
    line = _lines_until(a, rb"^\* STATUS")[-1]
    assert line.startswith(b"* STATUS news (MESSAGES 1 ")

    # The selected mailbox gets the usual responses, never STATUS.
    a.cmd("S", "SELECT news")
    _append(b, "news")
    lines = a.cmd("N", "NOOP")
    assert b"* 2 EXISTS\r\n" in lines and not any(line.startswith(b"* STATUS") for line in lines)

    # NOTIFY NONE: quiet again.
    a.cmd("N", "NOTIFY NONE")
    a.cmd("U", "UNSELECT")
    _append(b, "news")
    assert not any(line.startswith(b"* STATUS") for line in a.cmd("N", "NOOP"))


def test_news_during_idle_and_new_message_fetch(pair):
    a, b = pair
    a.cmd("C", "CREATE other")
    a.cmd("S", "SELECT INBOX")
    a.cmd("N", "NOTIFY SET (SELECTED (MessageNew (UID BODY[HEADER.FIELDS (SUBJECT)]) MessageExpunge)) "
               "(PERSONAL (MessageNew MessageExpunge MailboxName SubscriptionChange))")
    a.send("I IDLE\r\n")
    assert a.readline().startswith(b"+")
    _append(b, "other")
    assert re.match(rb"\* STATUS other \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+\)", _lines_until(a, rb"STATUS")[-1])
    _append(b, "INBOX", "Subject: hello there\r\n\r\nbody\r\n")
    lines = _lines_until(a, rb"FETCH")
    assert b"* 1 EXISTS\r\n" in lines
    fetch = lines[-1] + a.readline() + a.readline()
    assert fetch.startswith(b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (SUBJECT)] {")
    assert b"Subject: hello there" in fetch
    # The fetch doesn't mark the message read.
    b.cmd("C", "CREATE made")
    assert _lines_until(a, rb"LIST")[-1] == b'* LIST () "/" made\r\n'
    b.cmd("R", "RENAME made remade")
    assert _lines_until(a, rb"LIST")[-1] == b'* LIST () "/" remade ("OLDNAME" (made))\r\n'
    b.cmd("R", "SUBSCRIBE remade")
    assert _lines_until(a, rb"LIST")[-1] == b'* LIST (\\Subscribed) "/" remade\r\n'
    b.cmd("R", "DELETE remade")
    assert _lines_until(a, rb"LIST")[-1] == b'* LIST (\\NonExistent) "/" remade\r\n'
    # A mailbox made after NOTIFY SET is followed too (PERSONAL covers it).
    b.cmd("C", "CREATE later")
    _lines_until(a, rb"LIST")
    _append(b, "later")
    assert _lines_until(a, rb"STATUS")[-1].startswith(b"* STATUS later (MESSAGES 1 ")
    a.send("DONE\r\n")
    assert a.read_until_tag("I")[-1].startswith(b"I OK")
    assert b"\\Seen" not in b"".join(a.cmd("F", "FETCH 1 FLAGS"))


def test_own_changes_are_not_echoed(pair):
    a, _b = pair
    a.cmd("N", "NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))")
    lines = a.cmd("C", "CREATE mine")
    assert not any(line.startswith(b"* LIST") for line in lines)


def test_notify_errors(pair):
    a, _b = pair
    for bad in ("", "BOGUS", "SET", "SET STATUS", "SET (PERSONAL)", "SET (NOWHERE (MessageNew MessageExpunge))",
                "SET (PERSONAL (MessageNew))", "SET (PERSONAL (FlagChange))",
                "SET (PERSONAL (MessageNew (UID) MessageExpunge))",      # fetch-att: selected only
                "SET (PERSONAL (Bogus))", "SET (PERSONAL ())", "SET (MAILBOXES (MessageNew MessageExpunge))",
                "SET (PERSONAL (MailboxName MailboxName))", "NONE extra"):
        assert a.cmd("N", f"NOTIFY {bad}")[-1].startswith(b"N BAD"), bad
    lines = a.cmd("N", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))")
    assert lines[-1].startswith(b"N NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]")
    # Unknown mailboxes in a filter are fine: they are followed once they exist.
    assert a.cmd("N", "NOTIFY SET STATUS (MAILBOXES nosuch (MessageNew MessageExpunge))")[-1].startswith(b"N OK")


def test_overflow_turns_notify_off():
    """Past MAX_PENDING waiting notifications (a client that never lets a command
    end), the session is told NOTIFICATIONOVERFLOW and NOTIFY is off."""
    from types import SimpleNamespace

    from posthouse.imap.notifier import MAX_PENDING, EventGroup, Notifier
    from posthouse.store.api import MailboxListChanged
    from posthouse.store.service import ChangeHub

    hub = ChangeHub()
    session = SimpleNamespace(user=SimpleNamespace(id=7), ctx=SimpleNamespace(service=SimpleNamespace(hub=hub)),
                              busy=True, idle_kick=None, pending_overflow=False, view=None,
                              wire_name=lambda name: name.encode())
    note = Notifier(session, [EventGroup("PERSONAL", [], {"MAILBOXNAME"})])
    session.notifier = note
    hub.follow(note.user_key, note._on_user_event)
    note._soon = lambda coro: coro.close()      # no mailbox list to read here
    for n in range(MAX_PENDING):
        hub.publish([MailboxListChanged(7, "created", f"m{n}")])
    assert len(note.pending_lines) == MAX_PENDING and session.notifier is note
    hub.publish([MailboxListChanged(7, "created", "one-too-many")])
    assert session.notifier is None and session.pending_overflow and note.stopped
    assert note.pending_lines == []
    hub.publish([MailboxListChanged(7, "created", "after")])     # followed no more
    assert note.pending_lines == []
