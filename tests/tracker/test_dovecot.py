"""The tracker following a Dovecot mailbox (Debian's package, on loopback):
IDLE push, QRESYNC / CONDSTORE / UID-diff resync, a UIDVALIDITY change,
moves, deletes, flags, renames, a server restart."""
import asyncio

import pytest

from posthouse.tracker.facts import FolderRenamed, FolderReset, MessageChanged, MessageSeen

from .helpers import Account, Proxy, RecordingSink, Store, append, imap_client, make_db, message, wait_until
from .test_posthouse import run, tracking


@pytest.mark.parametrize("without", [(), ("NOTIFY",), ("NOTIFY", "QRESYNC"), ("NOTIFY", "QRESYNC", "CONDSTORE")],
                         ids=["qresync-notify", "qresync-idle", "condstore-idle", "uid-diff-idle"])
def test_initial_and_incremental(dovecot, tmp_path, without):
    login, password = dovecot.user()
    c = imap_client(dovecot.host, dovecot.port, login, password)
    c.create("Sent")
    c.create("Work")
    for i in range(12):
        append(c, "INBOX", message(i, "dv", attachment=(i == 3)))
    append(c, "Sent", message(0, "dvsent"))

    async def go():
        engine = make_db(tmp_path)
        store = Store(engine)
        store.drop_caps = set(without)
        store.add(Account(1, login, password, dovecot.host, dovecot.port))
        async with tracking(tmp_path, None, None, None, None, engine=engine, store=store,
                            sweep_interval=0.3, idle_renew=5, batch_size=5) as (tracker, sink, _s, _e):
            await wait_until(lambda: len(sink.live()) == 13, what="initial sync")
            assert sink.live_ids("Sent") == {"dvsent0@example.org"}
            # New mail (IDLE), a flag, a delete, a move.
            await asyncio.to_thread(append, c, "INBOX", message(20, "dv"))
            await wait_until(lambda: "dv20@example.org" in sink.live_ids("INBOX"), what="new mail")
            c.select("INBOX")
            c.uid("STORE", "1", "+FLAGS", "(\\Answered)")
            await wait_until(lambda: any(f.place.uid == 1 and "\\Answered" in f.flags
                                         for f in sink.of(MessageChanged)), what="flag change")
            c.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
            c.expunge()
            await wait_until(lambda: "dv1@example.org" not in sink.live_ids("INBOX"), what="expunge")
            c.uid("MOVE", "3", "Work")
            await wait_until(lambda: sink.live_ids("Work") == {"dv2@example.org"}
                             and "dv2@example.org" not in sink.live_ids("INBOX"), what="move")
            # Another folder gains mail: found by the STATUS sweep.
            await asyncio.to_thread(append, c, "Work", message(30, "dv"))
            await wait_until(lambda: "dv30@example.org" in sink.live_ids("Work"), what="sweep")
            # A rename keeps UIDVALIDITY on Dovecot: the places move with it.
            c.rename("Work", "Clients")
            await wait_until(lambda: sink.live_ids("Clients") == {"dv2@example.org", "dv30@example.org"},
                             what="rename")
            assert [(f.old_name, f.new_name) for f in sink.of(FolderRenamed)] == [("Work", "Clients")]
            assert not sink.live_ids("Work")
            c.select("INBOX", readonly=True)
            typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
            assert not any(b"\\Seen" in d for d in data)       # BODY.PEEK only
        places = [f.place for f in sink.of(MessageSeen)]
        assert len(places) == len(set(places))
    run(go())
    c.logout()


def test_uidvalidity_change_is_one_reset(dovecot, tmp_path):
    login, password = dovecot.user()
    c = imap_client(dovecot.host, dovecot.port, login, password)
    c.create("Box")
    for i in range(3):
        append(c, "Box", message(i, "uv"))

    async def go():
        engine = make_db(tmp_path)
        store = Store(engine)
        store.add(Account(1, login, password, dovecot.host, dovecot.port))
        sink = RecordingSink()
        async with tracking(tmp_path, None, None, None, None, engine=engine, store=store, sink=sink):
            await wait_until(lambda: len(sink.live("Box")) == 3, what="initial")
        old = next(iter(sink.live("Box"))).uidvalidity
        # Recreated while no tracker ran: the same name, a new UIDVALIDITY.
        c.delete("Box")
        c.create("Box")
        for i in (1, 2, 5):
            append(c, "Box", message(i, "uv"))
        async with tracking(tmp_path, None, None, None, None, engine=engine, store=store, sink=sink,
                            name="t2") as (tracker, *_):
            await wait_until(lambda: sink.live_ids("Box") == {"uv1@example.org", "uv2@example.org", "uv5@example.org"},
                             what="resynced")
            resets = sink.of(FolderReset)
            assert len(resets) == 1 and resets[0].old_uidvalidity == old != resets[0].new_uidvalidity
            assert [line for line in tracker.status(1)["log"] if "reset" in line["text"]].__len__() == 1
    run(go())
    c.logout()


def test_server_restart_resumes(dovecot, tmp_path):
    login, password = dovecot.user()
    c = imap_client(dovecot.host, dovecot.port, login, password)
    for i in range(4):
        append(c, "INBOX", message(i, "rs"))
    c.logout()

    async def go():
        async with Proxy(dovecot.host, dovecot.port) as proxy:
            engine = make_db(tmp_path)
            store = Store(engine)
            store.add(Account(1, login, password, "127.0.0.1", proxy.port))
            async with tracking(tmp_path, None, None, None, None, engine=engine, store=store,
                                idle_renew=1) as (tracker, sink, _s, _e):
                await wait_until(lambda: len(sink.live()) == 4, what="initial")
                await asyncio.to_thread(dovecot.restart)
                proxy.target = (dovecot.host, dovecot.port)
                c2 = await asyncio.to_thread(imap_client, dovecot.host, dovecot.port, login, password)
                await asyncio.to_thread(append, c2, "INBOX", message(9, "rs"))
                c2.logout()
                await wait_until(lambda: len(sink.live()) == 5, what="after the restart")
            places = [f.place for f in sink.of(MessageSeen)]
            assert len(places) == len(set(places)) == 5
    run(go())
