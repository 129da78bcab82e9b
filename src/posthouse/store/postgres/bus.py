"""LISTEN/NOTIFY between nodes that share one PostgreSQL mail store.

Every change the PostgreSQL store commits NOTIFYs channel posthouse_changes
from inside its transaction (backend.py), so the notification goes out when,
and only if, the change commits:
  "M <origin> <mailbox id> <MODSEQ> <kind>"   a mailbox's messages changed
  "L <origin> <json>"                         a user's list of mailboxes changed
Each node LISTENs on a connection of its own (an asyncio task on the
server's event loop) and hands what others did to
StoreService.remote_wake(): an open mailbox then reads the change log from
its last MODSEQ (SharedMailbox), NOTIFY followers send STATUS or LIST. A
node's own notifications are skipped: it told its sessions when it committed.

Notifications are a wake-up, not the record: the record is the change log.
So that a lost one (a dropped connection, a node that was busy reconnecting)
delays nothing beyond the next check, every CHECK_EVERY seconds the node
reads the highestmodseq of every mailbox it follows in one query and wakes
those that moved beyond what it heard of; mailboxes gone or renamed are
told so, and a followed user's list of mailboxes that changed is read again
by its followers (NOTIFY). $POSTHOUSE_TEST_DROP_NOTIFY=1 drops every notification received
(the tests' proof that the check alone suffices).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os

import psycopg
import psycopg.sql

from ..api import MailboxChanged, MailboxGone, MailboxListChanged
from .backend import CHANNEL

log = logging.getLogger("posthouse.store")


def parse(payload: str, own: str):
    """The wake-ups in one notification's payload, and its MODSEQ news:
    (events for others' changes (empty for our own), (mailbox id, modseq) or None).
    Garbage gives ([], None)."""
    kind, _, rest = payload.partition(" ")
    origin, _, rest = rest.partition(" ")
    try:
        if kind == "M":
            mailbox, modseq, kinds = rest.split(" ")
            mailbox_id, modseq = int(mailbox), int(modseq)
            events = [] if origin == own else [MailboxChanged(mailbox_id, modseq, kinds)]
            return events, (mailbox_id, modseq)
        if kind == "L":
            change = json.loads(rest)
            if origin == own:
                return [], None
            events = [MailboxListChanged(int(change["u"]), str(change["k"]), str(change.get("n") or ""),
                                         change.get("o"), mailbox_id=change.get("m"))]
            events += [MailboxGone(int(g)) for g in change.get("g") or ()]
            return events, None
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    log.warning("a change notification that makes no sense was ignored: %r", payload[:200])
    return [], None


class ChangeBus:
    CHECK_EVERY = 1.0       # seconds between checks of the followed mailboxes' MODSEQs
    RECONNECT_MAX = 5.0     # the longest wait between attempts to connect again

    def __init__(self, service, url: str, schema: str = "mail", origin: str = ""):
        self.service = service
        self.url = url
        self.schema = schema
        self.origin = origin
        self.drop = os.environ.get("POSTHOUSE_TEST_DROP_NOTIFY") == "1"
        # Per followed mailbox: the highest MODSEQ heard of (told or checked), and its name and UIDVALIDITY.
        self._known: dict[int, int] = {}
        self._names: dict[int, tuple[str, int]] = {}
        # Per user whose list someone follows: a summary of the list and the subscriptions.
        self._lists: dict[int, tuple] = {}
        self._pending: list = []
        self._flush_soon = False
        self._task: asyncio.Task | None = None
        self._conn: psycopg.AsyncConnection | None = None
        self.heard = 0          # notifications received (for status)
        self.woken = 0          # wake-ups handed to the service

    @property
    def listening(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.closed and not conn.broken

    async def start(self) -> None:
        """Listening once this returns (so no change committed after is missed)."""
        await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="posthouse-listen")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _connect(self) -> None:
        # (Named, so that pg_stat_activity tells it from the store's connections.)
        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, application_name="posthouse-listen")
        await conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(self.schema)))
        await conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(CHANNEL)))
        self._conn = conn

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    await self._connect()
                    log.info("listening for other nodes' changes again")
                    delay = 0.1
                await self._check()
                async for notify in self._conn.notifies(timeout=self.CHECK_EVERY):
                    self._heard(notify.payload)
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as e:
                # Whatever was told meanwhile is lost: the next check finds it.
                log.warning("listening for other nodes' changes: %s; connecting again in %.1f s",
                            str(e).splitlines()[0] if str(e) else type(e).__name__, delay)
                if self._conn is not None:
                    try:
                        await self._conn.close()
                    except Exception:
                        pass
                    self._conn = None
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.RECONNECT_MAX)
            except Exception:
                log.exception("listening for other nodes' changes")
                await asyncio.sleep(self.CHECK_EVERY)

    def _heard(self, payload: str) -> None:
        self.heard += 1
        if self.drop:
            return
        events, news = parse(payload, self.origin)
        if news is not None:
            mailbox_id, modseq = news
            if self._known.get(mailbox_id, 0) < modseq:
                self._known[mailbox_id] = modseq
        if events:
            self._wake(events)

    def _wake(self, events: list) -> None:
        """Handed over once the notifications that came together are all in."""
        self._pending += events
        if not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        events, self._pending = self._pending, []
        # Of many changes to one mailbox, the last says it all: one read.
        latest: dict[int, MailboxChanged] = {}
        others = []
        for event in events:
            if isinstance(event, MailboxChanged):
                seen = latest.get(event.mailbox_id)
                if seen is None:
                    latest[event.mailbox_id] = event
                else:
                    seen.modseq = max(seen.modseq, event.modseq)
                    seen.kinds = "".join(sorted(set(seen.kinds + event.kinds)))
            else:
                others.append(event)
        wakes = list(latest.values()) + others
        self.woken += len(wakes)
        try:
            self.service.remote_wake(wakes)
        except Exception:
            log.exception("handing other nodes' changes to the sessions")

    async def _check(self) -> None:
        await self._check_mailboxes()
        await self._check_lists()

    async def _check_lists(self) -> None:
        """Each followed user's list of mailboxes and subscriptions, summed up
        (a mailbox made, deleted or renamed changes it): one that changed
        since the last check is read again by its followers (NOTIFY)."""
        users = self.service.hub.followed_users()
        for gone in set(self._lists) - users:
            del self._lists[gone]
        if not users:
            return
        rows = await (await self._conn.execute(
            "SELECT u.id, (SELECT row(count(*), max(id), sum(uidvalidity))::text FROM mailboxes m "
            "WHERE m.user_id = u.id), (SELECT row(count(*), sum(hashtext(name)))::text FROM subscriptions s "
            "WHERE s.user_id = u.id) "
            "FROM unnest(%s::bigint[]) AS u(id)", (sorted(users),))).fetchall()
        wakes = []
        for user_id, mailboxes, subscriptions in rows:
            summary = (mailboxes, subscriptions)
            before = self._lists.get(user_id)
            self._lists[user_id] = summary
            # (Newly followed: whoever follows it read the list before this check; once more.)
            if before != summary:
                wakes.append(MailboxListChanged(user_id, "changed", ""))
        if wakes:
            self.woken += len(wakes)
            self.service.remote_wake(wakes)

    async def _check_mailboxes(self) -> None:
        """Each followed mailbox's MODSEQ, name and UIDVALIDITY, against what we heard."""
        followed = self.service.hub.followed_mailboxes()
        for gone in set(self._known) - followed:
            del self._known[gone]
            self._names.pop(gone, None)
        if not followed:
            return
        rows = await (await self._conn.execute(
            "SELECT id, highestmodseq, name, uidvalidity FROM mailboxes WHERE id = ANY(%s)",
            (sorted(followed),))).fetchall()
        found = {r[0]: r[1:] for r in rows}
        wakes = []
        for mailbox_id in followed:
            row = found.get(mailbox_id)
            if row is None:
                wakes.append(MailboxGone(mailbox_id))
                self._known.pop(mailbox_id, None)
                self._names.pop(mailbox_id, None)
                continue
            modseq, name, uidvalidity = row
            named = self._names.get(mailbox_id)
            self._names[mailbox_id] = (name, uidvalidity)
            if named is not None and named != (name, uidvalidity):
                wakes.append(MailboxGone(mailbox_id))       # renamed (a new UIDVALIDITY), unheard of
                continue
            known = self._known.get(mailbox_id)
            if known is None:
                # Newly followed: whoever follows it read it at some MODSEQ; it checks.
                wakes.append(MailboxChanged(mailbox_id, modseq, ""))
            elif modseq > known:
                wakes.append(MailboxChanged(mailbox_id, modseq, "?"))
            self._known[mailbox_id] = max(modseq, known or 0)
        if wakes:
            self.woken += len(wakes)
            self.service.remote_wake(wakes)


async def start_bus(service) -> ChangeBus | None:
    """Listening for other nodes' changes, when the mail store is PostgreSQL; else None."""
    store = service.store
    if not hasattr(store, "origin") or not hasattr(store, "schema"):
        return None
    bus = ChangeBus(service, store.url, store.schema, store.origin)
    await bus.start()
    service.bus = bus      # (admin status)
    return bus
