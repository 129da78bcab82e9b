"""The tracker following a Posthouse mailbox (NOTIFY push), through a proxy
that can cut and delay connections."""
import asyncio
import contextlib


from posthouse.tracker.engine import Tracker, account_status
from posthouse.tracker.facts import FolderRenamed, MessageChanged, MessageSeen

from .helpers import (Account, Proxy, RecordingSink, Store, accounts_table, append, imap_client, make_db,
                      message, open_session, wait_until)


def run(coro):
    async def main():
        try:
            return await asyncio.wait_for(coro, 120)
        except BaseException:
            import traceback
            traceback.print_exc()
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.print_stack()
            raise
    return asyncio.run(main())


@contextlib.asynccontextmanager
async def tracking(tmp_path, host, port, login, password, *, engine=None, store=None, sink=None,
                   account_id=1, since=None, name="t1", **options):
    engine = engine or make_db(tmp_path)
    if store is None:
        store = Store(engine)
        store.add(Account(account_id, login, password, host, port, since=since))
    sink = sink or RecordingSink()
    opts = dict(poll_interval=0.2, backoff_base=0.05, backoff_max=0.5, busy_backoff=0.2, batch_size=10)
    opts.update(options)
    tracker = Tracker(engine, store, sink, name=name, open_session=open_session,
                      leases_table=accounts_table, **opts)
    task = asyncio.create_task(tracker.run())
    try:
        yield tracker, sink, store, engine
    finally:
        try:
            await asyncio.wait_for(tracker.stop(), 10)
        except asyncio.TimeoutError:
            for t in asyncio.all_tasks():
                t.print_stack()
            raise
        await task


def test_initial_incremental_moves_flags_deletes_folders(server, user, tmp_path):
    c = imap_client(server.host, server.port, *user)
    for i in range(5):
        append(c, "INBOX", message(i, "in", attachment=(i == 0)))
    for i in range(2):
        append(c, "Sent", message(i, "out"))

    async def go():
        async with tracking(tmp_path, server.host, server.port, *user, sweep_interval=60) as (tracker, sink, _, _e):
            await wait_until(lambda: len(sink.live()) == 7, what="initial sync")
            assert sink.live_ids("INBOX") == {f"in{i}@example.org" for i in range(5)}
            assert sink.live_ids("Sent") == {f"out{i}@example.org" for i in range(2)}
            seen = {f.place.folder: f for f in sink.of(MessageSeen)}
            assert seen["Sent"].special_use == "\\Sent"
            first = next(f for f in sink.of(MessageSeen) if f.message_id == "in0@example.org")
            assert [(a.name, a.content_type) for a in first.attachments] == [("cv.pdf", "application/pdf")]
            assert b"see the attached file" in first.skeleton and b"QUJD" not in first.skeleton
            assert first.size > 8000 and len(first.skeleton) < 2000
            # Never \Seen: the tracker only PEEKs.
            c.select("INBOX", readonly=True)
            typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
            assert not any(b"\\Seen" in d for d in data)

            # Incremental by NOTIFY push (the sweep is a minute away).
            await asyncio.to_thread(append, c, "INBOX", message(9, "in"))
            await wait_until(lambda: "in9@example.org" in sink.live_ids("INBOX"), what="new mail pushed")
            c.select("INBOX")
            c.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
            await wait_until(lambda: any(f.place.uid == 1 and "\\Flagged" in f.flags
                                         for f in sink.of(MessageChanged)), what="flag change")
            c.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
            c.expunge()
            await wait_until(lambda: "in2@example.org" not in sink.live_ids("INBOX"), what="expunge")
            # A move: gone here, seen there, same Message-ID.
            c.create("Projects")
            c.uid("MOVE", "2", "Projects")
            await wait_until(lambda: sink.live_ids("Projects") == {"in1@example.org"}
                             and "in1@example.org" not in sink.live_ids("INBOX"), what="move")
            # Renamed, then deleted.
            c.rename("Projects", "Clients")
            await wait_until(lambda: sink.live_ids("Clients") == {"in1@example.org"}, what="rename")
            # Posthouse gives a renamed folder a new UIDVALIDITY: gone there, seen here
            # (a rename keeping it is a FolderRenamed: tests/tracker/test_dovecot.py).
            assert not sink.of(FolderRenamed) and not sink.live_ids("Projects")
            c.delete("Clients")
            await wait_until(lambda: not sink.live_ids("Clients"), what="folder deleted")

            status = tracker.status(1)
            inbox = next(f for f in status["folders"] if f["name"] == "INBOX")
            assert inbox["backfill_done"] and inbox["messages_done"] == 4
            assert status["state"] == "following"
        # Everything seen once per place: replaying the sink changes nothing.
        places = [f.place for f in sink.of(MessageSeen)]
        assert len(places) == len(set(places))
    run(go())
    c.logout()


