"""Changes by one session reach the others, at the moments the RFC allows."""
from __future__ import annotations

import asyncio
import imaplib

import aioimaplib

from tests.conftest import RawClient

MSG = b"From: a@example.com\r\nSubject: sync\r\n\r\nhello\r\n"


def login_raw(server, user):
    c = RawClient(server.host, server.port)
    assert c.cmd("l", f"LOGIN {user[0]} {user[1]}")[-1].startswith(b"l OK")
    return c


def test_flags_and_exists_reach_other_session(server, user):
    a, b = login_raw(server, user), login_raw(server, user)
    a.cmd("s", "SELECT INBOX")
    b.cmd("s", "SELECT INBOX")
    b.send(b"x APPEND INBOX {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
    b.read_until_tag("x")
    lines = a.cmd("n", "NOOP")
    assert b"* 1 EXISTS\r\n" in lines
    b.cmd("f", "STORE 1 +FLAGS (\\Flagged)")
    lines = a.cmd("n2", "NOOP")
    assert any(l.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Flagged") for l in lines)
    a.close(), b.close()


def test_no_expunge_during_fetch_store_search(server, user):
    a, b = login_raw(server, user), login_raw(server, user)
    for _ in range(3):
        b.send(b"x APPEND INBOX {%d+}\r\n" % len(MSG) + MSG + b"\r\n")
        b.read_until_tag("x")
    a.cmd("s", "SELECT INBOX")
    b.cmd("s", "SELECT INBOX")
    b.cmd("d", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert b"* 2 EXPUNGE\r\n" in b.cmd("e", "EXPUNGE")
    # a still sees 3 messages: sequence numbers must not shift during these
    for tag, command in (("f", "FETCH 1:3 (UID)"), ("st", "STORE 3 +FLAGS (\\Seen)"), ("se", "SEARCH ALL")):
        lines = a.cmd(tag, command)
        assert not any(b"EXPUNGE" in l for l in lines), lines
        assert lines[-1].startswith(tag.encode() + b" OK")
    # numbers stay put, but a message known to be gone does not match
    assert a.cmd("se2", "SEARCH ALL")[0] == b"* SEARCH 1 3\r\n"
    # the expunged message's data is gone; flags answer from memory
    lines = a.cmd("f2", "FETCH 2 (UID FLAGS)")
    assert lines[0].startswith(b"* 2 FETCH (UID 2 FLAGS") and lines[-1].startswith(b"f2 OK")
    lines = a.cmd("f3", "FETCH 2 (BODY.PEEK[])")
    assert lines[-1].startswith(b"f3 OK [EXPUNGEISSUED]") and len(lines) == 1
    # a UID command may carry the expunge
    lines = a.cmd("u", "UID FETCH 1 (FLAGS)")
    assert b"* 2 EXPUNGE\r\n" in lines
    assert a.cmd("se3", "SEARCH ALL")[0] == b"* SEARCH 1 2\r\n"
    a.close(), b.close()


def test_deleted_mailbox_ends_other_sessions(server, user):
    a, b = login_raw(server, user), login_raw(server, user)
    b.cmd("c", "CREATE Doomed")
    a.cmd("s", "SELECT Doomed")
    assert b.cmd("d", "DELETE Doomed")[-1].startswith(b"d OK")
    lines = []
    a.send("n NOOP\r\n")
    while True:
        line = a.readline()
        if not line:
            break
        lines.append(line)
    assert any(l.startswith(b"* BYE") for l in lines)
    b.close()


def test_aioimaplib_idle_sees_other_session(server, user):
    async def run():
        watcher = aioimaplib.IMAP4(host=server.host, port=server.port, timeout=10)
        await watcher.wait_hello_from_server()
        await watcher.login(*user)
        await watcher.select("INBOX")
        idle = await watcher.idle_start(timeout=10)

        def other():
            c = imaplib.IMAP4(server.host, server.port)
            c.login(*user)
            c.append("INBOX", None, None, MSG)
            c.select("INBOX")
            c.store("1", "+FLAGS", "\\Answered")
            c.logout()

        await asyncio.get_running_loop().run_in_executor(None, other)
        seen = []
        while not any(b"FETCH" in l for l in seen):
            seen += await asyncio.wait_for(watcher.wait_server_push(), 10)
        watcher.idle_done()
        await asyncio.wait_for(idle, 10)
        await watcher.logout()
        return seen

    seen = asyncio.run(run())
    assert b"1 EXISTS" in seen
    assert any(b"\\Answered" in l for l in seen)
