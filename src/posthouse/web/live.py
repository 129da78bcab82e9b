"""Live updates for the pages: an in-process hub of changes per (account,
folder). The tracker feeds it (its fact sink wrapped by `sink()`: each batch
is published after the CRM has applied it, so a page that reloads on the news
sees it); the pages listen through server-sent events (pages/events.py).

An account this process's tracker doesn't follow (tracker off, run as a
separate `posthouse tracker`, or the account not leased here) gets the web
app's own watcher while someone listens: one IMAP connection per account,
NOTIFY where the server offers it, else IDLE on the folders listened to,
closed when the last listener leaves.

No fastapi here: `posthouse serve` wires the hub whether or not the web app runs."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..tracker.facts import FolderRenamed, FolderReset, MessageChanged, MessageGone, MessageSeen

log = logging.getLogger("posthouse.web.live")

MAX_LISTENERS_PER_USER = 16      # browser tabs (each holds one connection open)
MAX_PENDING_FOLDERS = 200        # a listener further behind than this is told "everything changed"
ALL = "*"                        # the folder name meaning "anything may have changed"


def changes_of(facts) -> dict[tuple[int, str], set[str]]:
    """(account_id, folder) -> kinds of change ("new", "flags", "gone", "folder")."""
    out: dict[tuple[int, str], set[str]] = {}
    for fact in facts:
        if isinstance(fact, MessageSeen):
            out.setdefault((fact.place.account_id, fact.place.folder), set()).add("new")
        elif isinstance(fact, MessageChanged):
            out.setdefault((fact.place.account_id, fact.place.folder), set()).add("flags")
        elif isinstance(fact, MessageGone):
            out.setdefault((fact.place.account_id, fact.place.folder), set()).add("gone")
        elif isinstance(fact, FolderReset):
            out.setdefault((fact.account_id, fact.folder), set()).add("folder")
        elif isinstance(fact, FolderRenamed):
            out.setdefault((fact.account_id, fact.old_name), set()).add("folder")
            out.setdefault((fact.account_id, fact.new_name), set()).add("folder")
    return out


class PublishingSink:
    """The tracker's sink: the CRM's apply, then the hub told what changed
    (only after apply returned: a failed batch publishes nothing)."""

    def __init__(self, sink, hub: "Hub"):
        self.sink, self.hub = sink, hub

    def apply(self, facts) -> None:
        self.sink.apply(facts)
        for (account_id, folder), kinds in changes_of(facts).items():
            self.hub.publish(account_id, folder, kinds)

    def __getattr__(self, name):        # anything else the tracker asks of the CRM
        return getattr(self.sink, name)


@dataclass(eq=False)
class Listener:
    user: str
    account_id: int
    folders: frozenset[str]                                 # watched by the fallback watcher (IDLE)
    pending: dict[str, set[str]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def take(self) -> dict[str, set[str]]:
        pending, self.pending = self.pending, {}
        self.wake.clear()
        return pending

    def _add(self, folder: str, kinds: set[str]) -> None:
        if ALL in self.pending:
            pass        # (already told: anything may have changed)
        elif len(self.pending) >= MAX_PENDING_FOLDERS and folder not in self.pending:
            self.pending = {ALL: {"folder"}}
        else:
            self.pending.setdefault(folder, set()).update(kinds)
        self.wake.set()


class TooManyListeners(Exception):
    pass


class Hub:
    """publish() from any thread; listen() on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *, open_imap=None, max_per_user: int = MAX_LISTENERS_PER_USER,
                 watch_check: float = 5.0, watch_retry: float = 10.0, idle_renew: float = 25 * 60):
        self.loop = loop
        self.open_imap = open_imap              # async (account) -> ImapConnection, for the fallback watcher
        self.max_per_user = max_per_user
        self.watch_check, self.watch_retry, self.idle_renew = watch_check, watch_retry, idle_renew
        self.followed: Callable[[int], bool] = lambda account_id: False
        self._listeners: dict[int, set[Listener]] = {}
        self._watchers: dict[int, asyncio.Task] = {}
        self.closed = False

    # ------------------------------------------------------------ wiring

    @classmethod
    def for_serve(cls, side, loop) -> "Hub":
        """The hub of `posthouse serve`, its watcher opening accounts as the tracker does."""
        from ..accounts.session import open_session
        return cls(loop, open_imap=lambda account: open_session(side.accounts, account))

    def sink(self, crm) -> PublishingSink:
        return PublishingSink(crm, self)

    def follow(self, tracker) -> None:
        """Accounts this tracker has a worker for are fed by its facts."""
        def followed(account_id: int) -> bool:
            entry = tracker.workers.get(account_id)
            return entry is not None and not entry[1].done() and entry[0].state != "needs_attention"
        self.followed = followed

    # ------------------------------------------------------------ publishing

    def publish(self, account_id: int, folder: str, kinds: Iterable[str] = ("folder",)) -> None:
        kinds = set(kinds)
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._deliver(account_id, folder, kinds)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, account_id, folder, kinds)

    def _deliver(self, account_id: int, folder: str, kinds: set[str]) -> None:
        for listener in self._listeners.get(account_id, ()):
            listener._add(folder, kinds)

    # ------------------------------------------------------------ listening

    def count(self, user: str) -> int:
        return sum(1 for ls in self._listeners.values() for l in ls if l.user == user)

    def listen(self, user: str, account, folders: Iterable[str] = ("INBOX",)) -> Listener:
        """A new listener (TooManyListeners past the per-user bound); end it with leave()."""
        if self.closed:
            raise TooManyListeners("the server is stopping")
        if self.count(user) >= self.max_per_user:
            raise TooManyListeners(f"at most {self.max_per_user} live connections per user")
        listener = Listener(user, account.id, frozenset(folders) or frozenset({"INBOX"}))
        self._listeners.setdefault(account.id, set()).add(listener)
        if account.id not in self._watchers and self.open_imap is not None:
            self._watchers[account.id] = asyncio.get_running_loop().create_task(
                self._watch(account), name=f"live-watch-{account.id}")
        return listener

    def leave(self, listener: Listener) -> None:
        listener.closed = True
        listener.wake.set()
        listeners = self._listeners.get(listener.account_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.account_id]
                task = self._watchers.pop(listener.account_id, None)
                if task is not None:
                    task.cancel()

    def watched_folders(self, account_id: int) -> set[str]:
        return {f for l in self._listeners.get(account_id, ()) for f in l.folders}

    async def close(self) -> None:
        """Every stream ends (so the web server stops at once), every watcher too."""
        self.closed = True
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                self.leave(listener)
        tasks = list(self._watchers.values())
        self._watchers.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ the fallback watcher

    async def _watch(self, account) -> None:
        """While someone listens: nothing to do while the tracker follows the
        account; else a connection of our own reporting the server's news."""
        while True:
            if self.followed(account.id):
                await asyncio.sleep(self.watch_check)
                continue
            conn = None
            try:
                conn = await self.open_imap(account)
                await Watcher(self, account.id, conn).run()
            except asyncio.CancelledError:
                raise
            except Exception as e:      # the server's trouble: say so once, try again later
                log.info("live updates for account %s: watcher stopped (%s); again in %.0fs",
                         account.id, e, self.watch_retry)
                await asyncio.sleep(self.watch_retry)
            finally:
                if conn is not None:
                    conn.close()


