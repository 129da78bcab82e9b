"""A worker's own store (workers = N) against the store process's: on
PostgreSQL both are one node to the other nodes, and the store gives each
\\Recent message to one session of any worker (issue 24)."""
from __future__ import annotations

import psycopg

from posthouse.app import open_store as open_server_store
from posthouse.config import Config
from posthouse.store.postgres.bus import parse


def _with_inbox(st):
    user = st.create_user("u", "h", [("INBOX", None)])
    return user, st.get_mailbox(user.id, "INBOX").id


def test_take_recent_gives_each_uid_to_one_caller(open_store):
    st = open_store()
    try:
        _user, inbox = _with_inbox(st)
        first = st.take_recent(inbox, 4)
        assert first < 4                    # the first caller gets UIDs first..3
        assert st.take_recent(inbox, 4) == 4        # the next, none of them
        assert st.take_recent(inbox, 6) == 4        # and only those after
        assert st.take_recent(inbox, 5) == 6        # (it never goes down)
        assert st.take_recent(999999, 7) == 7      # no such mailbox: nothing
    finally:
        st.close()


def _notifications(conn, expected: int) -> list[str]:
    got = []
    for notify in conn.notifies(timeout=5.0):
        got.append(notify.payload)
        if len(got) == expected:
            break
    return got


def test_a_workers_store_takes_the_store_processs_changes_for_its_own(tmp_path):
    """The store process commits what every worker asks; a worker's LISTEN
    must skip those NOTIFYs (the store process told the workers already).
    Taken for another node's, they started a catch-up that held a session's
    own APPEND back from its reply, and a UID STORE right after it found no
    such message (tests/cluster: the deaf node never saw the \\Flagged)."""
    from tests.conftest import postgres_database
    url = postgres_database()
    config = Config(data_dir=str(tmp_path), database_url=url)
    process_store = open_server_store(config)            # as workers.Supervisor opens it
    worker_store = open_server_store(config, process_store.open_args)   # as app.build_context, in a worker
    listener = psycopg.connect(url, autocommit=True)
    try:
        assert worker_store.origin == process_store.origin
        assert worker_store.lessee == process_store.lessee
        user, _inbox = _with_inbox(process_store)
        listener.execute("LISTEN posthouse_changes")
        made = process_store.create_mailbox(user.id, "Other")
        payloads = _notifications(listener, 1)
        assert payloads, "the store said nothing of the change"
        assert all(parse(p, worker_store.origin)[0] == [] for p in payloads), payloads
        # Another node's store is another node.
        other = open_server_store(Config(data_dir=str(tmp_path / "other"), database_url=url))
        try:
            assert other.origin != process_store.origin
            assert parse(payloads[0], other.origin)[0] != []
        finally:
            other.close()
        assert made.id
    finally:
        listener.close()
        worker_store.close()
        process_store.close()
