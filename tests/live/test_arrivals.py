"""Mail answered from the arrivals journal: there for the next command,
filed once and only once across crashes and failures, quotas kept exactly."""
from __future__ import annotations

import asyncio
import functools
import imaplib
import os
import re
import smtplib
import socket
import threading
import time

import pytest

from posthouse.delivery.arrivals import Arrivals
from posthouse.delivery.deliver import Deliverer
from posthouse.delivery.journal import Journal, encode_record

from ..conftest import RunningServer
from .test_durability import _free_port, _start, kill_amid


def message(marker: str) -> bytes:
    return (f"From: s@example.org\r\nSubject: {marker}\r\nX-Marker: {marker}\r\n"
            f"Message-ID: <{marker}@example.org>\r\n\r\nbody of {marker}\r\n").encode()


def deliver(port: int, recipient: str, *markers: str) -> list[tuple[int, bytes]]:
    """Each message in its own transaction: the reply to each DATA."""
    replies = []
    with smtplib.LMTP("127.0.0.1", port, timeout=20) as lmtp:
        lmtp.ehlo_or_helo_if_needed = lambda: None
        lmtp.docmd("LHLO", "client.test")
        for marker in markers:
            assert lmtp.docmd("MAIL", "FROM:<s@example.org>")[0] == 250
            code, text = lmtp.docmd("RCPT", f"TO:<{recipient}>")
            if code != 250:
                replies.append((code, text))
                lmtp.docmd("RSET")
                continue
            assert lmtp.docmd("DATA")[0] == 354
            lmtp.send(message(marker) + b".\r\n")
            replies.append(lmtp.getreply())
    return replies


def markers_in(port: int, user) -> list[str]:
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(*user)
    c.select("INBOX")
    _typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (X-MARKER)])")
    c.logout()
    return sorted(item[1].split(b":", 1)[1].strip().decode() for item in data if isinstance(item, tuple))


def segments(data_dir) -> list[str]:
    path = os.path.join(data_dir, "arrivals")
    return sorted(n for n in os.listdir(path) if n.endswith(".journal")) if os.path.isdir(path) else []


def test_answered_mail_is_there_for_the_next_command_even_while_filing_lags(server, user, monkeypatch):
    route = Deliverer.route_arrival

    async def slow_route(self, arrival):
        await asyncio.sleep(0.4)
        return await route(self, arrival)
    monkeypatch.setattr(Deliverer, "route_arrival", slow_route)
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    assert deliver(server.lmtp_port, user[0], "lag-1")[0][0] == 250
    typ, data = c.select("INBOX")        # waits for the filing, doesn't miss it
    assert typ == "OK" and data == [b"1"]
    c.logout()


@pytest.mark.parametrize("error, reply", [(28, (452, b"4.3.1")), (5, (451, b"4.3.0"))])
def test_a_journal_that_cant_be_written_is_a_temporary_failure(server, user, monkeypatch, error, reply):
    def broken(self, batch):
        raise OSError(error, os.strerror(error))
    monkeypatch.setattr(Journal, "_write", broken)
    code, text = deliver(server.lmtp_port, user[0], "nospace")[0]
    assert (code, text[:5]) == reply     # no room: 452 4.3.1 (RFC 3463 mail system full)
    monkeypatch.undo()
    assert deliver(server.lmtp_port, user[0], "space-again")[0][0] == 250
    assert markers_in(server.port, user) == ["space-again"]


def test_a_filing_that_fails_is_tried_again(server, user, monkeypatch):
    monkeypatch.setattr(Arrivals, "RETRY_AFTER", 0.05)
    route = Deliverer.route_arrival
    failures = []

    async def failing_once(self, arrival):
        if not failures:
            failures.append(arrival.seq)
            raise RuntimeError("the store is away")
        return await route(self, arrival)
    monkeypatch.setattr(Deliverer, "route_arrival", failing_once)
    assert deliver(server.lmtp_port, user[0], "retried")[0][0] == 250
    assert markers_in(server.port, user) == ["retried"] and failures


def test_quota_is_exact_while_arrivals_wait_to_be_filed(server, user, monkeypatch):
    server.call(server.ctx.service.call("set_quota", user[0], None, 3))
    route = Deliverer.route_arrival

    async def slow_route(self, arrival):
        await asyncio.sleep(0.05)
        return await route(self, arrival)
    monkeypatch.setattr(Deliverer, "route_arrival", slow_route)
    replies = deliver(server.lmtp_port, user[0], *[f"q{n}" for n in range(5)])
    assert [code for code, _text in replies] == [250, 250, 250, 552, 552]
    assert markers_in(server.port, user) == ["q0", "q1", "q2"]


