"""A command's response tells of its own change even when the mailbox began
reading the change log (another node's wake) between the change's commit
and its events (issue 24: the cluster's deaf node never saw a \\Flagged,
because the UID STORE on an APPEND's UID found no such message)."""
from __future__ import annotations

import asyncio
import re

from posthouse.store.api import MailboxChanged, MessageAdded
from tests.conftest import raw_login


def _message(text: str) -> bytes:
    return f"From: a@example.com\r\nSubject: {text}\r\n\r\n{text}\r\n".encode()


def test_append_answers_exists_though_a_catch_up_began_before_its_event(server, user, monkeypatch):
    c = raw_login(server, user)
    service = server.ctx.service
    mailbox_id = server.call(_inbox_id(service, user[0]))
    wake_first = gate = None
    try:
        selected = c.cmd("S", "SELECT INBOX")
        exists = int(next(re.match(rb"\* (\d+) EXISTS", line)[1] for line in selected
                          if re.match(rb"\* \d+ EXISTS", line)))
        shared = server.ctx.registry.open[mailbox_id]
        gate = server.call(_event())

        def held(read):
            async def reading(*args):
                await gate.wait()       # (the catch-up's read takes its time)
                return await read(*args)
            return reading
        monkeypatch.setattr(shared, "_reader", held(shared._reader))
        if shared._changes is not None:
            monkeypatch.setattr(shared, "_changes", held(shared._changes))

        def wake_first(event):
            # Another node's wake for this very MODSEQ, heard before the commit's own event.
            if isinstance(event, MessageAdded):
                shared.apply(MailboxChanged(event.mailbox_id, event.entry.modseq, "a"))
                asyncio.get_running_loop().call_later(0.3, gate.set)
        server.loop.call_soon_threadsafe(service.hub._followers[mailbox_id].insert, 0, wake_first)
        server.call(asyncio.sleep(0))

        raw = _message("held")
        appended = c.cmd("A", b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
        assert appended[-1].startswith(b"A OK"), appended
        assert b"* %d EXISTS\r\n" % (exists + 1) in appended, appended
        uid = int(re.search(rb"APPENDUID \d+ (\d+)", appended[-1])[1])
        stored = c.cmd("T", f"UID STORE {uid} +FLAGS (\\Flagged)")
        assert any(b"FETCH" in line and b"\\Flagged" in line for line in stored), stored
    finally:
        if wake_first is not None:
            server.loop.call_soon_threadsafe(service.hub.unfollow, mailbox_id, wake_first)
        if gate is not None:
            server.loop.call_soon_threadsafe(gate.set)      # (a catch-up still held ends)
        c.close()


async def _inbox_id(service, name: str) -> int:
    user = await service.call("get_user", name)
    return (await service.call("get_mailbox", user.id, "INBOX")).id


async def _event() -> asyncio.Event:
    return asyncio.Event()
