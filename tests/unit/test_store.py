"""The mail store, on SQLite and on PostgreSQL (the `store` fixture runs each
test on both): group commit, where bytes are kept, the body-text index."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from posthouse.auth.authenticator import VerifiedCache
from posthouse.mime.message import parse_message
from posthouse.store.api import NoSuchMailbox
from posthouse.store.service import StoreService
from posthouse.store.sqlite.backend import SQLiteStore


def message(body: str, subject: str = "s") -> bytes:
    return (f"From: a@example.com\r\nSubject: {subject}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def _with_user(st):
    user = st.create_user("u", "h", [("INBOX", None), ("Other", None)])
    st.inbox = st.get_mailbox(user.id, "INBOX").id
    return st


@pytest.fixture
def store(open_store):
    st = _with_user(open_store(inline_max=1000))
    yield st
    st.close()


@pytest.fixture
def sqlite_store(tmp_path):
    """For what only the SQLite store has (blob files, the FTS5 index and its backlog)."""
    st = _with_user(SQLiteStore(str(tmp_path), fsync=False, inline_max=1000))
    yield st
    st.close()


def _sql(store, query: str) -> str:
    """A query with ? placeholders, as this store's driver wants them."""
    return query if isinstance(store, SQLiteStore) else query.replace("?", "%s")


def add(store, *raws):
    return store.append_many(store.inbox, [(r, parse_message(r), [], time.time()) for r in raws])


def test_batch_failure_undoes_only_itself(store):
    ok1 = lambda: add(store, message("first"))           # noqa: E731
    bad = lambda: (add(store, message("doomed")), store.copy(store.inbox, [1], 9999))  # noqa: E731
    ok2 = lambda: add(store, message("second"))          # noqa: E731
    results = store.run_batch([ok1, bad, ok2])
    assert [ok for ok, _ in results] == [True, False, True]
    assert isinstance(results[1][1], NoSuchMailbox)
    _info, entries = store.load_index(store.inbox)
    bodies = [store.read_blob(d.blob_key) for d in store.message_data(store.inbox, [e.uid for e in entries]).values()]
    assert len(entries) == 2 and all(b"doomed" not in b for b in bodies)
    # UIDs taken by the undone append are not reused... nor needed: they were never announced.
    assert [e.uid for e in entries] == sorted(e.uid for e in entries)


def test_small_messages_inline_big_ones_in_files(sqlite_store, tmp_path):
    store = sqlite_store
    small, big = message("x" * 100), message("y" * 5000)
    add(store, small, big)
    data = store.message_data(store.inbox, [1, 2], True)
    assert data[1].inline == small and data[2].inline is None
    assert os.path.exists(store.blob_path(data[2].blob_key))
    assert store.read_blob(data[2].blob_key, 10, 20) == big[10:20]
    assert store.read_blob(data[1].blob_key, 10, 20) == small[10:20]
    store.run_batch([lambda: store.expunge(store.inbox, [2])])
    assert not os.path.exists(store.blob_path(data[2].blob_key))
    with pytest.raises(FileNotFoundError):
        store.read_blob(data[2].blob_key)


def test_expunge_then_same_content_again_in_one_batch_keeps_file(store):
    big = message("z" * 5000)
    add(store, big)
    key = store.message_data(store.inbox, [1])[1].blob_key
    store.run_batch([lambda: store.expunge(store.inbox, [1]), lambda: add(store, big)])
    assert store.read_blob(key) == big


def _body_search_battery(store, uids):
    """Both ways to the texts: a small mailbox scans its own, a big one asks the index."""
    if hasattr(store, "SCAN_TEXTS_UP_TO"):
        for limit in (0, 2000):
            store.SCAN_TEXTS_UP_TO = limit
            _body_search_answers(store, uids)
        del store.SCAN_TEXTS_UP_TO
    else:
        _body_search_answers(store, uids)