def test_wrong_password_needs_attention(server, user, tmp_path):
    async def go():
        async with tracking(tmp_path, server.host, server.port, user[0], "wrong") as (tracker, sink, store, _e):
            await wait_until(lambda: store.accounts[1].state == "needs_attention", what="needs attention")
            sessions = store.sessions
            await asyncio.sleep(1)
            assert store.sessions == sessions == 1      # no retrying
            assert "login failed" in store.accounts[1].state_reason
            assert any("login failed" in line["text"] for line in tracker.status(1)["log"])
    run(go())


def test_cut_mid_fetch_and_tracker_restart_lose_nothing(server, user, tmp_path):
    c = imap_client(server.host, server.port, *user)
    for i in range(60):
        append(c, "INBOX", message(i, "cut", attachment=(i % 7 == 0)))

    async def go():
        async with Proxy(server.host, server.port) as proxy:
            proxy.cut_after = 9_000             # the first session dies mid-FETCH (in the second batch or so)
            proxy.delay = 0.01                  # slow enough to stop the first tracker mid-sync
            engine = make_db(tmp_path)
            store = Store(engine)
            store.add(Account(1, *user, "127.0.0.1", proxy.port))
            sink = RecordingSink()
            async with tracking(tmp_path, None, None, None, None, engine=engine, store=store, sink=sink,
                                batch_size=7, use_notify=False):
                await wait_until(lambda: any(line["text"].startswith("connection:")
                                             for line in account_status(engine, 1)["log"]), what="the cut")
                await wait_until(lambda: len(sink.live()) >= 14, what="a few batches")
                sink.fail = 1       # and the sink fails once: the batch is fetched again
            assert len(sink.live()) < 60        # stopped mid-sync
            # The tracker stopped mid-sync; a new one resumes from the cursors.
            async with tracking(tmp_path, None, None, None, None, engine=engine, store=store, sink=sink,
                                batch_size=7, name="t2", use_notify=False) as (tracker, *_):
                await wait_until(lambda: len(sink.live()) == 60, what="all 60")
                await wait_until(lambda: tracker.status(1)["folders"] and all(
                    f["backfill_done"] for f in tracker.status(1)["folders"]), what="backfill done")
            seen = [f.place for f in sink.of(MessageSeen)]
            assert sink.live_ids("INBOX") == {f"cut{i}@example.org" for i in range(60)}
            assert len(seen) - len(set(seen)) <= 7       # at most one batch replayed
            assert store.sessions >= 3                   # cut, restarted, resumed
    run(go())
    c.logout()


def test_idle_renewed_and_sweep_without_notify(server, user, tmp_path):
    """24 hours of IDLE compressed: renewed every 0.1 s, a STATUS sweep every 0.5 s."""
    c = imap_client(server.host, server.port, *user)
    append(c, "INBOX", message(0, "idle"))

    async def go():
        async with Proxy(server.host, server.port) as proxy:
            proxy.delay = 0.002
            async with tracking(tmp_path, "127.0.0.1", proxy.port, *user, use_notify=False,
                                idle_renew=0.1, sweep_interval=0.5) as (tracker, sink, store, _e):
                await wait_until(lambda: len(sink.live()) == 1, what="initial")
                for i in range(1, 6):
                    await asyncio.to_thread(append, c, "INBOX", message(i, "idle"))
                    await asyncio.sleep(0.3)
                await asyncio.to_thread(append, c, "Sent", message(0, "swept"))
                await wait_until(lambda: len(sink.live("INBOX")) == 6, what="idle news")
                await wait_until(lambda: sink.live_ids("Sent") == {"swept0@example.org"}, what="sweep")
                await wait_until(lambda: proxy.client_bytes.count(b" IDLE\r\n") >= 10, what="IDLE renewed")
                assert proxy.client_bytes.count(b"DONE\r\n") >= 9
                assert store.sessions == 1
    run(go())
    c.logout()


