"""Logged-in IMAP connections kept between the web app's requests, per (user,
account): opening one (TCP, maybe TLS, LOGIN or OAuth) costs more than the
whole page it serves, so a page borrows a connection and gives it back.

Bounded: at most `per_account` connections per key (a request that finds
them all busy waits for one), at most `max_idle` idle ones in all (the
oldest logged out first). Idle ones are logged out after `idle_seconds`; one
that sat idle a while gets a NOOP before it is lent (servers drop quiet
clients); one that broke while lent (ConnectionLost, a timeout, a cancelled
request mid-answer) is closed and never lent again."""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

log = logging.getLogger("posthouse.web")

PER_ACCOUNT = 3
MAX_IDLE = 200
IDLE_SECONDS = 120.0
CHECK_AFTER = 15.0       # idle longer than this: NOOP before lending it
WAIT_SECONDS = 30.0      # for a busy account's connection to come back


@dataclass
class _Slot:
    idle: list = field(default_factory=list)      # [(conn, released at)], most recent last
    lent: int = 0
    opening: int = 0
    freed: asyncio.Condition = field(default_factory=asyncio.Condition)


class PoolBusy(Exception):
    """All the account's connections stayed busy for WAIT_SECONDS."""


class ImapPool:
    def __init__(self, opener, *, per_account: int = PER_ACCOUNT, max_idle: int = MAX_IDLE,
                 idle_seconds: float = IDLE_SECONDS, check_after: float = CHECK_AFTER,
                 wait_seconds: float = WAIT_SECONDS, clock=time.monotonic):
        """opener: async (account) -> a logged-in ImapConnection."""
        self.opener = opener
        self.per_account = per_account
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self.check_after = check_after
        self.wait_seconds = wait_seconds
        self.clock = clock
        self._slots: dict[tuple, _Slot] = {}
        self._reaper: asyncio.Task | None = None
        self.opened = 0         # (counters: the tests and the logs read them)
        self.discarded = 0

    @asynccontextmanager
    async def connection(self, user: str, account):
        """`async with pool.connection(user, account) as conn:` a logged-in
        connection, given back afterwards unless it broke or the body failed
        at the connection level."""
        # (where it logs in too: an account edited, or removed and its id reused, gets new connections)
        key = (user, account.id, getattr(account, "imap_host", None), getattr(account, "imap_port", None),
               getattr(account, "login", None))
        slot = self._slots.setdefault(key, _Slot())
        conn = await self._take(slot, account)
        healthy = False
        try:
            yield conn
            healthy = True
        except BaseException as e:
            # An IMAP NO/BAD leaves the connection fine; anything else (lost, timeout, cancel) may not.
            from ..imap_client import BadResponse, NoResponse
            healthy = isinstance(e, (NoResponse, BadResponse)) or _is_http_error(e)
            raise
        finally:
            await self._give_back(key, slot, conn, healthy)

    async def _take(self, slot: _Slot, account):
        deadline = self.clock() + self.wait_seconds
        async with slot.freed:
            while True:
                while slot.idle:
                    conn, since = slot.idle.pop()
                    if conn.closed_by_server():
                        self._discard(conn)
                        continue
                    slot.lent += 1
                    if self.clock() - since > self.check_after:
                        slot.freed.release()
                        try:
                            ok = await _still_there(conn)
                        finally:
                            await slot.freed.acquire()
                        if not ok:
                            slot.lent -= 1
                            self._discard(conn)
                            continue
                    return conn
                if slot.lent + slot.opening < self.per_account:
                    slot.opening += 1
                    break
                left = deadline - self.clock()
                if left <= 0:
                    raise PoolBusy(f"all {self.per_account} connections of account {account.id} are busy")
                try:
                    await asyncio.wait_for(slot.freed.wait(), left)
                except TimeoutError:
                    pass
        try:
            conn = await self.opener(account)
        except BaseException:
            async with slot.freed:
                slot.opening -= 1
                slot.freed.notify()
            raise
        async with slot.freed:
            slot.opening -= 1
            slot.lent += 1
        self.opened += 1
        self._start_reaper()
        return conn

    async def _give_back(self, key, slot: _Slot, conn, healthy: bool) -> None:
        keep = healthy and not conn.closed_by_server()
        if keep:
            conn.take_updates()     # (news queued while lent: nobody reads it, don't let it pile up)
            keep = await _leave_mailbox(conn)
        async with slot.freed:
            slot.lent -= 1
            if keep:
                slot.idle.append((conn, self.clock()))
            slot.freed.notify()
        if not keep:
            self._discard(conn)
        self._trim()

    def _discard(self, conn) -> None:
        self.discarded += 1
        conn.close()

    def _trim(self) -> None:
        """Past max_idle idle connections in all: log out the longest idle."""
        idle = [(since, key, conn) for key, slot in self._slots.items() for conn, since in slot.idle]
        if len(idle) <= self.max_idle:
            return
        idle.sort(key=lambda t: t[0])
        for since, key, conn in idle[:len(idle) - self.max_idle]:
            self._drop(key, conn)

    def _drop(self, key, conn) -> None:
        slot = self._slots.get(key)
        if slot is not None:
            slot.idle = [(c, s) for c, s in slot.idle if c is not conn]
            if not slot.idle and not slot.lent and not slot.opening:
                self._slots.pop(key, None)
        asyncio.get_running_loop().create_task(_log_out(conn))

    def reap(self) -> int:
        """Log out the connections idle longer than idle_seconds; how many."""
        now = self.clock()
        old = [(key, conn) for key, slot in list(self._slots.items())
               for conn, since in slot.idle if now - since > self.idle_seconds]
        for key, conn in old:
            self._drop(key, conn)
        return len(old)

    def idle_count(self, user: str | None = None, account_id: int | None = None) -> int:
        return sum(len(slot.idle) for (u, a, *_), slot in self._slots.items()
                   if (user is None or u == user) and (account_id is None or a == account_id))

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, min(30.0, self.idle_seconds / 4)))
            try:
                self.reap()
            except Exception:       # (never let the reaper die of one bad connection)
                log.exception("imap pool: reaping failed")

    async def close(self) -> None:
        """Log every idle connection out (at shutdown)."""
        if self._reaper is not None:
            self._reaper.cancel()
        conns = [conn for slot in self._slots.values() for conn, _ in slot.idle]
        self._slots.clear()
        await asyncio.gather(*(_log_out(c) for c in conns), return_exceptions=True)


