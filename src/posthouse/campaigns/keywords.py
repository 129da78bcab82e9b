"""The campaign categories as IMAP keywords on the replies themselves
(`$Bounce`, `$AutoReply`, `$Unsubscribe`, `$Complaint`, `$CampaignReply`), so
every mail client and Sieve script sees them.

The CRM never talks IMAP: results.py only queues (account, folder,
UIDVALIDITY, UID, keyword) in the database, in the transaction that records
the result; the worker here, a background task of `posthouse serve`, opens
the account (accounts/session.open_session) and sets each with UID STORE
+FLAGS.SILENT. A failure is retried with a growing delay; a folder whose
UIDVALIDITY changed since (the UID means another message now) is skipped."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from ..crm.sqlutil import insert_ignore
from ..imap_client import NoResponse
from .tables import campaign_keywords

log = logging.getLogger("posthouse.campaigns")

KEYWORDS = {"bounce": "$Bounce", "auto-reply": "$AutoReply", "unsubscribe": "$Unsubscribe",
            "complaint": "$Complaint", "reply": "$CampaignReply"}
MAX_ATTEMPTS = 12
BATCH = 200


def _now() -> datetime:
    return datetime.now(timezone.utc)


def queue_keyword(conn, account_id: int, folder: str, uidvalidity: int, uid: int, keyword: str) -> None:
    """Pending, once per (place, keyword); in the caller's transaction."""
    insert_ignore(conn, campaign_keywords, [{
        "account_id": account_id, "folder": folder, "uidvalidity": uidvalidity, "uid": uid, "keyword": keyword,
        "state": "pending", "attempts": 0, "next_attempt": _now()}],
        ["account_id", "folder", "uidvalidity", "uid", "keyword"])


def retry_delay(attempts: int) -> float:
    return min(5.0 * 2 ** attempts, 3600.0)


class KeywordWorker:
    """accounts: the AccountStore (get(id)); open_session(accounts, account)
    -> a logged-in ImapConnection."""

    def __init__(self, engine, accounts, open_session, *, poll: float = 30.0):
        self.engine = engine
        self.accounts = accounts
        self.open_session = open_session
        self.poll = poll
        self._wake = asyncio.Event()
        self._loop = None
        self._task = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="campaign-keywords")

    def wake(self) -> None:
        """From any thread (the CRM's observer runs on the tracker's)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaigns: setting keywords failed (tried again)")
            self._wake.clear()
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=self.poll)
            finally:
                waiter.cancel()

    def _due(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(campaign_keywords).where(campaign_keywords.c.state == "pending",
                                                campaign_keywords.c.next_attempt <= _now())
                .order_by(campaign_keywords.c.id).limit(BATCH))]

    def _finish(self, ids: list[int], state: str, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(campaign_keywords).where(campaign_keywords.c.id.in_(ids))
                         .values(state=state, last_error=error))

    def _failed(self, rows: list[dict], error: str) -> None:
        with self.engine.begin() as conn:
            for row in rows:
                attempts = row["attempts"] + 1
                values = {"attempts": attempts, "last_error": error[:1000],
                          "next_attempt": _now() + timedelta(seconds=retry_delay(attempts))}
                if attempts >= MAX_ATTEMPTS:
                    values["state"] = "failed"
                conn.execute(update(campaign_keywords).where(campaign_keywords.c.id == row["id"]).values(**values))

    async def run_once(self) -> int:
        """Set what is due, one connection per account; how many were set."""
        rows = await asyncio.to_thread(self._due)
        by_account: dict[int, list[dict]] = {}
        for row in rows:
            by_account.setdefault(row["account_id"], []).append(row)
        done = 0
        for account_id, pending in by_account.items():
            account = await asyncio.to_thread(self.accounts.get, account_id)
            if account is None:
                await asyncio.to_thread(self._finish, [r["id"] for r in pending], "skipped", "the account is gone")
                continue
            try:
                done += await self._set(account, pending)
            except asyncio.CancelledError:
                raise
            except Exception as e:      # the server away, a login refused...: tried again later
                why = f"{type(e).__name__}: {e}"
                log.info("campaigns: keywords on account %d not set yet: %s", account_id, why)
                await asyncio.to_thread(self._failed, pending, why)
        return done

    async def _set(self, account, pending: list[dict]) -> int:
        conn = await asyncio.wait_for(self.open_session(self.accounts, account), 60)
        done = 0
        try:
            by_folder: dict[str, list[dict]] = {}
            for row in pending:
                by_folder.setdefault(row["folder"], []).append(row)
            for folder, rows in by_folder.items():
                try:
                    selected = await conn.select(folder, readonly=False)
                except NoResponse as e:     # the folder is gone (or never was): nothing to set
                    await asyncio.to_thread(self._finish, [r["id"] for r in rows], "skipped",
                                            f"the folder can't be selected: {e}")
                    continue
                stale = [r for r in rows if selected.uidvalidity is not None and r["uidvalidity"] != selected.uidvalidity]
                if stale:
                    await asyncio.to_thread(self._finish, [r["id"] for r in stale], "skipped",
                                            "the folder's UIDVALIDITY changed: the UID is another message now")
                for row in rows:
                    if row in stale:
                        continue
                    # (ImapConnection has no STORE of its own yet: the command, as RFC 9051 6.4.6 writes it)
                    await conn._run([b"UID STORE %d +FLAGS.SILENT (%s)" % (row["uid"], row["keyword"].encode("ascii"))])
                    await asyncio.to_thread(self._finish, [row["id"]], "done")
                    done += 1
                await conn.unselect()
        finally:
            try:
                await asyncio.wait_for(conn.logout(), 10)
            except Exception:
                conn.close()
        return done