def _body_search_answers(store, uids):
    assert store.search_body(store.inbox, uids, "☺") == {5}             # one character, three bytes
    assert store.search_body(store.inbox, uids, "ü") == {2}
    assert store.search_body(store.inbox, uids, "*") == set()           # GLOB characters are literal
    assert store.search_body(store.inbox, uids, "[") == set()
    assert store.search_body(store.inbox, uids, "quick") == {1}
    assert store.search_body(store.inbox, uids, "UICK BRO") == {1}      # inside words, across them
    assert store.search_body(store.inbox, uids, "münchen") == {2}
    assert store.search_body(store.inbox, uids, "ox") == {1}            # shorter than a trigram
    assert store.search_body(store.inbox, uids, "x") == {1}
    assert store.search_body(store.inbox, uids, "STRAẞE") == {4}        # simple case folding...
    assert store.search_body(store.inbox, uids, "STRASSE") == set()     # ...as RFC 5051's, not full
    assert store.search_body(store.inbox, uids, 'a"b') == set()         # quotes can't break the query
    assert store.search_body(store.inbox, [2, 3], "quick") == set()     # only the candidates
    assert store.search_body(store.inbox, None, "quick") == {1}         # None: the whole mailbox


def _count(store, table):
    return store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_body_search_finds_substrings_case_folded(store):
    add(store, message("The Quick brown fox"), message("Grüße aus MÜNCHEN"), message("no match here"),
        message("Straße"), message("☺"))
    _body_search_battery(store, [1, 2, 3, 4, 5])
    store.run_batch([lambda: store.expunge(store.inbox, [1])])
    assert store.search_body(store.inbox, None, "quick") == set()


def test_body_search_is_a_substring_search(sqlite_store):
    store = sqlite_store
    add(store, message("The Quick brown fox"), message("Grüße aus MÜNCHEN"), message("no match here"),
        message("Straße"), message("☺"))
    uids = [1, 2, 3, 4, 5]
    # New texts wait outside the index (a commit doesn't pay for indexing) and are found all the same.
    assert _count(store, "text_pending") == 5 and _count(store, "body_text") == 0
    _body_search_battery(store, uids)
    # Some indexed, some waiting: still the same answers.
    store.INDEX_CHUNK_BYTES = 30            # the first two texts are 19 and 17 bytes
    store._index_pending()
    assert _count(store, "text_pending") == 3 and _count(store, "body_text") == 2
    _body_search_battery(store, uids)
    while store.idle_work():                  # moves the rest
        pass
    assert _count(store, "text_pending") == 0 and _count(store, "body_text") == 5
    _body_search_battery(store, uids)
    store.run_batch([lambda: store.expunge(store.inbox, [1])])
    assert store.search_body(store.inbox, [2, 3, 4], "quick") == set()
    assert store.search_body(store.inbox, None, "quick") == set()
    assert _count(store, "body_text") == 5    # removed when idle
    assert store.idle_work() is False
    assert _count(store, "body_text") == 4 and _count(store, "text_garbage") == 0


def test_expunged_before_indexing_leaves_nothing_behind(sqlite_store):
    store = sqlite_store
    add(store, message("fleeting words"), message("lasting words"))
    store.run_batch([lambda: store.expunge(store.inbox, [1])])
    assert _count(store, "text_pending") == 1
    assert store.search_body(store.inbox, None, "words") == {2}
    while store.idle_work():
        pass
    assert _count(store, "body_text") == 1 and _count(store, "text_garbage") == 0
    assert store.search_body(store.inbox, None, "words") == {2}


def test_much_waiting_text_is_indexed_while_busy(sqlite_store):
    store = sqlite_store
    store.PENDING_MAX_BYTES, store.INDEX_CHUNK_BYTES = 40, 20
    add(store, *[message(f"text number {n}") for n in range(6)])     # 13 bytes each
    store.busy_work()          # 78 bytes wait: chunks of 2 texts move until under 40
    assert _count(store, "text_pending") == 2
    store.busy_work()          # below the bound now: the rest waits for idle time
    assert _count(store, "text_pending") == 2
    assert store.search_body(store.inbox, None, "number 5") == {6}
    assert store.search_body(store.inbox, None, "number 0") == {1}
    assert store.idle_work() is True and _count(store, "text_pending") == 0


def test_service_group_commit_under_concurrency(open_store):
    store = open_store(fsync=True)
    user = store.create_user("u", "h", [("INBOX", None)])
    inbox = store.get_mailbox(user.id, "INBOX").id
    service = StoreService(store)

    async def go():
        results = await asyncio.gather(*(service.append(inbox, [(message(f"m{i}"), [], time.time())])
                                         for i in range(40)))
        return sorted(r[0].uid for r in results)

    try:
        assert asyncio.run(go()) == list(range(1, 41))
    finally:
        service.close()