def test_server_refusing_then_back(server, user, tmp_path):
    """A server that is down (connections refused, then cut) is retried with backoff."""
    c = imap_client(server.host, server.port, *user)
    append(c, "INBOX", message(0, "back"))

    async def go():
        async with Proxy(server.host, server.port) as proxy:
            target = proxy.target
            proxy.target = ("127.0.0.1", 1)          # nothing listens: connect fails
            async with tracking(tmp_path, "127.0.0.1", proxy.port, *user) as (tracker, sink, store, _e):
                await wait_until(lambda: store.sessions >= 3, what="retries")
                assert not sink.facts
                proxy.target = target
                await wait_until(lambda: len(sink.live()) == 1, what="synced once back")
                proxy.cut()
                await asyncio.to_thread(append, c, "INBOX", message(1, "back"))
                await wait_until(lambda: len(sink.live()) == 2, what="resumed after a cut")
    run(go())
    c.logout()


BOUNCE = (b"From: MAILER-DAEMON@mx.example.org\r\nTo: bob@example.com\r\nSubject: Undelivered Mail\r\n"
          b"Message-ID: <bounce1@mx.example.org>\r\nMIME-Version: 1.0\r\n"
          b'Content-Type: multipart/report; report-type=delivery-status; boundary="r1"\r\n\r\n'
          b"--r1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
          b"--r1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
          b"Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
          b"--r1\r\nContent-Type: message/rfc822\r\n\r\nFrom: bob@example.com\r\nTo: gone@example.org\r\n"
          b"Subject: hello\r\nMessage-ID: <orig1@example.com>\r\n\r\nTHE ORIGINAL BODY\r\n"
          b"--r1\r\nContent-Type: image/png; name=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
          + b"iVBORw0KGgo=" * 500 + b"\r\n--r1--\r\n")


def test_skeleton_of_a_bounce(server, user, tmp_path):
    """Header, text, the delivery status and the returned message's header;
    not the returned body, not the image."""
    import email
    c = imap_client(server.host, server.port, *user)
    append(c, "INBOX", BOUNCE)

    async def go():
        async with tracking(tmp_path, server.host, server.port, *user) as (tracker, sink, _s, _e):
            await wait_until(lambda: len(sink.live()) == 1, what="sync")
        seen = sink.of(MessageSeen)[0]
        assert seen.message_id == "bounce1@mx.example.org"
        parsed = email.message_from_bytes(seen.skeleton)
        assert parsed.get_content_type() == "multipart/report"
        parts = parsed.get_payload()
        assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status",
                                                         "message/rfc822", "image/png"]
        assert "could not be delivered" in parts[0].get_payload()
        assert b"Status: 5.1.1" in seen.skeleton
        assert b"Message-ID: <orig1@example.com>" in seen.skeleton
        assert b"THE ORIGINAL BODY" not in seen.skeleton and b"iVBORw0KGgo" not in seen.skeleton
        assert [(a.name, a.content_type, a.section) for a in seen.attachments] == [
            (None, "message/rfc822", "3"), ("logo.png", "image/png", "4")]
    run(go())
    c.logout()


def test_unavailable_backs_off_and_is_not_a_login_failure(tmp_path):
    """A server answering LOGIN with NO [UNAVAILABLE] is retried after the
    busy back-off; the account is not marked as needing attention."""
    logins = []

    async def handle(reader, writer):
        writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake\r\n")
        await writer.drain()
        while line := await reader.readline():
            tag = line.split(b" ", 1)[0]
            if b" LOGIN " in line:
                logins.append(asyncio.get_running_loop().time())
                writer.write(tag + b" NO [UNAVAILABLE] backend down\r\n")
            else:
                writer.write(tag + b" BAD what\r\n")
            await writer.drain()
        writer.close()

    async def go():
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            async with tracking(tmp_path, "127.0.0.1", port, "u", "p", busy_backoff=0.4,
                                backoff_base=0.01) as (tracker, sink, store, _e):
                await wait_until(lambda: len(logins) >= 3, what="retries")
                assert store.accounts[1].state == "active"
                gaps = [b - a for a, b in zip(logins, logins[1:])]
                assert min(gaps) >= 0.4 * 0.5           # the busy back-off (with jitter), not backoff_base
                assert any("UNAVAILABLE" in line["text"] for line in tracker.status(1)["log"])
        finally:
            srv.close()
            await srv.wait_closed()
    run(go())


