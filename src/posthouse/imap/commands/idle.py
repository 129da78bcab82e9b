"""IDLE (RFC 2177): updates are pushed as they happen until the client says DONE.

An idling session costs no task of its own beyond its socket read: the view
calls back on a change, and only then is a short push task started.
"""
from __future__ import annotations

import asyncio

from ..errors import bad
from ..protocol.reader import RawLine
from ..session import ANSWERED, LOGOUT


class _Pusher:
    """Sends a view's changes to an idling client, one push at a time."""

    def __init__(self, session):
        self.session = session
        self.task: asyncio.Task | None = None
        self.again = False

    def kick(self) -> None:
        if self.task is None:
            self.task = asyncio.ensure_future(self._push())
        else:
            self.again = True

    async def _push(self) -> None:
        session = self.session
        try:
            while True:
                self.again = False
                await session.flush_updates(True)
                await session.conn.drain()
                if not self.again or session.state == LOGOUT:
                    return
        finally:
            self.task = None

    async def finish(self) -> None:
        if self.task is not None:
            await asyncio.shield(self.task)


async def idle(session, cmd):
    session.args(cmd).end()
    conn = session.conn
    await session.flush_updates(True)
    conn.write(b"+ idling\r\n")
    await conn.drain()
    conn.reader.raw_mode = True
    view = session.view
    pusher = _Pusher(session)
    session.idle_kick = pusher.kick      # NOTIFY's news comes this way too
    if view is not None:
        view.listener = pusher.kick
        if view.added or view.expunged or view.flag_changes or view.gone:
            pusher.kick()       # changed between the flush above and now
    notifier = session.notifier
    if notifier is not None and (notifier.pending_lines or notifier.pending_status):
        pusher.kick()
    try:
        try:
            event = await asyncio.wait_for(conn.next_event(), session.ctx.config.idle_timeout)
        except asyncio.TimeoutError:
            conn.write(b"* BYE IDLE timed out\r\n")
            conn.close()
            await session.close()
            return ANSWERED
    finally:
        session.idle_kick = None
        if view is not None:
            view.listener = None
        await pusher.finish()
    if event is None or session.state == LOGOUT:
        await session.close()
        return ANSWERED
    if isinstance(event, RawLine) and event.line.strip().upper() == b"DONE":
        return "IDLE terminated"
    raise bad("Expected DONE")
