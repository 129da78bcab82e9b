"""The mail client's IMAP side: a user's own account (any other is "not
found"), its folders with unread counts, one page of a folder newest first,
and one message. Each page asks the account's server over a connection
borrowed from the app's pool (web/imap_pool.py)."""
from __future__ import annotations

import asyncio
import email
import email.policy
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

PAGE_SIZE = 50
TIMEOUT = 60.0
MAX_MESSAGE = 50 * 1024 * 1024      # larger messages are not fetched whole for the reading pane
_LIST_HEADERS = "BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)]"
_SPECIAL_ORDER = {"\\Drafts": 1, "\\Sent": 2, "\\Archive": 3, "\\Junk": 4, "\\Trash": 5}


@dataclass
class FolderRow:
    name: str
    special_use: str | None
    messages: int | None
    unseen: int | None


@dataclass
class ListRow:
    uid: int
    subject: str
    sender: str
    date: datetime | None
    size: int | None
    seen: bool
    flagged: bool


async def own_account(request, user: str, account_id: int):
    """The user's account with that id; 404 for anyone else's (its existence is theirs)."""
    accounts = request.app.state.services.accounts
    account = await run_in_threadpool(accounts.get, account_id) if accounts is not None else None
    if account is None or account.owner != user:
        raise HTTPException(404, f"no account {account_id}")
    return account


async def user_accounts(request, user: str) -> list:
    accounts = request.app.state.services.accounts
    return await run_in_threadpool(accounts.list, user) if accounts is not None else []


@asynccontextmanager
async def imap(request, account):
    """A logged-in connection to the account's server, borrowed from the app's
    pool (web/imap_pool.py) for the request; 502 saying why when it can't be had."""
    from ...imap_client import ImapError
    from ..imap_pool import PoolBusy, pool_of
    pool = pool_of(request.app)
    if pool is None:
        raise HTTPException(503, "the mail client is not available on this server")
    user = getattr(getattr(request.state, "web_session", None), "user", None) or account.owner
    lent = pool.connection(user, account)
    try:
        async with asyncio.timeout(TIMEOUT):
            conn = await lent.__aenter__()
    except (ImapError, OSError, TimeoutError, PoolBusy) as e:
        raise HTTPException(502, f"the mail server of account {account.id} could not be reached: {e}") from None
    try:
        yield conn
    except BaseException as e:
        if not await lent.__aexit__(type(e), e, e.__traceback__):
            if isinstance(e, ImapError):
                raise HTTPException(502, f"the mail server of account {account.id} failed: {e}") from None
            raise
    else:
        await lent.__aexit__(None, None, None)


async def folders(conn, *, counts: bool = True) -> list[FolderRow]:
    """The selectable folders, INBOX and the special ones first; counts=False:
    LIST alone (a STATUS costs a scan of the folder on some servers, Posthouse's
    included: ~0.9 s on 100,000 messages here), the page then loads them after."""
    rows = []
    for folder in await conn.list_folders():
        if not folder.selectable:
            continue
        status = {}
        try:
            if counts:
                status = await conn.status(folder.name, ("MESSAGES", "UNSEEN"))
        except Exception:       # one folder the server won't count: listed without counts
            status = {}
        rows.append(FolderRow(folder.name, folder.special_use, status.get("MESSAGES"), status.get("UNSEEN")))
    rows.sort(key=lambda f: (0 if f.name.upper() == "INBOX" else _SPECIAL_ORDER.get(f.special_use or "", 9),
                             f.name.lower()))
    return rows


async def select(conn, folder: str, *, readonly: bool = True):
    from ...imap_client import NoResponse
    try:
        return await conn.select(folder, readonly=readonly)
    except NoResponse as e:
        raise HTTPException(404, f"no folder {folder!r} here ({e.text})") from None


async def page(conn, folder: str, number: int, criteria: list | None = None) -> tuple[list[ListRow], int]:
    """(rows of page `number` (1 = newest), messages matching `criteria` (all
    by default)). The server sorts (UID SORT, only this page's UIDs asked for
    where it has CONTEXT=SORT); only the page's 50 messages are fetched, and
    only their list headers: a 100,000-message folder costs what a small one does."""
    from . import mailops
    await select(conn, folder)
    chosen, total = await mailops.sorted_page(conn, criteria or [], (number - 1) * PAGE_SIZE, PAGE_SIZE)
    return await rows_of(conn, chosen), total


