"""The IMAP commands the mail pages need beyond what imap_client offers: a
sorted page of UIDs (UID SORT with RFC 5267's PARTIAL, plain UID SORT, or
UID SEARCH + slice, whichever the server has), flags, move / delete to Trash
/ archive, and the special-use folders they go to.

Commands go through the connection's own command runner (one at a time,
its lock), with strings quoted or sent as literals by its quoting rules."""
from __future__ import annotations

from ...imap.protocol.responses import Data, ESearch, Search, as_number
from ...imap_client.connection import _string

MAX_SORT_ALL = 2_000_000     # a plain SORT's answer longer than this many UIDs: refused


def quoted(value: str):
    """A search string: quoted, or a literal (CR, LF, long) the way the connection sends them."""
    return _string(value)


def _utf8(parts: list) -> bool:
    return any(not isinstance(p, bytes) or any(b > 127 for b in p) for p in parts)


async def run(conn, parts: list, keep=()):
    return await conn._run(parts, keep=keep)


def _join(criteria: list) -> list:
    """[b"FROM ", quoted(...), b" SINCE 1-Jan-2026"] -> parts for _run, bytes merged."""
    return criteria or [b"ALL"]


async def sorted_page(conn, criteria: list, start: int, count: int) -> tuple[list[int], int]:
    """(UIDs start..start+count-1 (0-based) of the matches, newest arrival
    first; how many match). Never fetches a header: only UIDs, and with
    CONTEXT=SORT only the page's."""
    criteria = _join(criteria)
    caps = conn.capabilities
    if "CONTEXT=SORT" in caps or "ESORT" in caps and "PARTIAL" in caps:
        lo, hi = start + 1, start + count
        untagged, _ = await run(conn, [b"UID SORT RETURN (PARTIAL %d:%d COUNT) (REVERSE ARRIVAL) UTF-8 " % (lo, hi),
                                       *criteria], keep=(ESearch,))
        for r in untagged:
            if isinstance(r, ESearch) and r.count is not None:
                return list(r.partial or []), r.count
        return [], 0
    if "SORT" in caps:
        untagged, _ = await run(conn, [b"UID SORT (REVERSE ARRIVAL) UTF-8 ", *criteria], keep=(Data,))
        uids: list[int] = []
        for r in untagged:
            if isinstance(r, Data) and r.name.upper() == "SORT":
                uids.extend(as_number(t) for t in r.tokens if not _is_modseq(t))
                if len(uids) > MAX_SORT_ALL:
                    raise ValueError("the server's SORT answer is too long")
        return uids[start:start + count], len(uids)
    uids = await search(conn, criteria)
    uids.sort(reverse=True)     # UID order is arrival order
    return uids[start:start + count], len(uids)


def _is_modseq(token) -> bool:
    return not hasattr(token, "value")      # (MODSEQ n) is a list, the UIDs are atoms


async def search(conn, criteria: list) -> list[int]:
    criteria = _join(criteria)
    charset = [b"CHARSET UTF-8 "] if _utf8(criteria) else []
    if "ESEARCH" in conn.capabilities:
        untagged, _ = await run(conn, [b"UID SEARCH RETURN (ALL) ", *charset, *criteria], keep=(ESearch,))
        return [uid for r in untagged if isinstance(r, ESearch) and r.all is not None for uid in r.all]
    untagged, _ = await run(conn, [b"UID SEARCH ", *charset, *criteria], keep=(Search,))
    return [n for r in untagged if isinstance(r, Search) for n in r.numbers]


def uid_set(uids) -> bytes:
    return ",".join(str(int(u)) for u in uids).encode()


async def store(conn, uids, change: str, flags: tuple[str, ...]) -> None:
    """change: "+FLAGS" or "-FLAGS" (silent: the page shows what it asked for)."""
    assert change in ("+FLAGS", "-FLAGS") and all(f in FLAGS for f in flags)
    await run(conn, [b"UID STORE " + uid_set(uids) + b" " + change.encode() + b".SILENT (" +
                     " ".join(flags).encode() + b")"])


FLAGS = ("\\Seen", "\\Flagged", "\\Deleted", "\\Answered")


async def move(conn, uids, target: str) -> None:
    """MOVE (RFC 6851), else COPY, \\Deleted, and UID EXPUNGE of just these
    (UIDPLUS); without UIDPLUS they stay marked \\Deleted, never a plain
    EXPUNGE that would take other messages marked so with them."""
    mailbox = conn._mailbox(target)
    if "MOVE" in conn.capabilities:
        await run(conn, [b"UID MOVE " + uid_set(uids) + b" ", mailbox])
        return
    await run(conn, [b"UID COPY " + uid_set(uids) + b" ", mailbox])
    await store(conn, uids, "+FLAGS", ("\\Deleted",))
    if "UIDPLUS" in conn.capabilities:
        await run(conn, [b"UID EXPUNGE " + uid_set(uids)])


async def expunge(conn, uids) -> None:
    """Gone for good (deleting in Trash itself)."""
    await store(conn, uids, "+FLAGS", ("\\Deleted",))
    if "UIDPLUS" in conn.capabilities:
        await run(conn, [b"UID EXPUNGE " + uid_set(uids)])


async def special_folder(conn, use: str, *, fallback: str, create: bool) -> str:
    """The folder with that special use (\\Trash, \\Archive); else one named
    `fallback`; else (create=True) `fallback` created, marked with the use
    where the server takes CREATE-SPECIAL-USE (RFC 6154)."""
    folders = await conn.list_folders()
    for f in folders:
        if f.special_use == use and f.selectable:
            return f.name
    for f in folders:
        if f.name.lower() == fallback.lower() and f.selectable:
            return f.name
    if not create:
        raise LookupError(f"no {use} folder on this account")
    if "CREATE-SPECIAL-USE" in conn.capabilities:
        await run(conn, [b"CREATE ", conn._mailbox(fallback), b" (USE (" + use.encode() + b"))"])
    else:
        await run(conn, [b"CREATE ", conn._mailbox(fallback)])
    return fallback
