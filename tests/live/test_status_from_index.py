"""STATUS of a mailbox the server holds open (selected by a session, or kept
loaded by the registry) is answered from its index, not by the store counting
every message row; the counts must stay what the store says after every kind
of change (APPEND, STORE, EXPUNGE, MOVE, COPY), on both stores."""
from __future__ import annotations

import imaplib
import re

import pytest

from tests.conftest import RunningServer, postgres_database

ITEMS = ("MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_server(request, tmp_path):
    overrides = {"database_url": postgres_database()} if request.param == "postgresql" else {}
    srv = RunningServer(str(tmp_path / "data"), **overrides)
    yield srv
    srv.stop()


def login(srv, user) -> imaplib.IMAP4:
    c = imaplib.IMAP4(srv.host, srv.port)
    c.login(*user)
    return c


def status(c: imaplib.IMAP4, box: str) -> dict:
    typ, data = c.status(box, f"({' '.join(ITEMS)})")
    assert typ == "OK", data
    return {k: int(v) for k, v in re.findall(rb"([A-Z]+) (\d+)", data[0])}


def store_counts(srv, user_name: str, box: str) -> dict:
    async def read():
        user_id = (await srv.ctx.service.call("get_user", user_name)).id
        info = await srv.ctx.service.call("get_mailbox", user_id, box)
        return await srv.ctx.service.call("mailbox_counts", info.id)
    counts = srv.call(read())
    return {k.encode(): counts[k] for k in ITEMS}


def counting_store_calls(srv) -> list[str]:
    """The store methods called from now on (a spy: every call still runs)."""
    calls: list[str] = []
    real = srv.ctx.service.call

    async def spy(method, *args):
        calls.append(method)
        return await real(method, *args)
    srv.ctx.service.call = spy
    return calls


def append(c, box, subject, flags=""):
    msg = f"From: a@example.com\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    typ, data = c.append(box, flags, None, msg)
    assert typ == "OK", data


def test_status_of_an_open_mailbox_reads_no_message_rows_and_agrees_with_the_store(store_server):
    srv = store_server
    user = srv.add_user()
    holder, other = login(srv, user), login(srv, user)
    try:
        assert other.create("Kept")[0] == "OK"
        for i in range(6):
            append(other, "INBOX", f"m{i}", "(\\Seen)" if i % 2 else "")
        assert holder.select("INBOX")[0] == "OK"     # INBOX now open in the registry
        assert holder.select("Kept")[0] == "OK"   # ... and Kept (INBOX kept loaded)
        calls = counting_store_calls(srv)

        def agree():
            for box in ("INBOX", "Kept"):
                assert status(other, box) == store_counts(srv, user[0], box)

        agree()
        calls.clear()
        status(other, "INBOX")
        assert "mailbox_counts" not in calls     # answered from the open index

        append(other, "INBOX", "new unseen")
        agree()
        assert other.select("INBOX")[0] == "OK"
        assert other.store("1", "+FLAGS", "(\\Seen)")[0] == "OK"
        agree()
        assert other.store("2", "-FLAGS", "(\\Seen)")[0] == "OK"
        agree()
        assert other.store("3", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert other.expunge()[0] == "OK"
        agree()
        assert other._simple_command("MOVE", "1:2", "Kept")[0] == "OK"
        agree()
        assert other.copy("1", "Kept")[0] == "OK"
        agree()
        assert other.close()[0] == "OK"
        agree()
    finally:
        for c in (holder, other):
            try:
                c.logout()
            except Exception:
                pass


def test_status_of_a_mailbox_nobody_holds_asks_the_store(store_server):
    srv = store_server
    user = srv.add_user()
    c = login(srv, user)
    try:
        assert c.create("Cold")[0] == "OK"
        append(c, "Cold", "one")
        append(c, "Cold", "two", "(\\Seen)")
        calls = counting_store_calls(srv)
        got = status(c, "Cold")
        assert "mailbox_counts" in calls
        assert got[b"MESSAGES"] == 2 and got[b"UNSEEN"] == 1
        # Items the index doesn't keep (SIZE, RECENT, DELETED) come from the store even when open.
        assert c.select("Cold")[0] == "OK"
        calls.clear()
        typ, data = c.status("Cold", "(MESSAGES SIZE DELETED)")
        assert typ == "OK" and b"MESSAGES 2" in data[0] and "mailbox_counts" in calls
    finally:
        c.logout()
