"""The store process: calls cross to it and back, in order, with their errors;
one that dies fails what it had and is replaced; garbage stops it cleanly."""
import asyncio
import os
import signal
import time

import pytest

from posthouse.store.api import MailboxExists
from posthouse.store.process import StoreProcess, StoreProcessDied, _HEADER, _portable
from posthouse.store.parsing import normalize_and_parse
from posthouse.store.service import StoreService
from posthouse.store.sqlite.backend import SQLiteStore


def message(subject: str) -> bytes:
    return f"From: a@example.com\r\nSubject: {subject}\r\n\r\nbody {subject}\r\n".encode()


def _service(store):
    user = store.create_user("u", "h", [("INBOX", None)])
    service = StoreService(store, store_process=True)
    service.inbox = store.get_mailbox(user.id, "INBOX").id
    service.user = user.id
    return service


@pytest.fixture
def service(open_store):
    """A store process over each kind of store (see the open_store fixture)."""
    service = _service(open_store())
    yield service
    service.close()


@pytest.fixture
def sqlite_service(tmp_path):
    service = _service(SQLiteStore(str(tmp_path), fsync=False))
    yield service
    service.close()


def test_calls_run_in_the_child_in_order(service):
    assert service._db_process is not None and service._db_process.pid != os.getpid()

    async def go():
        results = await asyncio.gather(*(service.append(service.inbox, [(message(f"m{i}"), [], time.time())])
                                         for i in range(30)))
        return [r[0].uid for r in results]

    assert asyncio.run(go()) == list(range(1, 31))
    # what the child committed, this process reads
    assert service.store.reading().mailbox_counts(service.inbox)["MESSAGES"] == 30


def test_errors_come_back_as_themselves(service):
    async def go():
        await service.call("create_mailbox", service.user, "Work")
        with pytest.raises(MailboxExists):
            await service.call("create_mailbox", service.user, "Work")
        with pytest.raises(ValueError, match="not a store call"):
            await service.call("_tx")
        with pytest.raises(AttributeError):
            await service.call("no_such_method")
        # and the process goes on
        names = [m.name for m in await service.call("list_mailboxes", service.user)]
        assert "Work" in names

    asyncio.run(go())


def test_an_argument_that_does_not_pickle_fails_that_call_only(service):
    async def go():
        with pytest.raises(Exception):
            await service.call("create_mailbox", service.user, lambda: None)
        assert await service.call("mailbox_counts", service.inbox) is not None

    asyncio.run(go())


def test_a_killed_child_fails_its_calls_and_is_replaced(service):
    proc: StoreProcess = service._db_process
    proc.RESTART_AFTER = 0.2

    async def go():
        await service.append(service.inbox, [(message("before"), [], time.time())])
        os.kill(proc.pid, signal.SIGKILL)
        # a call made as it dies fails with a clear error, or (if it was already
        # being restarted) succeeds: it never hangs
        try:
            await asyncio.wait_for(service.call("mailbox_counts", service.inbox), 10)
        except StoreProcessDied:
            pass
        await asyncio.sleep(0.3)
        for _ in range(50):
            try:
                return await asyncio.wait_for(service.append(service.inbox, [(message("after"), [], time.time())]), 10)
            except StoreProcessDied:
                await asyncio.sleep(0.1)
        raise AssertionError("no new store process")

    first = proc.pid
    result = asyncio.run(go())
    assert proc.pid != first
    assert result[0].uid == 2       # what committed before the kill is kept


def test_garbage_on_the_wire_stops_the_child_not_the_server(service):
    proc: StoreProcess = service._db_process
    proc.RESTART_AFTER = 0.1
    child = proc._child
    child.sock.setblocking(True)
    child.sock.sendall(_HEADER.pack(12) + b"not a pickle")
    child.proc.wait(timeout=10)
    assert child.proc.returncode is not None

    async def go():
        await asyncio.sleep(0.2)
        return await service.call("mailbox_counts", service.inbox)

    assert asyncio.run(go()) is not None


def test_close_stops_the_child(open_store):
    store = open_store()
    service = StoreService(store, store_process=True)
    proc = service._db_process._child.proc
    service.close()
    assert proc.poll() is not None


def test_a_store_that_cannot_be_reopened_uses_a_thread(tmp_path):
    class Plain:
        def run_batch(self, calls, durable=True):
            return [(True, c()) for c in calls]

        def close(self):
            pass

        def echo(self, x):
            return x
    service = StoreService(Plain(), store_process=True)
    try:
        assert service._db_process is None
        assert asyncio.run(service.call("echo", 5)) == 5
    finally:
        service.close()


def test_message_data_is_a_quick_read_only_for_a_few_messages(sqlite_service):
    service = sqlite_service
    store = service.store
    few, many = list(range(1, 11)), list(range(1, 12))
    assert store.is_quick("message_data", (service.inbox, few, True))
    assert not store.is_quick("message_data", (service.inbox, many, True))
    assert not store.is_quick("store_flags", (service.inbox, few))

    async def go():
        await service.append(service.inbox, [(message(f"m{i}"), [], time.time()) for i in range(12)])
        small = await service.call("message_data", service.inbox, few, True)         # on the loop
        large = await service.call("message_data", service.inbox, many, True)        # on a reader thread
        return small, large

    small, large = asyncio.run(go())
    assert sorted(small) == few and sorted(large) == many
    assert small[3] == large[3]


