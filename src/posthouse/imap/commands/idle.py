"""IDLE (RFC 2177): updates are pushed as they happen until the client says DONE."""
from __future__ import annotations

import asyncio

from ..errors import bad
from ..protocol.reader import RawLine
from ..session import ANSWERED


async def idle(session, cmd):
    session.args(cmd).end()
    conn = session.conn
    await session.flush_updates(True)
    conn.write(b"+ idling\r\n")
    await conn.drain()
    conn.reader.raw_mode = True
    read = asyncio.ensure_future(conn.next_event())
    timeout = session.ctx.config.idle_timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            waiters = {read}
            wake = None
            if session.view is not None:
                wake = asyncio.ensure_future(session.view.wakeup.wait())
                waiters.add(wake)
            remaining = deadline - loop.time()
            done, _ = await asyncio.wait(waiters, timeout=max(0.0, remaining),
                                         return_when=asyncio.FIRST_COMPLETED)
            if wake is not None and not wake.done():
                wake.cancel()
            if not done:
                conn.write(b"* BYE IDLE timed out\r\n")
                conn.close()
                await session.close()
                return ANSWERED
            if wake is not None and wake in done:
                await session.flush_updates(True)
                await conn.drain()
                if session.state == "logout":
                    return ANSWERED
            if read in done:
                event = read.result()
                if event is None:
                    await session.close()
                    return ANSWERED
                if isinstance(event, RawLine) and event.line.strip().upper() == b"DONE":
                    return "IDLE terminated"
                raise bad("Expected DONE")
    finally:
        if not read.done():
            read.cancel()