def test_verified_cache():
    cache = VerifiedCache(ttl=60)
    cache.add("u", "hash1", "pw")
    assert cache.check("u", "hash1", "pw")
    assert not cache.check("u", "hash1", "other")
    assert not cache.check("u", "hash2", "pw")     # the password was changed: forget it
    assert not cache.check("u", "hash1", "pw")
    off = VerifiedCache(ttl=0)
    off.add("u", "h", "pw")
    assert not off.check("u", "h", "pw")


def test_field_search(store):
    def msg(frm, subject):
        return f"From: {frm}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    add(store, msg("Jürgen <j@example.com>", "50% off_today"), msg("ALICE <alice@example.com>", "5 off today"),
        msg("bob@example.com", r"back\slash"))
    uids = [1, 2, 3]
    assert store.search_field(store.inbox, uids, "from_", "alice") == {2}
    assert store.search_field(store.inbox, uids, "from_", "JÜRGEN") == {1}      # non-ASCII folding
    assert store.search_field(store.inbox, uids, "subject", "50%") == {1}        # LIKE wildcards are literal
    assert store.search_field(store.inbox, uids, "subject", "off_") == {1}
    assert store.search_field(store.inbox, uids, "subject", "\\s") == {3}
    assert store.search_field(store.inbox, uids, "from_", "example.com") == {1, 2, 3}
    assert store.search_field(store.inbox, [1], "from_", "example.com") == {1}


def test_parser_pool_survives_a_killed_worker():
    import os as _os
    import signal
    from concurrent.futures import ThreadPoolExecutor
    from posthouse.store.parsing import PROCESS_FROM, ParsePool

    threads = ThreadPoolExecutor(1)
    pool = ParsePool(1, threads)
    big = message("word " * PROCESS_FROM)

    async def go():
        raw, parsed = await pool.parse(big)
        assert parsed.body_text.startswith("word word")
        for pid in list(pool._executor()._processes):
            _os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.5)
        raw2, parsed2 = await pool.parse(big)          # falls back to a thread, then a new pool
        assert parsed2.body_text == parsed.body_text
        raw3, parsed3 = await pool.parse(big)
        assert parsed3.body_text == parsed.body_text

    try:
        asyncio.run(go())
    finally:
        pool.close()
        threads.shutdown()


def test_quota_usage_follows_every_change_and_survives_reopen(open_store):
    st = open_store(inline_max=1000, quota_storage=None, quota_messages=5)
    user = st.create_user("q", "h", [("INBOX", None), ("Other", None)])
    st.inbox = st.get_mailbox(user.id, "INBOX").id
    other = st.get_mailbox(user.id, "Other").id
    a, b = message("a" * 100), message("b" * 3000)       # one inline, one a file
    add(st, a, b)
    assert (st.get_quota(user.id).storage, st.get_quota(user.id).messages) == (len(a) + len(b), 2)
    st.copy(st.inbox, [1, 2], other)
    st.copy(st.inbox, [1], other, move=True)
    st.expunge(other, [1])
    q = st.get_quota(user.id)
    assert (q.storage, q.messages, q.message_limit) == (len(a) + len(b) * 2, 3, 5)
    if isinstance(st, SQLiteStore):
        # A store from before quotas (no quota rows) counts usage when opened.
        st.db.execute("DELETE FROM quota")
    st.close()
    st = open_store(quota_storage=1 << 20)
    q = st.get_quota(user.id)
    assert (q.storage, q.messages, q.storage_limit, q.message_limit) == (len(a) + len(b) * 2, 3, 1 << 20, None)
    st.set_quota("q", 10, "none")       # per-user limits beat the default
    q = st.get_quota(user.id)
    assert (q.storage_limit, q.message_limit) == (10, None)
    st.set_quota("q", "default", None)
    assert st.get_quota(user.id).storage_limit == 1 << 20
    st.delete_user("q")
    assert st.db.execute("SELECT count(*) FROM quota").fetchone()[0] == 0
    st.close()