def test_mail_answered_but_not_filed_is_filed_once_at_the_next_start(tmp_path, monkeypatch):
    data = str(tmp_path / "data")
    srv = RunningServer(data)
    user = srv.add_user()
    assert deliver(srv.lmtp_port, user[0], "before")[0][0] == 250
    stuck = threading.Event()

    async def never(self, arrival):
        stuck.set()
        await asyncio.Event().wait()
    monkeypatch.setattr(Deliverer, "route_arrival", never)
    replies = deliver(srv.lmtp_port, user[0], "unfiled-1", "unfiled-2")
    assert [code for code, _t in replies] == [250, 250] and stuck.wait(5)
    arrivals = srv.ctx.deliverer.arrivals
    arrivals.close = functools.partial(arrivals.close, timeout=0.2)     # a stop that can't wait: as a crash
    srv.stop()
    assert segments(data)       # the records stay
    monkeypatch.undo()

    again = RunningServer(data)
    try:
        assert markers_in(again.port, user) == ["before", "unfiled-1", "unfiled-2"]
    finally:
        again.stop()
    assert segments(data) == []     # all filed: the journal is emptied
    third = RunningServer(data)     # and nothing is filed twice by another start
    try:
        assert markers_in(third.port, user) == ["before", "unfiled-1", "unfiled-2"]
    finally:
        third.stop()


def test_records_already_filed_are_not_filed_again(tmp_path):
    """A crash after the filing's commit but before the journal's segment
    was dropped: the records are there at the next start, and skipped."""
    data = str(tmp_path / "data")
    srv = RunningServer(data)
    user = srv.add_user()
    assert [c for c, _t in deliver(srv.lmtp_port, user[0], "a", "b", "c")] == [250, 250, 250]
    assert markers_in(srv.port, user) == ["a", "b", "c"]
    saved = {}
    for name in segments(data):
        with open(os.path.join(data, "arrivals", name), "rb") as f:
            saved[name] = f.read()
    assert saved
    srv.stop()
    for name, content in saved.items():     # the segments come back, as if never dropped
        with open(os.path.join(data, "arrivals", name), "wb") as f:
            f.write(content)
    again = RunningServer(data)
    try:
        assert markers_in(again.port, user) == ["a", "b", "c"]
        assert deliver(again.lmtp_port, user[0], "d")[0][0] == 250
        assert markers_in(again.port, user) == ["a", "b", "c", "d"]
    finally:
        again.stop()


def test_sigkill_during_lmtp_deliveries_loses_and_duplicates_nothing(tmp_path):
    import subprocess
    import sys
    data = str(tmp_path / "data")
    subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", data, "user", "add", "kill",
                    "--password-stdin"], input=b"pw\n", check=True, stdout=subprocess.DEVNULL)
    port, tls_port, lmtp_port = _free_port(), _free_port(), _free_port()
    proc = _start(data, port, tls_port, lmtp_port)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(n):
        try:
            with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=10) as lmtp:
                for i in range(5000):
                    if stop.is_set():
                        return
                    marker = f"k{n}-{i}"
                    if lmtp.sendmail("s@example.org", ["kill"], message(marker)):
                        return
                    with lock:
                        acked.append(marker)
        except (OSError, smtplib.SMTPException):
            return      # cut off by the kill: that one was never acknowledged

    kill_amid(proc, sender, 2, acked, 150, stop)
    assert len(acked) >= 50, "too few deliveries acknowledged before the kill"

    proc = _start(data, port, tls_port, lmtp_port)
    try:
        found = markers_in(port, ("kill", "pw"))
    finally:
        proc.terminate()
        proc.wait(10)
    assert len(found) == len(set(found)), "a message was filed twice"
    missing = set(acked) - set(found)
    assert not missing, f"acknowledged and lost: {sorted(missing)[:5]}"
    assert all(re.fullmatch(r"k\d-\d+", m) for m in found)


def test_garbage_in_the_journal_directory_costs_no_start(tmp_path):
    data = str(tmp_path / "data")
    journal_dir = os.path.join(data, "arrivals")
    os.makedirs(os.path.join(journal_dir, "0000000000000009.journal"))     # a directory by that name
    with open(os.path.join(journal_dir, "0000000000000001.journal"), "wb") as f:
        f.write(os.urandom(5000))
    with open(os.path.join(journal_dir, "0000000000000002.journal"), "wb") as f:
        # A whole record whose payload is no arrival, then a torn one.
        f.write(encode_record(2, b"\x00\x00\x00\x03{}x") + encode_record(3, b"cut")[:10])
    with open(os.path.join(journal_dir, "notes.txt"), "w") as f:
        f.write("not a segment")
    srv = RunningServer(data)
    try:
        user = srv.add_user()
        assert deliver(srv.lmtp_port, user[0], "after-garbage")[0][0] == 250
        assert markers_in(srv.port, user) == ["after-garbage"]
    finally:
        srv.stop()