async def rows_of(conn, uids: list[int]) -> list[ListRow]:
    """List rows of these UIDs of the selected folder, in the order given."""
    rows: dict[int, ListRow] = {}
    if uids:
        async for item in conn.uid_fetch(",".join(map(str, uids)),
                                         f"UID FLAGS INTERNALDATE RFC822.SIZE {_LIST_HEADERS}"):
            rows[item.uid] = _row(item)
    return [rows[uid] for uid in uids if uid in rows]


_FOLD = re.compile(r"\r?\n[ \t]+")
_LINE_BREAK = re.compile(r"\r?\n(?=[ \t])")


def list_headers(raw: bytes) -> tuple[str, str]:
    """(Subject, From) of a message's header block as the list shows them.
    Plain ASCII headers with no encoded word (most mail) need no more than
    unfolding; the email package's full header parsing (policy.default) costs
    ~0.3 ms a message, a third of a 50-row page's time: kept for the rest."""
    try:
        if raw.isascii() and b"=?" not in raw:
            headers = email.message_from_bytes(raw, policy=email.policy.compat32)
            # (Unfolded as policy.default does: the Subject keeps the folding
            # whitespace, an address list's runs of it are one space.)
            subject = _LINE_BREAK.sub("", str(headers.get("Subject") or "")).strip()
            return subject, _FOLD.sub(" ", str(headers.get("From") or "")).strip()
        headers = email.message_from_bytes(raw, policy=email.policy.default)
        return str(headers.get("Subject") or ""), str(headers.get("From") or "")
    except Exception:
        return "", ""


def _row(item) -> ListRow:
    attrs = item.attrs
    raw = next((v for k, v in attrs.items() if k.startswith("BODY[HEADER")), None) or b""
    subject, sender = list_headers(bytes(raw))
    name, address = parseaddr(sender)
    flags = {f.lower() for f in attrs.get("FLAGS", ())}
    return ListRow(item.uid, subject.strip() or "(no subject)", name or address or sender or "(unknown sender)",
                   attrs.get("INTERNALDATE"), attrs.get("RFC822.SIZE"), "\\seen" in flags, "\\flagged" in flags)


async def message_and_flags(conn, folder: str, uid: int, *, mark_seen: bool = False) -> tuple[bytes, set[str]]:
    """The message's bytes and its flags (lowercased); mark_seen: \\Seen set
    as the reading pane opens it (the folder selected read-write for that)."""
    from . import mailops
    raw = await message(conn, folder, uid, readonly=not mark_seen)
    flags: set[str] = set()
    async for item in conn.uid_fetch(str(uid), "UID FLAGS"):
        if item.uid == uid:
            flags = {f.lower() for f in item.attrs.get("FLAGS", ())}
    if mark_seen and "\\seen" not in flags and not conn.selected.readonly:
        await mailops.store(conn, [uid], "+FLAGS", ("\\Seen",))
        flags.add("\\seen")
    return raw, flags


async def message(conn, folder: str, uid: int, *, readonly: bool = True) -> bytes:
    """The message's bytes (BODY.PEEK: reading it here doesn't mark it seen); 404 if it isn't there."""
    await select(conn, folder, readonly=readonly)
    size = None
    async for item in conn.uid_fetch(str(uid), "UID RFC822.SIZE"):
        if item.uid == uid:
            size = item.attrs.get("RFC822.SIZE")
    if size is None:
        raise HTTPException(404, f"no message {uid} in {folder!r} (deleted or moved?)")
    if size > MAX_MESSAGE:
        raise HTTPException(413, f"the message is too large to show here ({size // (1024 * 1024)} MiB)")
    raw = None
    async for item in conn.uid_fetch(str(uid), "UID BODY.PEEK[]"):
        if item.uid == uid:
            raw = item.attrs.get("BODY[]")
    if raw is None:
        raise HTTPException(404, f"no message {uid} in {folder!r} (deleted or moved?)")
    return bytes(raw)