def test_delivery_facts_read_user_quota_script_and_inbox_together(store):
    from posthouse.store.api import DeliveryFacts, Store
    user = store.get_user("u")
    add(store, message("one"))
    store.set_quota("u", 10_000, None)
    for facts in (store.delivery_facts("u"), (store.quick("delivery_facts", "U") if hasattr(store, "quick") else store.delivery_facts("U")),     # names match without case
                  Store.delivery_facts(store, "u")):        # the generic version agrees
        assert isinstance(facts, DeliveryFacts)
        assert facts.user == user
        assert facts.quota == store.get_quota(user.id)
        assert facts.script is None
        assert facts.inbox == store.get_mailbox(user.id, "INBOX")
    store.put_script(user.id, "main", 'require "fileinto"; fileinto "Other";')
    store.activate_script(user.id, "main")
    assert store.delivery_facts("u").script == store.active_script(user.id)
    store.activate_script(user.id, None)
    assert store.delivery_facts("u").script is None
    # Renaming INBOX moves its messages out; INBOX, and its id, stay.
    before = store.delivery_facts("u").inbox
    store.rename_mailbox(user.id, "INBOX", "Old")
    assert store.delivery_facts("u").inbox.id == before.id
    assert store.delivery_facts("nobody") is None
    assert Store.delivery_facts(store, "nobody") is None


def test_a_reading_view_keeps_the_stores_methods_but_reads_its_data_live(store):
    user = store.get_user("u")
    view = store.reading()
    assert view.get_quota(user.id) == store.get_quota(user.id)
    assert view.get_quota is view.get_quota         # bound once, to the view
    assert view.db is not store.db                  # on the view's own connection
    store.quota_defaults = (123_456, None)          # data, not a method: seen at once
    assert view.get_quota(user.id).storage_limit == 123_456


def test_filing_an_arrival_once_into_its_targets_or_their_inbox(store):
    """file_arrival: exactly once per journal record; a mailbox gone means
    its user's INBOX, a user gone means nowhere; quotas don't refuse it."""
    user = store.create_user("arr", "x", [("INBOX", None), ("Lists", None)])
    other = store.create_user("gone-user", "x", [("INBOX", None)])
    inbox = store.get_mailbox(user.id, "INBOX")
    lists = store.get_mailbox(user.id, "Lists")
    gone_inbox = store.get_mailbox(other.id, "INBOX")
    store.set_quota("arr", None, 0)     # no room at all: accepted mail goes in anyway
    store.delete_mailbox(user.id, "Lists")
    store.delete_user("gone-user")
    raw = message("filed once")
    targets = [(user.id, lists.id, frozenset({"\\Flagged"})), (other.id, gone_inbox.id, frozenset())]
    results = store.file_arrivals([(7, raw, None, targets, 1.0)])
    assert [[r.uid for r in filed] for filed in results] == [[1]]
    info, entries = store.load_index(inbox.id)
    assert [(e.uid, e.flags) for e in entries] == [(1, frozenset({"\\Flagged"}))]
    assert store.get_quota(user.id).messages == 1
    assert store.file_arrivals([(7, raw, None, targets, 1.0)]) == [[]]      # a replay: nothing
    assert len(store.load_index(inbox.id)[1]) == 1
    assert store.filed_arrivals(1) == {7} and store.last_filed_arrival() == 7
    store.prune_arrivals(8)
    assert store.filed_arrivals(1) == set()


def test_user_and_mailbox_ids_are_never_given_twice(open_store):
    """Ids outlive their rows in memory (a session's user, the open mailboxes,
    names remembered for SELECT): a new user or mailbox never takes a deleted one's."""
    st = open_store()
    first = st.create_user("a", "h", [("INBOX", None)])
    st.create_user("b", "h", [("INBOX", None), ("Work", None)])
    b = st.get_user("b")
    old_boxes = {st.get_mailbox(b.id, n).id for n in ("INBOX", "Work")}
    st.delete_mailbox(b.id, "Work")
    again = st.create_mailbox(b.id, "Work")
    assert again.id not in old_boxes
    st.delete_user("b")        # the highest user id and mailbox ids go
    st.close()
    st = open_store()     # and the counters outlast a restart
    c = st.create_user("c", "h", [("INBOX", None), ("Work", None)])
    assert c.id not in (first.id, b.id)
    new_boxes = {st.get_mailbox(c.id, n).id for n in ("INBOX", "Work")}
    assert not new_boxes & (old_boxes | {again.id})
    with pytest.raises(Exception):
        st.create_user("c", "h", [])     # a refused user takes nothing else's
    assert st.get_user("c").id == c.id
    st.close()