def test_posthouse_restart_resumes(tmp_path):
    """The provider restarts (a new process on the same data): the tracker
    reconnects and goes on from its cursors."""
    from tests.conftest import RunningServer
    data = str(tmp_path / "provider")
    first = RunningServer(data)
    try:
        user = first.add_user("restart")
        c = imap_client(first.host, first.port, *user)
        for i in range(3):
            append(c, "INBOX", message(i, "phr"))
        c.logout()
    except BaseException:
        first.stop()
        raise
    servers = [first]

    async def go():
        async with Proxy(first.host, first.port) as proxy:
            engine = make_db(tmp_path)
            store = Store(engine)
            store.add(Account(1, *user, "127.0.0.1", proxy.port))
            async with tracking(tmp_path, None, None, None, None, engine=engine, store=store) as (t, sink, _s, _e):
                await wait_until(lambda: len(sink.live()) == 3, what="initial")
                await asyncio.to_thread(first.stop)
                servers.remove(first)
                proxy.cut()     # an exiting process's connections close (this in-process server's don't)
                second = await asyncio.to_thread(RunningServer, data)
                servers.append(second)
                proxy.target = (second.host, second.port)
                c2 = await asyncio.to_thread(imap_client, second.host, second.port, *user)
                await asyncio.to_thread(append, c2, "INBOX", message(7, "phr"))
                c2.logout()
                await wait_until(lambda: len(sink.live()) == 4, what="after the restart")
            places = [f.place for f in sink.of(MessageSeen)]
            assert len(places) == len(set(places)) == 4
    try:
        run(go())
    finally:
        for s in servers:
            s.stop()


def test_a_folder_the_server_refuses_is_skipped(server, user, tmp_path):
    c = imap_client(server.host, server.port, *user)
    append(c, "INBOX", message(0, "skip"))
    append(c, "Trash", message(1, "skip"))

    async def go():
        engine = make_db(tmp_path)
        store = Store(engine)
        store.refuse_select = {"Trash"}
        store.add(Account(1, *user, server.host, server.port))
        async with tracking(tmp_path, None, None, None, None, engine=engine, store=store,
                            sweep_interval=0.2) as (tracker, sink, _s, _e):
            await wait_until(lambda: len(sink.live()) == 1, what="INBOX synced")
            await asyncio.to_thread(append, c, "INBOX", message(2, "skip"))
            await wait_until(lambda: len(sink.live()) == 2, what="still following")
            await asyncio.sleep(0.5)        # a few sweeps
            skipped = [line for line in tracker.status(1)["log"] if "skipped" in line["text"]]
            assert len(skipped) == 1 and "Trash" in skipped[0]["text"]
            assert store.sessions == 1
    run(go())
    c.logout()


def test_since_limits_the_first_sync(server, user, tmp_path):
    import imaplib
    from datetime import date, datetime, timedelta, timezone
    c = imap_client(server.host, server.port, *user)
    old = imaplib.Time2Internaldate(datetime(2020, 5, 1, tzinfo=timezone.utc))
    for i in range(3):
        assert c.append("INBOX", None, old, message(i, "old"))[0] == "OK"
    for i in range(2):
        append(c, "INBOX", message(i, "new"))

    async def go():
        async with tracking(tmp_path, server.host, server.port, *user,
                            since=date.today() - timedelta(days=90)) as (tracker, sink, _s, _e):
            await wait_until(lambda: any(f["name"] == "INBOX" and f["backfill_done"]
                                         for f in tracker.status(1)["folders"]), what="backfill")
            assert sink.live_ids("INBOX") == {"new0@example.org", "new1@example.org"}
            inbox = next(f for f in tracker.status(1)["folders"] if f["name"] == "INBOX")
            assert (inbox["messages_done"], inbox["messages_total"]) == (2, 2)
    run(go())
    c.logout()
