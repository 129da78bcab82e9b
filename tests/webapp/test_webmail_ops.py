"""The mail pages' IMAP side (web/pages/mailops.py, mailbox.page) against a
real Posthouse IMAP server: a sorted page by each of the three ways
(CONTEXT=SORT's PARTIAL, plain SORT, SEARCH + slice) gives the same rows;
flags, move without MOVE, Trash and Archive found or created."""
from __future__ import annotations

import asyncio
import imaplib
from datetime import datetime, timedelta, timezone

from posthouse.imap_client import Endpoint, ImapConnection
from posthouse.imap.protocol.responses import ResponseError, ordered_set
from posthouse.web.pages import mailbox, mailops, search

import pytest


def fill(server, user, count: int) -> None:
    imap = imaplib.IMAP4(server.host, server.port)
    imap.login(*user)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(count):
        body = (f"From: Sender {i} <s{i}@example.org>\r\nSubject: message {i}\r\n"
                f"Message-ID: <m{i}@example.org>\r\n\r\nbody {i}\r\n").encode()
        imap.append("INBOX", "", imaplib.Time2Internaldate(start + timedelta(minutes=i)), body)
    imap.logout()


async def connect(server, user) -> ImapConnection:
    conn = await ImapConnection.open(Endpoint("127.0.0.1", server.port, tls="none", timeout=10))
    await conn.login(*user)
    return conn


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("without", [(), ("CONTEXT=SORT", "ESORT"), ("CONTEXT=SORT", "ESORT", "SORT")])
def test_sorted_page_each_way(server, user, without):
    fill(server, user, 60)

    async def scenario():
        conn = await connect(server, user)
        try:
            assert {"SORT", "CONTEXT=SORT"} <= conn.capabilities     # what Posthouse offers
            conn.capabilities = frozenset(conn.capabilities - set(without))
            rows, total = await mailbox.page(conn, "INBOX", 1)
            assert total == 60 and [r.subject for r in rows] == [f"message {i}" for i in range(59, 9, -1)]
            rows, total = await mailbox.page(conn, "INBOX", 2)
            assert [r.subject for r in rows] == [f"message {i}" for i in range(9, -1, -1)]
            assert (await mailbox.page(conn, "INBOX", 3)) == ([], 60)
            # A search, sorted and paged the same way.
            rows, total = await mailbox.page(conn, "INBOX", 1, search.criteria({"from": "s1"}))
            assert total == 11 and rows[0].subject == "message 19" and rows[-1].subject == "message 1"
        finally:
            await conn.logout()
    run(scenario())


def test_ordered_set_keeps_order_and_refuses_garbage():
    assert ordered_set("9,7:5,1:2") == [9, 7, 6, 5, 1, 2]
    for bad in ("", "1:", "a", "1:2:3", "1,,2", "1:99999999999"):
        with pytest.raises(ResponseError):
            ordered_set(bad)


def test_flags_and_move_without_move_extension(server, user):
    fill(server, user, 3)

    async def scenario():
        conn = await connect(server, user)
        try:
            await conn.select("INBOX", readonly=False)
            uids = await mailops.search(conn, [b"ALL"])
            await mailops.store(conn, uids[:1], "+FLAGS", ("\\Flagged",))
            assert await mailops.search(conn, [b"FLAGGED"]) == uids[:1]
            await mailops.store(conn, uids[:1], "-FLAGS", ("\\Flagged",))
            assert await mailops.search(conn, [b"FLAGGED"]) == []
            trash = await mailops.special_folder(conn, "\\Trash", fallback="Trash", create=False)
            assert trash == "Trash"
            conn.capabilities = frozenset(conn.capabilities - {"MOVE"})     # COPY + \Deleted + UID EXPUNGE
            await mailops.move(conn, uids[:1], trash)
            assert await mailops.search(conn, [b"ALL"]) == uids[1:]
            archive = await mailops.special_folder(conn, "\\Archive", fallback="Archive", create=True)
            folders = {f.name: f for f in await conn.list_folders()}
            assert archive in folders
            assert await mailops.special_folder(conn, "\\Archive", fallback="Archive", create=True) == archive
            status = await conn.status(trash, ("MESSAGES",))
            assert status["MESSAGES"] == 1
        finally:
            await conn.logout()
    run(scenario())


def test_conversation_search_bounded_by_time(server, user):
    from posthouse.web.pages import conversation
    fill(server, user, 3)
    raw = b"Message-ID: <m9@example.org>\r\nReferences: <m1@example.org>\r\n\r\nbody\r\n"

    async def scenario():
        conn = await connect(server, user)
        try:
            thread = await conversation.gather(conn, raw, ["INBOX", "Sent"])
            assert [t.subject for t in thread.items] == ["message 1"] and thread.skipped == []
            cut = await conversation.gather(conn, raw, ["INBOX", "Sent"], budget=0)
            assert cut.items == [] and cut.skipped == ["INBOX", "Sent"]
            assert conn.broken      # cut off mid-command: never lent again by the pool
        finally:
            await conn.logout()
    run(scenario())


def test_esort_partial_window_parsed_in_order():
    from posthouse.imap.protocol.responses import ESearch, ResponseReader

    def one(data: bytes):
        reader = ResponseReader()
        reader.feed(data)
        return reader.next_response()
    e = one(b'* ESEARCH (TAG "P3") UID COUNT 120 PARTIAL (1:4 120,118:117,3)\r\n')
    assert isinstance(e, ESearch) and e.count == 120 and e.partial == [120, 118, 117, 3]
    assert one(b'* ESEARCH (TAG "P4") UID COUNT 2 PARTIAL (51:100 NIL)\r\n').partial == []
    assert one(b'* ESEARCH (TAG "P5") UID COUNT 2\r\n').partial is None
    with pytest.raises(ResponseError):
        one(b'* ESEARCH (TAG "P6") UID PARTIAL (1:4 x,y)\r\n')