def test_a_sender_gone_while_its_record_is_written_still_has_it_filed(server, user, monkeypatch):
    """The record is on disk though nobody heard "250": it is filed (the
    sender will send again, as after any lost reply), and the user's
    sessions are not left waiting for it."""
    write = Journal._write
    writing = threading.Event()

    def slow_write(self, batch):
        writing.set()
        time.sleep(0.3)
        return write(self, batch)
    monkeypatch.setattr(Journal, "_write", slow_write)
    raw = socket.create_connection((server.host, server.lmtp_port), timeout=10)
    raw.recv(1000)
    raw.sendall(f"LHLO me\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<{user[0]}>\r\nDATA\r\n".encode())
    seen = b""
    while b"354" not in seen:
        seen += raw.recv(1000)
    raw.sendall(message("gone") + b".\r\n")
    assert writing.wait(5)
    raw.close()
    monkeypatch.undo()
    assert markers_in(server.port, user) == ["gone"]
    arrivals = server.ctx.deliverer.arrivals
    assert user_id_of(server, user) not in arrivals.pending


def user_id_of(server, user) -> int:
    return server.call(server.ctx.service.call("get_user", user[0])).id


def test_an_arrival_whose_routing_keeps_failing_goes_to_inbox(server, user, monkeypatch):
    monkeypatch.setattr(Arrivals, "RETRY_AFTER", 0.05)
    server.call(server.ctx.service.call("put_script", user_id_of(server, user), "s",
                                        'require "fileinto"; fileinto "Archive";'))
    server.call(server.ctx.service.call("activate_script", user_id_of(server, user), "s"))
    attempts = []

    async def broken(self, arrival):
        attempts.append(arrival.seq)
        raise RuntimeError("routing is broken")
    monkeypatch.setattr(Deliverer, "route_arrival", broken)
    assert deliver(server.lmtp_port, user[0], "kept-anyway")[0][0] == 250
    assert markers_in(server.port, user) == ["kept-anyway"]      # INBOX, not Archive: no Sieve
    assert len(attempts) == Arrivals.PLAIN_AFTER


def test_answers_wait_for_room_when_filing_falls_behind(server, user, monkeypatch):
    """More than MAX_WAITING accepted and unfiled: the next answer waits for
    the filing to catch up, and nothing is lost or refused meanwhile."""
    monkeypatch.setattr(Arrivals, "MAX_WAITING", 2)
    monkeypatch.setattr(Arrivals, "BATCH", 1)
    route = Deliverer.route_arrival
    arrivals = server.ctx.deliverer.arrivals
    most_waiting = []

    async def slow_route(self, arrival):
        most_waiting.append(len(arrivals._queue))
        await asyncio.sleep(0.05)
        return await route(self, arrival)
    monkeypatch.setattr(Deliverer, "route_arrival", slow_route)
    markers = [f"bp{n}" for n in range(8)]
    threads = [threading.Thread(target=deliver, args=(server.lmtp_port, user[0], m)) for m in markers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert markers_in(server.port, user) == sorted(markers)
    assert max(most_waiting) <= Arrivals.MAX_WAITING


def _failing_filings(monkeypatch, service, how_many: int) -> list[int]:
    """The next how_many file_arrivals calls fail as a full disk does."""
    import sqlite3
    call = service.call
    failed = []

    async def call_or_fail(method, *args):
        if method == "file_arrivals" and len(failed) < how_many:
            failed.append(args[0][0][0])
            raise sqlite3.OperationalError("database or disk is full")
        return await call(method, *args)
    monkeypatch.setattr(service, "call", call_or_fail)
    return failed


def test_filings_the_store_failed_again_and_again_resume_promptly(server, user, monkeypatch):
    # Retries for the store's failures stay short (capped), however many there were:
    # here a dozen, which doubling from RETRY_AFTER alone would stretch to 40 s.
    monkeypatch.setattr(Arrivals, "RETRY_AFTER", 0.01)
    monkeypatch.setattr(Arrivals, "STORE_RETRY_MAX", 0.05, raising=False)
    failed = _failing_filings(monkeypatch, server.ctx.service, 12)
    assert deliver(server.lmtp_port, user[0], "full-then-free")[0][0] == 250
    assert markers_in(server.port, user) == ["full-then-free"]
    assert len(failed) == 12


def test_a_filing_that_works_brings_the_ones_waiting_for_the_store_along(server, user, monkeypatch):
    # The one that failed would wait a minute; the next filing that works takes it along.
    monkeypatch.setattr(Arrivals, "RETRY_AFTER", 60.0)
    monkeypatch.setattr(Arrivals, "STORE_RETRY_MAX", 60.0, raising=False)
    failed = _failing_filings(monkeypatch, server.ctx.service, 1)
    assert deliver(server.lmtp_port, user[0], "waited")[0][0] == 250
    deadline = time.monotonic() + 10
    while not failed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert failed
    assert deliver(server.lmtp_port, user[0], "works")[0][0] == 250
    assert markers_in(server.port, user) == ["waited", "works"]