class _NeedsTwo(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


def test_a_reply_that_would_not_cross_is_sent_as_its_text():
    ok = (1, True, {"a": 1})
    assert _portable(ok) == ok
    call_id, success, error = _portable((2, False, _NeedsTwo("x", "y")))
    assert (call_id, success) == (2, False)
    assert isinstance(error, RuntimeError) and "_NeedsTwo: x and y" in str(error)
    call_id, success, error = _portable((3, True, lambda: None))
    assert (call_id, success) == (3, False) and "can't be sent" in str(error)


def test_an_unreadable_reply_ends_that_child_and_fails_its_calls(service):
    proc: StoreProcess = service._db_process
    proc.RESTART_AFTER = 0.1

    async def go():
        await service.call("mailbox_counts", service.inbox)     # the socket is on this loop now
        child = proc._child
        pending = proc.submit("mailbox_counts", (service.inbox,), False)     # waiting on this child
        child.inbox += _HEADER.pack(5) + b"junk!"
        proc._readable(child)
        with pytest.raises(StoreProcessDied, match="can't be read"):
            await pending
        assert child.ended
        await asyncio.sleep(0.2)
        return await service.call("mailbox_counts", service.inbox)

    assert asyncio.run(go())["MESSAGES"] == 0


def test_a_call_from_another_threads_loop_is_made_on_the_owning_loop(service):
    import threading
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        # The service's socket belongs to the loop running on that thread ...
        asyncio.run_coroutine_threadsafe(service.call("create_mailbox", service.user, "A"), loop).result(10)
        assert service._db_process._loop is loop

        # ... and a call from this thread's loop is passed over to it.
        async def here():
            return await service.call("create_mailbox", service.user, "B")
        assert asyncio.run(here()).name == "B"
        assert service._db_process._loop is loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.parametrize("in_process", [True, False])
def test_a_posted_call_is_made_without_waiting_and_in_order(open_store, in_process, caplog):
    store = open_store()
    user = store.create_user("u", "h", [("INBOX", None)])
    inbox = store.get_mailbox(user.id, "INBOX").id
    service = StoreService(store, store_process=in_process)
    try:
        async def go():
            await service.append(inbox, [(message("one"), [], time.time())])
            assert service.post("claim_recent", inbox, 2) is None      # nothing to wait for
            # A call after it is made after it: the claim is in the store by then.
            info = await service.call("get_mailbox", user.id, "INBOX")
            counts = await service.call("mailbox_counts", inbox)
            return info, counts
        info, counts = asyncio.run(go())
        assert counts["RECENT"] == 0 and counts["MESSAGES"] == 1

        async def alone():
            service.post("claim_recent", inbox, 5)
            await asyncio.sleep(0.3)    # nothing else is sent: it leaves on its own
        asyncio.run(alone())
        assert store.reading().get_mailbox(user.id, "INBOX").first_recent_uid == 5

        async def failing():
            service.post("no_such_method", 1)
            await asyncio.sleep(0.3)
        asyncio.run(failing())
        assert "posted store call no_such_method failed" in caplog.text
    finally:
        service.close()


def test_small_appends_are_parsed_in_the_store_process_as_they_would_be_here(service, monkeypatch):
    parsed_here = []
    real_parse = service.parse

    async def counting(raw, binary=False):
        parsed_here.append(raw)
        return await real_parse(raw, binary)
    monkeypatch.setattr(service, "parse", counting)
    lf = b"From: a@example.com\nSubject: bare LF\n\nline one\nline two\n"
    # 8-bit with bare LFs, kept exactly (a part holding a NUL is stored base64: mime/binary.py)
    binary = b"Subject: bin\r\n\r\nraw\nbytes\x01\xff\r\n"
    garbage = bytes(range(256)) * 3

    async def go():
        one = await service.append(service.inbox, [(lf, ["\\Seen"], 1.0)])
        two = await service.append(service.inbox, [(binary, [], 2.0, True), (garbage, [], 3.0)])
        many = await service.append(service.inbox, [(message(f"bulk {i}"), [], 4.0) for i in range(9)])
        return one + two + many
    results = asyncio.run(go())
    assert [r.uid for r in results] == list(range(1, 13))
    assert len(parsed_here) == 9            # only the bulk MULTIAPPEND (over 8) was parsed here
    data = service.store.reading().message_data(service.inbox, [1, 2, 3], with_bytes=True)
    read = {uid: d.inline for uid, d in data.items()}
    assert read[1] == lf.replace(b"\n", b"\r\n")        # normalized as an APPEND is
    assert read[2] == binary                             # a ~{n} literal kept exactly
    assert read[3] == normalize_and_parse(garbage)[0]    # garbage is stored as it would be here
    assert b"bare LF" in data[1].envelope
    assert service.store.reading().mailbox_counts(service.inbox)["MESSAGES"] == 12
