"""The PostgreSQL store locks a batch's mailboxes first, in one order, so two
nodes' group commits touching the same mailboxes in opposite orders wait for
each other instead of deadlocking (PostgreSQL ends a deadlock only after
deadlock_timeout, a second by default: the three-node benchmark at 200
clients spent most of its time so)."""
from __future__ import annotations

import logging
import threading

import pytest

from posthouse.store.process import _call
from tests.conftest import postgres_database


@pytest.fixture
def two_nodes():
    from posthouse.store.postgres.backend import PostgresStore
    url = postgres_database()
    a, b = PostgresStore(url, synchronous=False), PostgresStore(url, synchronous=False)
    yield a, b
    a.close()
    b.close()


def _mailboxes(store):
    user = store.create_user("u", "h", [("INBOX", None), ("Archive", None)])
    ids = [store.get_mailbox(user.id, name).id for name in ("INBOX", "Archive")]
    for mailbox_id in ids:
        store.run_batch([_call(store, "append_raw", (mailbox_id, [(b"Subject: x\r\n\r\nhi\r\n", [], 0, False)]))])
    return ids


def test_crossed_batches_of_two_nodes_do_not_deadlock(two_nodes, caplog):
    a, b = two_nodes
    first, second = _mailboxes(a)
    met = threading.Barrier(2)

    def meet():
        # Unlocked, both batches would be here holding one mailbox each, and
        # then each wait for the other's. Locked in order, one waits at its
        # start for the other's whole batch, so this meeting never happens.
        try:
            met.wait(1.0)
        except threading.BrokenBarrierError:
            pass

    def batch(store, order, results):
        calls = [_call(store, "store_flags", (order[0], [1], "add", frozenset({"\\Seen"}))),
                 meet,
                 _call(store, "store_flags", (order[1], [1], "add", frozenset({"\\Flagged"})))]
        results.extend(store.run_batch(calls, durable=False))

    results_a, results_b = [], []
    with caplog.at_level(logging.INFO, logger="posthouse.store"):
        threads = [threading.Thread(target=batch, args=(a, (first, second), results_a)),
                   threading.Thread(target=batch, args=(b, (second, first), results_b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert len(results_a) == len(results_b) == 3
    assert all(ok for ok, _v in results_a + results_b), results_a + results_b
    assert not [r for r in caplog.records if "waited for each other" in r.getMessage()]


def test_calls_name_the_rows_they_lock(two_nodes):
    a, _b = two_nodes
    assert a.rows_locked_by("copy", (3, [1], 2, True)) == ((3, 2), (3, 2))
    assert a.rows_locked_by("store_flags", (5, [1], "add", frozenset())) == ((5,), ())
    assert a.rows_locked_by("get_user", ("x",)) == ((), ())
    assert a.rows_locked_by("expunge", ("garbage",)) == ((), ())
    assert _call(a, "expunge", (4, [1])).locks == ((4,), (4,))


def test_a_batch_runs_without_savepoints_and_one_failure_undoes_only_its_call(two_nodes, monkeypatch):
    a, _b = two_nodes
    first, second = _mailboxes(a)
    flat_runs = []
    run_flat = a._run_flat
    monkeypatch.setattr(a, "_run_flat", lambda calls: flat_runs.append(len(calls)) or run_flat(calls))
    ok = a.run_batch([_call(a, "store_flags", (first, [1], "add", frozenset({"\\Seen"}))),
                      _call(a, "store_flags", (second, [1], "add", frozenset({"\\Seen"})))])
    assert [r[0] for r in ok] == [True, True] and flat_runs == [2]
    # One call fails (no such mailbox): tried flat, then again each in its own savepoint.
    results = a.run_batch([_call(a, "store_flags", (first, [1], "add", frozenset({"\\Flagged"}))),
                           _call(a, "append_raw", (987654, [(b"Subject: x\r\n\r\nx\r\n", [], 0, False)])),
                           _call(a, "store_flags", (second, [1], "add", frozenset({"\\Flagged"})))])
    assert [r[0] for r in results] == [True, False, True], results
    assert flat_runs == [2, 3]
    for mailbox_id in (first, second):
        _info, entries = a.load_index(mailbox_id)
        assert entries[0].flags == {"\\Seen", "\\Flagged"}      # each committed once, nothing twice
