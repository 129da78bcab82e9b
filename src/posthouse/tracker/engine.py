"""The tracker: one asyncio task per account it holds the lease of.

A worker connects (accounts' open_session), lists the folders, brings each
up to date (INBOX and Sent first; folder_sync.py), then waits for news: NOTIFY
where the server offers it, else IDLE on INBOX re-issued every `idle_renew`
seconds plus a STATUS sweep of the other folders every `sweep_interval`.
Errors back off with jitter; a failed login marks the account
'needs_attention' and stops; [UNAVAILABLE] and [LIMIT] wait longer.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from dataclasses import dataclass

from ..imap.protocol.responses import Exists, Expunge, Fetch, ListEntry, Status, StatusResponse, Vanished
from ..imap_client.connection import TEMPORARY
from ..imap_client.errors import ConnectionLost, ImapError, LoginFailed, NoResponse
from .cursors import Cursors, FolderState
from .facts import FolderRenamed, MessageGone
from .folder_sync import FolderSync
from .leases import Leases

log = logging.getLogger("posthouse.tracker")

NOTIFY_SPEC = ("SET (selected (MessageNew MessageExpunge FlagChange)) "
               "(personal (MessageNew MessageExpunge FlagChange MailboxName))")


@dataclass
class Options:
    batch_size: int = 100
    idle_renew: float = 25 * 60         # re-issue IDLE before servers' 30-minute timeout
    sweep_interval: float = 5 * 60      # STATUS of the other folders (IDLE), full pass (NOTIFY)
    lease_seconds: float = 60.0
    poll_interval: float = 10.0         # how often leases are renewed and accounts looked for
    backoff_base: float = 2.0
    backoff_max: float = 15 * 60
    busy_backoff: float = 60.0          # at least this long after [UNAVAILABLE] / [LIMIT]
    use_notify: bool = True


def options_from_config(config) -> Options:
    return Options(batch_size=config.tracker_batch_size, idle_renew=config.tracker_idle_renew,
                   sweep_interval=config.tracker_sweep_interval, poll_interval=config.tracker_poll_interval)


class AccountWorker:
    """Follows one account until cancelled or its login fails."""

    def __init__(self, tracker: "Tracker", account):
        self.tracker = tracker
        self.account = account
        self.account_id = account.id
        self.since = getattr(account, "since", None)
        self.options = tracker.options
        self.batch_size = tracker.options.batch_size
        self.conn = None
        self.folders: dict[str, FolderState] = {}
        self.flags_cache: dict[str, dict] = {}
        self.skipped: set[str] = set()      # folders the server refused to open (logged once)
        self.state = "starting"
        self.last_error: str | None = None
        self.failures = 0

    # The context FolderSync works in.
    async def apply(self, facts) -> None:
        if facts:
            await asyncio.to_thread(self.tracker.sink.apply, facts)

    async def save(self, state: FolderState, log_line=None) -> None:
        await asyncio.to_thread(self.tracker.cursors.save, state, log_line)

    async def log(self, level: str, text: str) -> None:
        getattr(log, "error" if level == "error" else "warning" if level == "warning" else "info")(
            "account %s: %s", self.account_id, text)
        await asyncio.to_thread(self.tracker.cursors.log, self.account_id, level, text)

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        while True:
            try:
                self.state = "connecting"
                self.conn = await self.tracker.open_session(self.tracker.accounts, self.account)
                self.failures = 0
                await self._follow()
            except LoginFailed as e:
                reason = f"login failed: {e.text or e.code or 'refused'}"
                self.state = "needs_attention"
                self.last_error = reason
                await self.log("error", reason + "; not retrying until the account is fixed")
                await asyncio.to_thread(self.tracker.accounts.set_state, self.account_id, "needs_attention", reason)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:      # ImapError, OSError, a failing sink: back off, resume from the cursors
                if not isinstance(e, (ImapError, OSError)):
                    log.exception("account %s: unexpected error", self.account_id)
                self.failures += 1
                self.last_error = str(e)
                busy = isinstance(e, NoResponse) and e.code in TEMPORARY
                delay = min(self.options.backoff_max, self.options.backoff_base * 2 ** min(self.failures - 1, 20))
                if busy:
                    delay = max(delay, self.options.busy_backoff)
                delay *= random.uniform(0.5, 1.5)
                self.state = "backing_off"
                await self.log("warning", f"{e}; trying again in {delay:.1f}s")
                await asyncio.sleep(delay)
            finally:
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None

    async def _follow(self) -> None:
        self.state = "syncing"
        self.folders = await asyncio.to_thread(self.tracker.cursors.load, self.account_id)
        notify = self.options.use_notify and "NOTIFY" in self.conn.capabilities
        if notify:
            # Before the first pass, so that nothing changed during it goes unnoticed.
            await self.conn.notify(NOTIFY_SPEC)
        await self._refresh_folders()
        await self._sync_all()
        self.state = "following"
        if notify:
            await self._notify_loop()
        else:
            await self._idle_loop()

    def _order(self, names) -> list[str]:
        def rank(name):
            st = self.folders.get(name)
            if name == "INBOX":
                return (0, name)
            if st is not None and st.special_use == "\\Sent":
                return (1, name)
            return (2, name)
        return sorted(names, key=rank)

    async def _sync_all(self) -> None:
        for name in self._order(list(self.folders)):
            await self._sync_folder(name)

    async def _sync_folder(self, name: str) -> None:
        state = self.folders.get(name)
        if state is None:
            return
        try:
            await FolderSync(self, state).run()
        except NoResponse as e:
            if e.code in TEMPORARY:
                raise                               # the server's trouble: back off
            if e.code == "NONEXISTENT":
                await self._refresh_folders()       # deleted under us
                return
            # One folder the server won't open must not stop the others.
            if name not in self.skipped:
                self.skipped.add(name)
                await self.log("warning", f"folder {name!r} skipped: {e}")

    # ------------------------------------------------------------ folders

    async def _refresh_folders(self) -> set[str]:
        """Folders appearing (a cursor each), renamed (same UIDVALIDITY under
        a new name: FolderRenamed) or deleted (MessageGone for what was there).
        Returns the names that are new or renamed: they need a sync."""
        listed = {f.name: f for f in await self.conn.list_folders() if f.selectable}
        missing = [st for name, st in self.folders.items() if name not in listed]
        new = [name for name in listed if name not in self.folders]
        by_validity: dict[int, str] = {}
        fresh: set[str] = set(new)
        if missing and new:
            for name in new:
                try:
                    uv = (await self.conn.status(name, ("UIDVALIDITY",))).get("UIDVALIDITY")
                except NoResponse:
                    continue
                if uv is not None:
                    by_validity[uv] = name
        for st in missing:
            new_name = by_validity.pop(st.uidvalidity, None) if st.uidvalidity is not None else None
            if new_name is not None:
                await self.apply([FolderRenamed(self.account_id, st.name, new_name)])
                old = st.name
                del self.folders[old]
                st.name = new_name
                st.special_use = _special(listed[new_name])
                self.folders[new_name] = st
                self.flags_cache.pop(old, None)
                await self.save(st, ("info", f"folder {old!r} renamed to {new_name!r}"))
                new.remove(new_name)
                fresh.add(new_name)
                continue
            known = sorted(st.known)
            for i in range(0, len(known), 1000):
                await self.apply([MessageGone(_place(st, uid)) for uid in known[i:i + 1000]])
            await asyncio.to_thread(self.tracker.cursors.remove, st,
                                    ("info", f"folder {st.name!r} is gone from the server"))
            del self.folders[st.name]
            self.flags_cache.pop(st.name, None)
        for name in new:
            st = FolderState(self.account_id, name, special_use=_special(listed[name]))
            self.folders[name] = st
            await self.save(st)
        for name, folder in listed.items():
            special = _special(folder)
            st = self.folders[name]
            if st.special_use != special:
                st.special_use = special
                await self.save(st)
        return fresh

    # ------------------------------------------------------------ push

    async def _notify_loop(self) -> None:
        """Wait for NOTIFY's news with no folder selected, so that every
        change arrives as a STATUS (some servers report changes to the
        selected folder only at the next command)."""
        next_sweep = time.monotonic() + self.options.sweep_interval
        last_command = time.monotonic()
        pending = await self._settle(set(self.folders))
        while True:
            updates = []
            if not pending:
                wait = max(0.0, min(next_sweep, last_command + self.options.idle_renew) - time.monotonic())
                updates = await self.conn.wait_updates(wait)
            dirty, relist = self._dirty(updates)
            dirty |= pending
            if relist:
                dirty |= await self._refresh_folders()
            for name in self._order(dirty):
                await self._sync_folder(name)
            pending = await self._settle(dirty) if (dirty or relist) else set()
            if dirty or relist:
                last_command = time.monotonic()
            now = time.monotonic()
            if now >= next_sweep:
                # A lost notification loses nothing: a full pass now and then.
                await self._refresh_folders()
                await self._sync_all()
                pending = await self._settle(set(self.folders))
                next_sweep = time.monotonic() + self.options.sweep_interval
                last_command = time.monotonic()
            elif now - last_command >= self.options.idle_renew:
                await self.conn.noop()      # stay clear of the server's inactivity timeout
                last_command = time.monotonic()

    async def _settle(self, synced: set[str]) -> set[str]:
        """Unselect, then the folders just synced that changed meanwhile
        (a change while a folder was selected may never be announced)."""
        before = self.conn.selected.name if self.conn.selected else None
        await self.conn.unselect()
        dirty, _ = self._dirty(self.conn.take_updates(), selected=before)
        for name in synced:
            st = self.folders.get(name)
            if st is None or name in dirty:
                continue
            if await self._moved(st):
                dirty.add(name)
        return dirty

    async def _moved(self, st: FolderState) -> bool:
        """STATUS says the folder changed since its cursor."""
        try:
            status = await self.conn.status(st.name)
        except NoResponse:
            return True     # gone or renamed: a sync finds out
        # Expunges and flag changes move HIGHESTMODSEQ; without CONDSTORE
        # only a sync can tell, so such a folder always counts as moved.
        return (status.get("UIDVALIDITY") != st.uidvalidity or status.get("UIDNEXT") != st.uidnext
                or status.get("HIGHESTMODSEQ") != st.highestmodseq or "HIGHESTMODSEQ" not in status)

    def _dirty(self, updates, selected: str | None = None) -> tuple[set[str], bool]:
        dirty: set[str] = set()
        relist = False
        if selected is None and self.conn.selected:
            selected = self.conn.selected.name
        for u in updates:
            if isinstance(u, StatusResponse) and u.status == "BYE":
                raise ConnectionLost("connection", f"the server said BYE: {u.text}")
            if isinstance(u, Status):
                name = "INBOX" if u.mailbox.upper() == "INBOX" else u.mailbox
                if name in self.folders:
                    dirty.add(name)
                else:
                    relist = True
            elif isinstance(u, ListEntry):
                relist = True
            elif isinstance(u, (Exists, Expunge, Vanished, Fetch)) and selected:
                dirty.add(selected)
        return dirty, relist

    async def _idle_loop(self) -> None:
        next_sweep = time.monotonic() + self.options.sweep_interval
        await self._sync_folder("INBOX")    # leaves INBOX selected: any later change is news
        while True:
            if self.conn.selected is None or self.conn.selected.name != "INBOX":
                await self._sync_folder("INBOX")
            news = []
            renew_at = time.monotonic() + self.options.idle_renew
            async with self.conn.idle() as idle:
                while not news and not idle.ended:
                    left = min(renew_at, next_sweep) - time.monotonic()
                    if left <= 0:
                        break
                    news = await idle.wait(left)
            # Leaving the block sent DONE: the IDLE is re-issued on the next turn.
            for u in news:
                if isinstance(u, StatusResponse) and u.status == "BYE":
                    raise ConnectionLost("connection", f"the server said BYE: {u.text}")
            news += self.conn.take_updates()
            if news:
                await self._sync_folder("INBOX")
            if time.monotonic() >= next_sweep:
                await self._sweep()
                next_sweep = time.monotonic() + self.options.sweep_interval

    async def _sweep(self) -> None:
        """STATUS of every other folder; sync those whose numbers moved."""
        await self._refresh_folders()
        for name in self._order(list(self.folders)):
            if name == "INBOX":
                continue
            st = self.folders.get(name)
            if st is None:
                continue
            if st.uidnext is None or not st.backfill_done:
                await self._sync_folder(name)
                continue
            moved = await self._moved(st)
            if moved:
                await self._sync_folder(name)


def _special(folder) -> str | None:
    if folder.name.upper() == "INBOX":
        return "\\Inbox"
    return folder.special_use


def _place(st: FolderState, uid: int):
    from .facts import Place
    return Place(st.account_id, st.name, st.uidvalidity, uid)


def _default_open_session():
    from ..accounts.session import open_session
    return open_session


class Tracker:
    """Follows every active account it can lease. `accounts`: an AccountStore
    (list(), get(id), set_state(id, state, reason)); `sink`: a FactSink."""

    def __init__(self, engine, accounts, sink, *, name: str | None = None, open_session=None,
                 options: Options | None = None, **option_values):
        self.engine = engine
        self.accounts = accounts
        self.sink = sink
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.options = options or Options(**option_values)
        self.open_session = open_session or _default_open_session()
        self.cursors = Cursors(engine)
        self.leases = Leases(engine, self.name, self.options.lease_seconds)
        self.workers: dict[int, tuple[AccountWorker, asyncio.Task]] = {}
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                await self._tick()
                try:
                    async with asyncio.timeout(self.options.poll_interval):
                        await self._stop.wait()
                except TimeoutError:
                    pass
        finally:
            for account_id in list(self.workers):
                await self._drop(account_id)
            self._stopped.set()

    async def stop(self) -> None:
        self._stop.set()
        await self._stopped.wait()

    async def _tick(self) -> None:
        accounts = await asyncio.to_thread(self.accounts.list)
        active = {a.id: a for a in accounts if getattr(a, "state", "active") == "active"}
        for account_id in list(self.workers):
            worker, task = self.workers[account_id]
            if account_id not in active or task.done():
                await self._drop(account_id)
        held_now = await asyncio.to_thread(self.leases.claim_many, active) if active else set()
        for account_id, account in active.items():
            if self._stop.is_set():
                break
            if account_id not in held_now:
                if account_id in self.workers:       # our lease ran out and was taken
                    await self._drop(account_id, release=False)
                continue
            if account_id not in self.workers:
                worker = AccountWorker(self, account)
                self.workers[account_id] = (worker, asyncio.create_task(
                    worker.run(), name=f"tracker-account-{account_id}"))

    async def _drop(self, account_id: int, release: bool = True) -> None:
        worker, task = self.workers.pop(account_id)
        while not task.done():
            task.cancel()       # again if a cancel got lost (one arriving with a result can be)
            await asyncio.wait({task}, timeout=1)
        if release:
            await asyncio.to_thread(self.leases.release, account_id)

    def status(self, account_id: int) -> dict:
        """Per folder progress, the worker's state and the recent log."""
        entry = self.workers.get(account_id)
        worker = entry[0] if entry else None
        out = account_status(self.engine, account_id)
        out.update(state=worker.state if worker else "not running here",
                   last_error=worker.last_error if worker else None)
        return out


def account_status(engine, account_id: int) -> dict:
    """What the database knows of an account's sync, from any process (for
    `posthouse account status`): per folder progress and the recent log."""
    cursors = Cursors(engine)
    return {"account_id": account_id, "folders": cursors.folders(account_id), "log": cursors.read_log(account_id)}
