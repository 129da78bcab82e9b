"""An activity's original message, fetched live from its mail server: the
place's folder selected read-only, its UIDVALIDITY checked, the UID fetched
with BODY.PEEK[] (so \\Seen is never set). None when that copy is gone."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger("posthouse.web")
TIMEOUT = 60.0      # a server that takes longer is "could not be asked" (502), not a hung request


def make_fetch_original(accounts, open_session) -> Callable[[dict], Awaitable[bytes | None]]:
    async def fetch_original(place: dict) -> bytes | None:
        account = await asyncio.to_thread(accounts.get, place["account_id"])
        if account is None or getattr(account, "state", "active") == "disabled":
            return None
        async with asyncio.timeout(TIMEOUT):
            conn = await open_session(accounts, account)
            try:
                return await _fetch(conn, place)
            finally:
                try:
                    await conn.logout()
                except Exception:
                    conn.close()
    return fetch_original


async def _fetch(conn, place: dict) -> bytes | None:
    from ..imap_client import NoResponse
    try:
        selected = await conn.select(place["folder"], readonly=True)
    except NoResponse as e:
        if (e.code or "").upper() == "NONEXISTENT":     # the folder is gone, and the copy with it
            return None
        raise
    if selected.uidvalidity is not None and selected.uidvalidity != place["uidvalidity"]:
        return None     # the folder was recreated: that UID names another message now, or none
    uid = int(place["uid"])
    body = None
    async for item in conn.uid_fetch(str(uid), "BODY.PEEK[]"):
        if getattr(item, "uid", None) == uid:
            value = item.attrs.get("BODY[]")
            if value is not None:
                body = bytes(value)
    return body