def test_expunge_history_is_kept_to_a_bound_and_says_when_it_is_incomplete(store):
    store.EXPUNGE_HISTORY_MAX, store.EXPUNGE_HISTORY_KEEP, store.EXPUNGE_CHECK_EVERY = 6, 3, 2
    add(store, *[message(f"m{n}") for n in range(12)])
    modseqs = []
    for uid in range(1, 11):                  # ten expunges, each its own MODSEQ
        [event] = store.expunge(store.inbox, [uid])
        modseqs.append(event.modseq)
    assert store.vanished_since(store.inbox, 0) == list(range(1, 11))    # nothing trimmed yet
    while store.idle_work():
        pass
    left = store.db.execute(_sql(store, "SELECT uid FROM expunged WHERE mailbox_id=? ORDER BY uid"), (store.inbox,))
    assert [r[0] for r in left] == [8, 9, 10]
    # From before the floor the history is incomplete: None, not a short list.
    assert store.vanished_since(store.inbox, 0) is None
    assert store.vanished_since(store.inbox, modseqs[5]) is None        # UID 7's expunge is forgotten
    assert store.vanished_since(store.inbox, modseqs[6]) == [8, 9, 10]
    assert store.vanished_since(store.inbox, modseqs[8]) == [10]
    # Another mailbox keeps its own history; a deleted mailbox leaves no floor behind.
    user_id = store.get_user("u").id
    other = store.get_mailbox(user_id, "Other").id
    assert store.vanished_since(other, 0) == []
    store.db.execute(_sql(store, "INSERT INTO expunge_floor VALUES (?, 5)"), (other,))
    store.delete_mailbox(user_id, "Other")
    assert store.db.execute(_sql(store, "SELECT count(*) FROM expunge_floor WHERE mailbox_id=?"),
                            (other,)).fetchone()[0] == 0


def test_a_lost_database_connection_fails_one_batch_then_the_store_connects_again():
    from posthouse.store.postgres.backend import PostgresStore
    from tests.conftest import postgres_database
    st = _with_user(PostgresStore(postgres_database(), synchronous=False))
    try:
        # As a database restart would: the server ends our session.
        with type(st.db).connect(st.url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (st.db.info.backend_pid,))
        [(ok, error)] = st.run_batch([lambda: add(st, message("lost"))])
        assert not ok
        [(ok, result)] = st.run_batch([lambda: add(st, message("after"))])
        assert ok and st.load_index(st.inbox)[1][-1].uid == result[0].uid
    finally:
        st.close()


