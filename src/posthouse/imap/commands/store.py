"""STORE: FLAGS, +FLAGS, -FLAGS, each with .SILENT."""
from __future__ import annotations

from ..args import format_uid_set
from ..errors import bad, no
from ..mailbox_index import SYSTEM_FLAGS
from ..protocol.tokens import Atom, ParenList
from ..write_behind import can_write_behind, store_behind
from .resync import modseq_number

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


def changes_anything(entries, uids, mode: str, flags: frozenset) -> bool:
    """Whether storing flags (mode "set", "add" or "remove") would change any
    of these messages as the index has them. Flag names compare without case,
    as the store compares them; a message the index no longer has changes not."""
    want = {f.lower() for f in flags}
    verdicts: dict[frozenset, bool] = {}    # per distinct flag set: a big mailbox has few
    for uid in uids:
        entry = entries.get(uid)
        if entry is None:
            continue
        changes = verdicts.get(entry.flags)
        if changes is None:
            have = {f.lower() for f in entry.flags}
            if mode == "add":
                changes = not want <= have
            elif mode == "remove":
                changes = not want.isdisjoint(have)
            else:
                changes = have != want
            verdicts[entry.flags] = changes
        if changes:
            return True
    return False


async def store(session, cmd):
    args = session.args(cmd)
    seqset = args.sequence_set()
    unchanged_since = None
    tok = args.next("STORE item")
    if isinstance(tok, ParenList):        # CONDSTORE modifier list
        items = tok.items
        if len(items) == 2 and isinstance(items[0], Atom) and items[0].upper == "UNCHANGEDSINCE":
            unchanged_since = modseq_number(items[1], "UNCHANGEDSINCE value")
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
    if unchanged_since is not None:
        await session.start_condstore()
    live = [u for u in uids if not view.is_expunged(u)]
    if unchanged_since is None and not changes_anything(view.shared.entries, live, modes[base], flags):
        # Clients set \Seen on what is seen already: the index shows nothing
        # would change, so the store is not asked (and no MODSEQ moves).
        events, failed = [], []
    elif can_write_behind(session, unchanged_since):
        store_behind(session, live, modes[base], flags)
        events, failed = [], []
    else:
        events, failed = await session.ctx.service.change("store_flags", view.shared.id, live, modes[base],
                                                          flags, unchanged_since)
    changed = {e.uid for e in events}
    # Our own change: answer it here (unless silent) rather than again as an update.
    view.flag_changes.difference_update(changed)
    failed_set = set(failed)
    condstore = session.condstore
    for uid in uids:
        seq = view.seq_of(uid)
        if seq is None or uid in failed_set:
            continue
        if silent and not (condstore and uid in changed):
            continue
        parts = []
        if cmd.uid or condstore:
            parts.append(f"UID {uid}")
        if not silent:
            parts.append(f"FLAGS {session.format_flags(uid)}")
        if condstore:
            # Even .SILENT owes the client the new MODSEQ (RFC 7162 3.1.3).
            parts.append(f"MODSEQ ({session.modseq_of(uid)})")
        session.untagged(f"{seq} FETCH ({' '.join(parts)})")
    if any(view.is_expunged(u) for u in uids):
        return "EXPUNGEISSUED", "Some of the messages no longer exist"
    if failed:
        numbers = sorted(failed) if cmd.uid else sorted(s for s in map(view.seq_of, failed) if s is not None)
        return f"MODIFIED {format_uid_set(numbers)}", "Conditional STORE failed"
    return "STORE completed"
