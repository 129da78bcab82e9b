"""Several trackers on one database: each account is worked by one of them."""
import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from posthouse.tracker.leases import Leases

from .helpers import Account, Store, accounts_table, append, imap_client, make_db, message, wait_until
from .test_posthouse import run, tracking


def test_lease_claim_rules(tmp_path):
    engine = make_db(tmp_path)
    store = Store(engine)
    store.follow(Account(1, "x", "y", "127.0.0.1", 1))
    a = Leases(engine, "a", 60)
    b = Leases(engine, "b", 60)
    assert a.claim(1) and a.claim(1)        # taken, then renewed
    assert not b.claim(1)                   # held by a
    with engine.begin() as db:              # a's lease runs out (a died)
        db.execute(update(accounts_table).values(lease_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert b.claim(1) and not a.claim(1)
    b.release(1)
    with engine.connect() as db:
        assert db.execute(select(accounts_table.c.lease_owner)).scalar() is None
    assert a.claim(1)


def test_many_leases_claimed_in_one_go(tmp_path):
    engine = make_db(tmp_path)
    store = Store(engine)
    for n in range(1, 4):
        store.follow(Account(n, f"x{n}", "y", "127.0.0.1", 1))
    a = Leases(engine, "a", 60)
    b = Leases(engine, "b", 60)
    assert a.claim_many([1, 2]) == {1, 2}
    assert b.claim_many([1, 2, 3]) == {3}           # 1 and 2 are a's
    assert a.claim_many([1, 2, 3]) == {1, 2}        # renewed; 3 is b's
    with engine.begin() as db:                      # a's lease on 2 runs out
        db.execute(update(accounts_table).where(accounts_table.c.id == 2)
                   .values(lease_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert b.claim_many([1, 2, 3]) == {2, 3}
    assert a.claim_many([]) == set()


def test_two_trackers_one_account(server, user, tmp_path):
    c = imap_client(server.host, server.port, *user)
    append(c, "INBOX", message(0, "lease"))

    async def go():
        engine = make_db(tmp_path)
        store = Store(engine)
        store.follow(Account(1, *user, server.host, server.port))
        async with tracking(tmp_path, None, None, None, None, engine=engine, store=store, name="A",
                            lease_seconds=2) as (a, sink, _s, _e):
            await wait_until(lambda: len(sink.live()) == 1, what="A syncs")
            async with tracking(tmp_path, None, None, None, None, engine=engine, store=store, sink=sink,
                                name="B", lease_seconds=2) as (b, *_):
                await asyncio.sleep(0.6)
                assert 1 in a.workers and 1 not in b.workers
                await a.stop()                  # A lets go: B takes the account
                await wait_until(lambda: 1 in b.workers, what="B takes over")
                await asyncio.to_thread(append, c, "INBOX", message(1, "lease"))
                await wait_until(lambda: len(sink.live()) == 2, what="B follows")
    run(go())
    c.logout()
