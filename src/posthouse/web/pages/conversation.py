"""A conversation gathered across the account's folders (Sent included): the
messages whose Message-ID is the message's own or one it refers to
(In-Reply-To, References), and those that refer to the thread's root or to
the message itself. One UID SEARCH per folder, bounded: MAX_FOLDERS folders,
MAX_IDS Message-IDs, MAX_MESSAGES messages shown; oldest first."""
from __future__ import annotations

import asyncio
import email
import email.policy
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parseaddr, parsedate_to_datetime

from . import mailops

MAX_FOLDERS = 40
MAX_IDS = 12
MAX_MESSAGES = 100
# HEADER searches read every message's header on some servers (Posthouse's
# included: ~5 s for 100,000 messages), so the folders are searched most
# likely first (this one, Sent, INBOX, Archive) within a time budget.
BUDGET_SECONDS = 10.0
_LIKELY = {"\\Sent": 1, "\\Archive": 3}
_ID = re.compile(r"<([^<>\s]{1,250})>")
_HEADERS = "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE MESSAGE-ID)]"


@dataclass
class ThreadItem:
    folder: str
    uid: int
    subject: str
    sender: str
    date: datetime | None
    message_id: str
    seen: bool


def ids_of(raw: bytes) -> tuple[str, list[str]]:
    """(the message's own Message-ID, the ones it refers to, oldest first), without <>."""
    headers = email.message_from_bytes(raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0] + b"\r\n\r\n",
                                       policy=email.policy.compat32)
    own = _ID.findall(str(headers.get("Message-ID") or ""))
    refs = _ID.findall(str(headers.get("References") or "")) + _ID.findall(str(headers.get("In-Reply-To") or ""))
    seen: list[str] = []
    for r in refs:
        if r not in seen and (not own or r != own[0]):
            seen.append(r)
    return (own[0] if own else ""), seen


def _or(terms: list[list]) -> list:
    """OR of the search terms (IMAP's OR is binary: nested)."""
    if len(terms) == 1:
        return terms[0]
    return [b"OR ", *terms[0], b" (", *_or(terms[1:]), b")"]


def criteria_for(own: str, refs: list[str]) -> list:
    ids = ([own] if own else []) + refs
    ids = ids[:1] + ids[1:][-(MAX_IDS - 1):]     # the own one, and the nearest ancestors past the bound
    root = refs[0] if refs else own
    terms = [[b"HEADER Message-ID ", mailops.quoted(f"<{i}>")] for i in ids]
    if root:
        terms.append([b"HEADER References ", mailops.quoted(f"<{root}>")])
    if own:
        terms.append([b"HEADER In-Reply-To ", mailops.quoted(f"<{own}>")])
        terms.append([b"HEADER References ", mailops.quoted(f"<{own}>")])
    return _or(terms)


@dataclass
class Thread:
    items: list[ThreadItem]
    searched: list[str]
    skipped: list[str]          # not searched: past the bounds or the time budget


def search_order(current: str, folders) -> list[str]:
    """Folder names, the likeliest to hold the thread first; folders: FolderRows."""
    def rank(f):
        if f.name == current:
            return 0
        if f.name.upper() == "INBOX":
            return 2
        return _LIKELY.get(f.special_use or "", 4 if f.special_use in ("\\Junk", "\\Trash") else 3)
    return [f.name for f in sorted(folders, key=rank)]


async def gather(conn, raw: bytes, folder_names: list[str], *, budget: float = BUDGET_SECONDS) -> Thread:
    from ...imap_client import NoResponse
    own, refs = ids_of(raw)
    if not own and not refs:
        return Thread([], [], [])
    criteria = criteria_for(own, refs)
    found: list[ThreadItem] = []
    searched: list[str] = []
    try:
        async with asyncio.timeout(budget):
            for name in folder_names[:MAX_FOLDERS]:
                if len(found) >= MAX_MESSAGES:
                    break
                try:
                    await conn.select(name, readonly=True)
                    uids = sorted(await mailops.search(conn, criteria))[-MAX_MESSAGES:]
                except NoResponse:
                    searched.append(name)
                    continue        # a folder the server won't open or search: left out
                if uids:
                    async for item in conn.uid_fetch(",".join(map(str, uids)), f"UID FLAGS INTERNALDATE {_HEADERS}"):
                        found.append(_item(name, item))
                searched.append(name)
    except TimeoutError:
        conn.close()        # (cut off mid-command: the pool must not lend it again)
    found.sort(key=lambda t: (t.date or datetime.min.replace(tzinfo=timezone.utc), t.folder, t.uid))
    return Thread(found[:MAX_MESSAGES], searched, [n for n in folder_names if n not in searched])


def _item(folder: str, item) -> ThreadItem:
    attrs = item.attrs
    raw = next((v for k, v in attrs.items() if k.startswith("BODY[HEADER")), None) or b""
    try:
        headers = email.message_from_bytes(bytes(raw), policy=email.policy.default)
        subject, sender = str(headers.get("Subject") or ""), str(headers.get("From") or "")
        message_id = str(headers.get("Message-ID") or "")
    except Exception:
        subject = sender = message_id = ""
    when = attrs.get("INTERNALDATE")
    try:
        sent = parsedate_to_datetime(str(headers.get("Date"))) if raw else None
        if sent is not None and sent.tzinfo is not None:
            when = sent
    except Exception:
        pass
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    name, address = parseaddr(sender)
    flags = {f.lower() for f in attrs.get("FLAGS", ())}
    return ThreadItem(folder, item.uid, subject.strip() or "(no subject)", name or address or "(unknown sender)",
                      when, message_id.strip(), "\\seen" in flags)
