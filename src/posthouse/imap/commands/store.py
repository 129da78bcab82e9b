"""STORE: FLAGS, +FLAGS, -FLAGS, each with .SILENT."""
from __future__ import annotations

from ..args import format_uid_set
from ..errors import bad, no
from ..mailbox_index import SYSTEM_FLAGS
from ..protocol.tokens import Atom, ParenList

_SYSTEM = {f.lower(): f for f in SYSTEM_FLAGS}
_KEYWORD_BAD = set('(){ %*"\\]')


def parse_flag(tok) -> str:
    if not isinstance(tok, Atom):
        raise bad("Invalid flag")
    text = tok.value
    if text.startswith("\\"):
        canon = _SYSTEM.get(text.lower())
        if canon is None:
            raise bad(f"Invalid system flag {text}")
        return canon
    if not text or any(c in _KEYWORD_BAD or ord(c) < 0x21 or ord(c) > 0x7E for c in text):
        raise bad(f"Invalid keyword {text}")
    return text


def parse_flag_list(items) -> frozenset:
    out = set()
    for tok in items:
        if isinstance(tok, Atom) and tok.value.lower() == "\\recent":
            continue   # \Recent is the server's to set; clients can't store it
        out.add(parse_flag(tok))
    return frozenset(out)


async def store(session, cmd):
    args = session.args(cmd)
    seqset = args.sequence_set()
    unchanged_since = None
    tok = args.next("STORE item")
    if isinstance(tok, ParenList):        # CONDSTORE modifier list
        items = tok.items
        if len(items) == 2 and isinstance(items[0], Atom) and items[0].upper == "UNCHANGEDSINCE":
            unchanged_since = int(items[1].value) if isinstance(items[1], Atom) and items[1].value.isdigit() else None
            if unchanged_since is None:
                raise bad("Invalid UNCHANGEDSINCE")
        else:
            raise bad("Unknown STORE modifier")
        tok = args.next("STORE item")
    if not isinstance(tok, Atom):
        raise bad("Invalid STORE item")
    item = tok.upper
    silent = item.endswith(".SILENT")
    base = item[:-7] if silent else item
    modes = {"FLAGS": "set", "+FLAGS": "add", "-FLAGS": "remove"}
    if base not in modes:
        raise bad("Invalid STORE item " + tok.value)
    rest = []
    while args.more():
        t = args.next()
        rest.extend(t.items if isinstance(t, ParenList) else [t])
    flags = parse_flag_list(rest)
    view = session.view
    if view.readonly:
        raise no("Mailbox is read-only", "READ-ONLY")
    try:
        uids = (view.uids_for_uidset if cmd.uid else view.uids_for_seqset)(seqset, session.saved_search)
    except IndexError:
        raise bad("Invalid message sequence number") from None
    live = [u for u in uids if not view.is_expunged(u)]
    events, failed = await session.ctx.service.change("store_flags", view.shared.id, live, modes[base],
                                                      flags, unchanged_since)
    changed = {e.uid for e in events}
    # Our own change: answer it here (unless silent) rather than again as an update.
    view.flag_changes.difference_update(changed)
    report = uids if not silent else []
    for uid in report:
        seq = view.seq_of(uid)
        if seq is None:
            continue
        uid_part = f"UID {uid} " if cmd.uid else ""
        session.untagged(f"{seq} FETCH ({uid_part}FLAGS {session.format_flags(uid)})")
    if any(view.is_expunged(u) for u in uids):
        return "EXPUNGEISSUED", "Some of the messages no longer exist"
    if failed:
        return f"MODIFIED {format_uid_set(failed)}", "Conditional STORE failed"
    return "STORE completed"