NOTIFY_SPEC = "SET (personal (MessageNew MessageExpunge FlagChange MailboxName))"


class Watcher:
    """One connection's news -> hub.publish, until the tracker takes over."""

    def __init__(self, hub: Hub, account_id: int, conn):
        self.hub, self.account_id, self.conn = hub, account_id, conn

    async def run(self) -> None:
        if "NOTIFY" in self.conn.capabilities:
            await self._notify()
        else:
            await self._idle()

    def _publish_updates(self, updates, selected: str | None) -> None:
        from ..imap.protocol.responses import Exists, Expunge, Fetch, ListEntry, Status, StatusResponse, Vanished
        from ..imap_client.errors import ConnectionLost
        for u in updates:
            if isinstance(u, StatusResponse) and u.status == "BYE":
                raise ConnectionLost("connection", f"the server said BYE: {u.text}")
            if isinstance(u, Status):
                name = "INBOX" if u.mailbox.upper() == "INBOX" else u.mailbox
                self.hub.publish(self.account_id, name, ("folder",))
            elif isinstance(u, ListEntry):
                self.hub.publish(self.account_id, ALL, ("folder",))
            elif isinstance(u, Fetch) and selected:
                self.hub.publish(self.account_id, selected, ("flags",))
            elif isinstance(u, (Exists, Expunge, Vanished)) and selected:
                self.hub.publish(self.account_id, selected, ("folder",))

    async def _notify(self) -> None:
        # Nothing selected: every change anywhere arrives as STATUS (RFC 5465).
        await self.conn.notify(NOTIFY_SPEC)
        last = time.monotonic()
        while not self.hub.followed(self.account_id):
            updates = await self.conn.wait_updates(self.hub.watch_check)
            self._publish_updates(updates, None)
            if time.monotonic() - last >= self.hub.idle_renew:
                await self.conn.noop()
                last = time.monotonic()

    async def _idle(self) -> None:
        """IDLE on the first folder listened to (IDLE watches one folder)."""
        folder = sorted(self.hub.watched_folders(self.account_id) or {"INBOX"})[0]
        await self.conn.select(folder, readonly=True)
        while not self.hub.followed(self.account_id):
            renew_at = time.monotonic() + self.hub.idle_renew
            news = []
            async with self.conn.idle() as idle:
                while not news and not idle.ended:
                    left = min(renew_at - time.monotonic(), self.hub.watch_check)
                    if left <= 0:
                        break
                    news = await idle.wait(left)
                    if not news and self.hub.followed(self.account_id):
                        break
            news += self.conn.take_updates()
            self._publish_updates(news, folder)
            wanted = sorted(self.hub.watched_folders(self.account_id) or {"INBOX"})[0]
            if wanted != folder:
                folder = wanted
                await self.conn.select(folder, readonly=True)