def _is_http_error(e: BaseException) -> bool:
    """A page's own 404/400 raised while the connection was fine."""
    from starlette.exceptions import HTTPException
    return isinstance(e, HTTPException) and e.status_code < 500


async def _leave_mailbox(conn) -> bool:
    """Idle connections wait with no mailbox selected: one left selected would
    be hung up on (BYE) at its next command if another client deleted or
    renamed that mailbox meanwhile, failing the next page. (Every page selects
    through conn.select, so conn.selected says whether there is one to leave.)
    False: the connection is not fit to keep."""
    from ..imap_client import BadResponse, NoResponse
    try:
        async with asyncio.timeout(10):
            await conn.unselect()
    except (NoResponse, BadResponse):
        conn.selected = None    # (refused: the server had none selected)
    except Exception:
        return False
    return not conn.closed_by_server()


async def _still_there(conn) -> bool:
    try:
        await asyncio.wait_for(conn.noop(), 10)
        return not conn.broken and not conn.bye
    except Exception:
        return False


async def _log_out(conn) -> None:
    try:
        await asyncio.wait_for(conn.logout(), 5)
    except Exception:
        conn.close()


def install(app) -> None:
    """The app's pool (made at its first use, over app.state.open_imap)."""
    app.state.imap_pool = None


async def close_pool(app) -> None:
    """Log the app's idle connections out (the web server's close calls it)."""
    pool = getattr(app.state, "imap_pool", None)
    if pool is not None:
        app.state.imap_pool = None
        await pool.close()


def pool_of(app) -> ImapPool | None:
    if getattr(app.state, "imap_pool", None) is None and getattr(app.state, "open_imap", None) is not None:
        app.state.imap_pool = ImapPool(app.state.open_imap)
    return getattr(app.state, "imap_pool", None)