def test_two_batches_locking_mailboxes_in_opposite_orders_both_commit():
    """Batch A changes mailbox 1 then 2, batch B (another connection: another
    node) 2 then 1: PostgreSQL ends one call as a deadlock, and the store makes
    it again once the other batch is through: every call succeeds."""
    import threading
    from posthouse.store.postgres.backend import PostgresStore
    from tests.conftest import postgres_database
    url = postgres_database()
    a, b = _with_user(PostgresStore(url, synchronous=False)), PostgresStore(url, synchronous=False)
    b.inbox = a.inbox
    other = a.get_mailbox(a.get_user("u").id, "Other").id
    add(a, message("one"))
    a.copy(a.inbox, [1], other)
    first_done = {"a": threading.Event(), "b": threading.Event()}
    results = {}

    def batch(st, name, first_box, second_box, peer):
        def first():
            out = st.store_flags(first_box, [1], "add", frozenset({f"$by{name}"}))
            first_done[name].set()
            return out

        def second():
            first_done[peer].wait(10)       # both hold their first mailbox now
            return st.store_flags(second_box, [1], "add", frozenset({f"$by{name}"}))
        results[name] = st.run_batch([first, second], durable=False)

    threads = [threading.Thread(target=batch, args=(a, "a", a.inbox, other, "b")),
               threading.Thread(target=batch, args=(b, "b", other, a.inbox, "a"))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert [ok for ok, _ in results["a"] + results["b"]] == [True] * 4, results
        for box in (a.inbox, other):
            [entry] = a.load_index(box)[1]
            assert {"$bya", "$byb"} <= entry.flags
    finally:
        a.close()
        b.close()


def test_the_same_content_is_kept_once_and_lives_while_a_message_holds_it(store):
    raw = message("twice the same")
    add(store, raw)
    add(store, raw)
    assert store.db.execute("SELECT count(*), max(refs) FROM blobs").fetchone() == (1, 2)
    key = store.message_data(store.inbox, [1])[1].blob_key
    store.expunge(store.inbox, [1])
    assert store.read_blob(key, 6, 20) == raw[6:20]
    store.expunge(store.inbox, [2])
    assert store.db.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0
    with pytest.raises(FileNotFoundError):
        store.read_blob(key)
    # Copies hold references too: one copied twice outlives its original.
    other = store.get_mailbox(store.get_user("u").id, "Other").id
    add(store, raw, raw)
    store.copy(store.inbox, [3, 4], other)
    store.copy(store.inbox, [3], other, move=True)
    assert store.db.execute("SELECT count(*), max(refs) FROM blobs").fetchone() == (1, 4)
    store.expunge(store.inbox, [4])
    store.expunge(other, [1, 2])
    assert store.read_blob(key) == raw
    store.expunge(other, [3])
    assert store.db.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0


def test_postgresql_keeps_big_messages_in_chunks_and_reads_any_range(monkeypatch):
    from posthouse.store.postgres import backend
    from tests.conftest import postgres_database
    monkeypatch.setattr(backend, "CHUNK", 1000)
    st = _with_user(backend.PostgresStore(postgres_database(), synchronous=False))
    try:
        small, big = message("s" * 100), message("".join(f"{i:05d}" for i in range(1000)))   # ~5 chunks
        add(st, small, big)
        assert st.db.execute("SELECT count(*) FROM blob_chunks").fetchone()[0] == 1 + (len(big) + 999) // 1000
        data = st.message_data(st.inbox, [1, 2], True)
        assert data[1].inline == small and data[2].inline is None      # more than a chunk: read in ranges
        key = data[2].blob_key
        for start, end in [(0, None), (0, 1000), (999, 1001), (1000, 2000), (1500, 4321), (len(big) - 3, None),
                           (len(big), None), (10, 10), (4000, 3000)]:
            assert st.read_blob(key, start, end) == big[start:end], (start, end)
    finally:
        st.close()


def test_postgresql_leases_a_queued_message_to_one_node_and_a_restart_takes_its_own_back():
    from posthouse.store.postgres.backend import PostgresStore
    from tests.conftest import postgres_database
    url = postgres_database()
    a, b = PostgresStore(url, node="n1", synchronous=False), PostgresStore(url, node="n2", synchronous=False)
    a_again = None
    try:
        now = time.time()
        item = a.enqueue(None, "s@example.com", ["r@example.net"], b"data", now)
        assert [o.id for o in a.due_outbound(now, 10)] == [item]
        assert b.due_outbound(now, 10) == [] and a.due_outbound(now, 10) == []     # it is being sent
        a_again = PostgresStore(url, node="n1", synchronous=False)   # n1 started again: its old lease ends
        assert [o.id for o in a_again.due_outbound(now, 10)] == [item]
        assert b.due_outbound(now, 10) == []
        a_again.outbound_attempted(item, ["r@example.net"], now + 1, "451 later")
        [due] = b.due_outbound(now + 2, 10)                          # tried, not sent: any node's now
        assert (due.id, due.attempts, due.last_error) == (item, 1, "451 later")
    finally:
        for st in (a, b, a_again):
            if st is not None:
                st.close()


def test_changes_since_reads_new_messages_flag_changes_and_expunges_from_a_modseq(store):
    add(store, *[message(f"m{n}") for n in range(4)])            # UIDs 1-4, one MODSEQ
    info, _entries = store.load_index(store.inbox)
    since, next_uid = info.highestmodseq, info.uidnext
    store.store_flags(store.inbox, [2], "add", frozenset({"\\Seen"}))
    store.expunge(store.inbox, [3])
    add(store, message("m4"), message("m5"))                       # UIDs 5, 6
    store.expunge(store.inbox, [6])                                # came and went
    now, entries, expunged = store.changes_since(store.inbox, since, next_uid)
    assert now.highestmodseq == since + 4 and now.uidnext == 7
    assert [(e.uid, sorted(e.flags)) for e in entries] == [(2, ["\\Seen"]), (5, [])]
    assert all(e.modseq > since for e in entries)
    assert expunged == [3, 6]
    # From now: nothing; from before every change: all of it; unknown mailbox: said so.
    assert store.changes_since(store.inbox, now.highestmodseq, now.uidnext)[1:] == ([], [])
    assert [e.uid for e in store.changes_since(store.inbox, 0, 1)[1]] == [1, 2, 4, 5]
    with pytest.raises(NoSuchMailbox):
        store.changes_since(999999, 0, 1)


def test_changes_since_says_when_the_expunge_history_from_there_was_forgotten(store):
    store.EXPUNGE_HISTORY_MAX, store.EXPUNGE_HISTORY_KEEP, store.EXPUNGE_CHECK_EVERY = 2, 1, 1
    add(store, *[message(f"m{n}") for n in range(4)])
    for uid in (1, 2, 3):
        store.expunge(store.inbox, [uid])
    while store.idle_work():
        pass
    info, entries, expunged = store.changes_since(store.inbox, 0, 1)
    assert expunged is None and [e.uid for e in entries] == [4]      # the caller reads the whole mailbox


def _notifications(listener) -> list[str]:
    return [n.payload for n in listener.notifies(timeout=0.5)]


def test_postgresql_notifies_other_nodes_of_each_change_at_commit_only():
    """Every change NOTIFYs (mailbox, MODSEQ, kind) in its own transaction: a
    listener hears of it once committed, never of one undone."""
    import psycopg
    from posthouse.store.postgres.backend import PostgresStore
    from posthouse.store.postgres.bus import parse
    from posthouse.store.api import MailboxChanged, MailboxGone, MailboxListChanged
    from tests.conftest import postgres_database
    url = postgres_database()
    st = _with_user(PostgresStore(url, synchronous=False))
    listener = psycopg.connect(url, autocommit=True)
    try:
        listener.execute("LISTEN posthouse_changes")
        add(st, message("one"), message("two"))
        st.store_flags(st.inbox, [1], "add", frozenset({"\\Flagged"}))
        st.expunge(st.inbox, [2])
        st.copy(st.inbox, [1], st.get_mailbox(st.get_user("u").id, "Other").id, move=True)
        heard = [parse(p, "someone else")[0] for p in _notifications(listener)]
        other = st.get_mailbox(st.get_user("u").id, "Other").id
        assert heard == [[MailboxChanged(st.inbox, 2, "a")], [MailboxChanged(st.inbox, 3, "f")],
                         [MailboxChanged(st.inbox, 4, "x")], [MailboxChanged(other, 2, "a")],
                         [MailboxChanged(st.inbox, 5, "x")]]
        # Our own are news of a MODSEQ, not wake-ups.
        assert parse(f"M {st.origin} {st.inbox} 5 x", st.origin) == ([], (st.inbox, 5))
        # A batch's call that fails is undone, its NOTIFY with it.
        results = st.run_batch([lambda: add(st, message("kept")),
                                lambda: (add(st, message("undone")), st.copy(st.inbox, [1], 999999))])
        assert [ok for ok, _ in results] == [True, False]
        assert [parse(p, "x")[0] for p in _notifications(listener)] == [[MailboxChanged(st.inbox, 6, "a")]]
        # The list of mailboxes: made, renamed, subscribed, deleted.
        uid = st.get_user("u").id
        made = st.create_mailbox(uid, "New")
        st.rename_mailbox(uid, "New", "Newer")
        st.set_subscribed(uid, "Newer", True)
        st.delete_mailbox(uid, "Newer")
        heard = [parse(p, "x")[0] for p in _notifications(listener)]
        assert heard == [[MailboxListChanged(uid, "created", "New", None, mailbox_id=made.id)],
                         [MailboxListChanged(uid, "renamed", "Newer", "New", mailbox_id=made.id),
                          MailboxGone(made.id)],
                         [MailboxListChanged(uid, "subscribed", "Newer", None)],
                         [MailboxListChanged(uid, "deleted", "Newer", None), MailboxGone(made.id)]]
        # Garbage in a payload is ignored, not a crash.
        for junk in ["", "M", "M x y z w", "L a {", "L a []", "Q a b", "M a 1 2"]:
            assert parse(junk, "me") == ([], None)
    finally:
        listener.close()
        st.close()
