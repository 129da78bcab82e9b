"""CONDSTORE and QRESYNC (RFC 7162): the SELECT parameters, the FETCH
modifiers, and the VANISHED (EARLIER) answers read from the expunge history.

Every change to a message gives it the mailbox's next MODSEQ, and every
expunge is kept in the store's history with the MODSEQ it happened at, so
"what changed since N" is always answered exactly, never approximately.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..args import SequenceSet, format_spans, format_uid_set, parse_sequence_set
from ..errors import bad
from ..protocol.tokens import Atom, ParenList

# mod-sequence-value is a 63-bit unsigned number (RFC 7162 7).
MAX_MODSEQ = 2**63 - 1


def modseq_number(tok, what: str = "mod-sequence", allow_zero: bool = True) -> int:
    if not isinstance(tok, Atom) or not tok.value.isdigit() or len(tok.value) > 20:
        raise bad(f"Invalid {what}")
    value = int(tok.value)
    if value > MAX_MODSEQ or (value == 0 and not allow_zero):
        raise bad(f"Invalid {what}")
    return value


@dataclass
class QresyncParams:
    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None


@dataclass
class SelectParams:
    condstore: bool = False
    qresync: QresyncParams | None = None


def _uid_set(tok, what: str) -> SequenceSet:
    if not isinstance(tok, Atom):
        raise bad(f"Invalid {what}")
    seqset = parse_sequence_set(tok.value)
    if seqset.saved:
        raise bad(f"Invalid {what}")
    return seqset


def parse_select_params(session, items: list) -> SelectParams:
    """SELECT/EXAMINE (CONDSTORE) and (QRESYNC (uidvalidity modseq [known-uids
    [(seq-set uid-set)]]))."""
    params = SelectParams()
    i = 0
    while i < len(items):
        tok = items[i]
        name = tok.upper if isinstance(tok, Atom) else None
        if name == "CONDSTORE" and not params.condstore:
            params.condstore = True
            i += 1
        elif name == "QRESYNC" and params.qresync is None:
            if not session.qresync:
                raise bad("QRESYNC must be ENABLEd first")
            if i + 1 >= len(items) or not isinstance(items[i + 1], ParenList):
                raise bad("QRESYNC needs its parameter list")
            params.qresync = _parse_qresync(items[i + 1].items)
            i += 2
        else:
            raise bad("Unsupported SELECT parameter")
    return params


def _parse_qresync(items: list) -> QresyncParams:
    if not 2 <= len(items) <= 4:
        raise bad("Invalid QRESYNC parameters")
    uidvalidity = modseq_number(items[0], "UIDVALIDITY", allow_zero=False)
    if uidvalidity >= 2**32:
        raise bad("Invalid UIDVALIDITY")
    modseq = modseq_number(items[1], "mod-sequence", allow_zero=False)
    known = None
    rest = items[2:]
    if rest and isinstance(rest[0], Atom):
        known = _uid_set(rest.pop(0), "known UIDs")
    if rest:
        match = rest.pop(0)
        # The sequence-match data helps servers with a partial expunge history;
        # ours is complete, so it is checked for form and otherwise not needed.
        if (not isinstance(match, ParenList) or len(match.items) != 2
                or not all(isinstance(t, Atom) for t in match.items)):
            raise bad("Invalid QRESYNC sequence match data")
        seqs, uids = (_uid_set(t, "sequence match data") for t in match.items)
        if _count(seqs) != _count(uids):
            raise bad("QRESYNC sequence match sets differ in size")
    if rest:
        raise bad("Invalid QRESYNC parameters")
    return QresyncParams(uidvalidity, modseq, known)


def _count(seqset: SequenceSet) -> int | None:
    if seqset.contains_star():
        return None
    return sum(hi - lo + 1 for lo, hi in seqset.resolve(0))


def in_uid_set(seqset: SequenceSet | None, largest: int):
    """A test of UIDs against a UID set ('*' is the largest UID ever given, so
    that expunged UIDs above the last message still count)."""
    if seqset is None:
        return lambda uid: True
    spans = seqset.resolve(largest)
    return lambda uid: any(lo <= uid <= hi for lo, hi in spans)


async def send_vanished_earlier(session, since: int, uid_set: SequenceSet | None) -> None:
    """* VANISHED (EARLIER) for the UIDs in uid_set expunged after MODSEQ since."""
    view = session.view
    largest = view.shared.info.uidnext - 1
    gone = await session.ctx.service.call("vanished_since", view.shared.id, since)
    if gone is None:
        # The mailbox's expunge history from then was forgotten (it is kept to a
        # bound): name every UID in the set that no message has, as a server
        # that keeps no history does (RFC 7162 3.2.6; Dovecot does the same).
        spans = _missing_spans(view.uids, largest)
        if uid_set is not None:
            spans = _intersect(spans, _merged(uid_set.resolve(largest)))
        text = format_spans(spans)
    else:
        wanted = in_uid_set(uid_set, largest)
        text = format_uid_set([u for u in gone if wanted(u)])
    if text:
        session.untagged("VANISHED (EARLIER) " + text)


def _missing_spans(present, largest: int) -> list[tuple[int, int]]:
    """The ranges of UIDs in 1..largest that no message has (present: ascending)."""
    spans, expected = [], 1
    for uid in present:
        if uid > expected:
            spans.append((expected, uid - 1))
        expected = uid + 1
    if expected <= largest:
        spans.append((expected, largest))
    return spans


def _merged(spans) -> list[tuple[int, int]]:
    """Ranges sorted, overlapping and adjacent ones joined."""
    out: list[list[int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ranges in both of two sorted lists of disjoint ranges."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


async def qresync_select(session, params: QresyncParams) -> None:
    """What a QRESYNC SELECT adds: the expunges and the flag changes since the
    client's MODSEQ, within the UIDs it says it knows."""
    view = session.view
    info = view.shared.info
    if params.uidvalidity != info.uidvalidity:
        return    # the client's cache is void; it resynchronizes from scratch
    await send_vanished_earlier(session, params.modseq, params.known_uids)
    known = in_uid_set(params.known_uids, info.uidnext - 1)
    write = session.conn.write
    for seq, uid in enumerate(view.uids, 1):
        entry = view.entry(uid)
        if entry is not None and entry.modseq > params.modseq and known(uid):
            write(f"* {seq} FETCH (UID {uid} FLAGS {session.format_flags(uid)} MODSEQ ({entry.modseq}))\r\n"
                  .encode())


@dataclass
class FetchModifiers:
    changed_since: int | None = None
    vanished: bool = False


def parse_fetch_modifiers(session, cmd, items: list) -> FetchModifiers:
    """(CHANGEDSINCE n) and, on UID FETCH with QRESYNC enabled, (... VANISHED)."""
    mods = FetchModifiers()
    i = 0
    while i < len(items):
        tok = items[i]
        name = tok.upper if isinstance(tok, Atom) else None
        if name == "CHANGEDSINCE" and mods.changed_since is None and i + 1 < len(items):
            mods.changed_since = modseq_number(items[i + 1], "CHANGEDSINCE value")
            i += 2
        elif name == "VANISHED" and not mods.vanished:
            mods.vanished = True
            i += 1
        else:
            raise bad("Unsupported FETCH modifier")
    if mods.vanished:
        if not cmd.uid:
            raise bad("VANISHED needs UID FETCH")
        if not session.qresync:
            raise bad("VANISHED needs QRESYNC enabled")
        if mods.changed_since is None:
            raise bad("VANISHED needs CHANGEDSINCE")
    return mods
