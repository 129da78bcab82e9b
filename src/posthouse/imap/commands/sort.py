"""SORT (RFC 5256), with DISPLAYFROM and DISPLAYTO (RFC 5957)."""
from __future__ import annotations

from operator import attrgetter

from ..errors import bad
from ..protocol.tokens import Atom
from ..protocol.writer import number_line
from ..search import Evaluator, parse_program, uses_modseq
from ..search_updates import start_updates
from .search import highest_modseq, parse_return_options, read_charset, saved_result, send_esearch, uids_at

_KEYS = {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
# Keys that need the parsed header values kept at delivery; the rest come from columns.
_PARSED = {"CC", "FROM", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}


def _casemap(text: str) -> bytes:
    """i;ascii-casemap, the default collation: ASCII letters compare without case."""
    return text.encode("utf-8", "surrogatepass").upper()


def _store_keys(key: str, data: dict, uids: list[int]) -> list:
    """For keys read from the store (data: uid -> (sent_date, internaldate,
    size, keys)): each UID's sort key, in order. Whole lists, so the sort
    itself calls no Python per message."""
    rows = list(map(data.__getitem__, uids))
    if key == "ARRIVAL":
        return [row[1] for row in rows]
    if key == "DATE":
        # The sent date, or the internal date where the Date header is missing or broken.
        return [row[1] if row[0] is None else row[0] for row in rows]
    if key == "SIZE":
        return [row[2] for row in rows]
    name = key.lower()
    return [_casemap(row[3][name]) for row in rows]


def _index_keys(key: str, entries: dict, uids: list[int]) -> list:
    """ARRIVAL, DATE and SIZE straight from the shared in-memory index."""
    found = list(map(entries.__getitem__, uids))
    if key == "ARRIVAL":
        return list(map(attrgetter("internaldate"), found))
    if key == "DATE":
        return [e.internaldate if e.sent_date is None else e.sent_date for e in found]
    return list(map(attrgetter("size"), found))


def parse_sort_criteria(args) -> list[tuple[str, bool]]:
    """[(key, reverse)] from "(REVERSE DATE SUBJECT)"."""
    items = args.plist("sort criteria")
    criteria, reverse = [], False
    for tok in items:
        if not isinstance(tok, Atom):
            raise bad("Invalid sort criterion")
        word = tok.upper
        if word == "REVERSE":
            if reverse:
                raise bad("REVERSE twice")
            reverse = True
            continue
        if word not in _KEYS:
            raise bad(f"Unknown sort criterion {tok.value}")
        criteria.append((word, reverse))
        reverse = False
    if reverse or not criteria:
        raise bad("Sort criteria are missing")
    return criteria


async def sort_order(session, criteria, uids: list[int]) -> list[int]:
    """Positions in uids (in mailbox order) in the order the criteria give;
    UIDs gone from the mailbox meanwhile are left out."""
    if not uids:
        return []
    if any(key in _PARSED for key, _ in criteria):
        source = await session.ctx.service.call("sort_data", session.view.shared.id)
        keys_of = _store_keys
    else:
        source = session.view.shared.entries
        keys_of = _index_keys
    positions = None
    if not all(map(source.__contains__, uids)):
        positions = [i for i, uid in enumerate(uids) if uid in source]
        uids = [uids[i] for i in positions]
    # Ties stay in mailbox order: stable sorts, the last key first.
    order = list(range(len(uids)))
    for key, reverse in reversed(criteria):
        order.sort(key=keys_of(key, source, uids).__getitem__, reverse=reverse)
    return order if positions is None else [positions[i] for i in order]


SORT_ORDERS_KEPT = 8     # criteria whose whole-mailbox order one mailbox keeps


def _whole_mailbox_order(session, criteria, uids: list[int]) -> tuple[list[int], list[int]] | None:
    """The order of every message of the mailbox by index keys (ARRIVAL, DATE,
    SIZE), kept in the shared index until a message comes or goes: a web
    client pages through a big folder with the same SORT again and again, and
    building 100,000 keys costs ~30-150 ms each time. None where uids are
    not the shared index's (the view is behind it) or a key needs the store.
    uids: the view's every UID."""
    shared = session.view.shared
    current = shared.uids
    if (session.view.uids is not current or len(uids) != len(current)
            or any(key in _PARSED for key, _ in criteria)):
        return None
    key = tuple(criteria)
    kept = shared.sort_orders.get(key)
    # Messages only ever join an array in place (longer) or leave it by a new one.
    if kept is not None and kept[0] is current and kept[1] == len(current):
        return kept[2], kept[3]
    order = list(range(len(uids)))
    for name, reverse in reversed(criteria):
        order.sort(key=_index_keys(name, shared.entries, uids).__getitem__, reverse=reverse)
    if len(shared.sort_orders) >= SORT_ORDERS_KEPT:
        shared.sort_orders.pop(next(iter(shared.sort_orders)))
    ordered_uids = list(map(uids.__getitem__, order))
    shared.sort_orders[key] = (current, len(current), order, ordered_uids)
    return order, ordered_uids


async def sort_matches(session, criteria, matches: list[int]) -> list[int]:
    """UIDs (in mailbox order) in the order the criteria give."""
    return list(map(matches.__getitem__, await sort_order(session, criteria, matches)))


async def sort(session, cmd):
    args = session.args(cmd)
    returns = parse_return_options(args)
    criteria = parse_sort_criteria(args)
    read_charset(args)
    program = parse_program(args)
    with_modseq = uses_modseq(program)
    if with_modseq:
        await session.start_condstore()
    seqs = await Evaluator(session, program).run()
    matched = uids_at(session.view.uids, seqs)
    # Every message matched (the sequence numbers ascending and distinct, as
    # many as the view has): the mailbox's kept order, if its keys are the index's.
    whole = _whole_mailbox_order(session, criteria, matched) if len(seqs) == len(session.view.uids) else None
    if whole is not None:
        order, uids = whole
    else:
        order = await sort_order(session, criteria, matched)
        # The sorted UIDs: a plain SORT by sequence numbers needs none of them.
        uids = list(map(matched.__getitem__, order)) if cmd.uid or with_modseq or returns is not None else None
    numbers = uids if cmd.uid else list(map(seqs.__getitem__, order))
    if returns is not None:
        if returns.save:      # RFC 5182 with ESORT: the saved set, order aside
            session.saved_search = sorted(saved_result(returns, uids))
        if returns.update:
            start_updates(session, cmd, program, returns, uids, criteria)
        if returns.answers:
            send_esearch(session, cmd, numbers, returns, sorted_order=True, uids=uids if with_modseq else None)
    else:
        modseq = highest_modseq(session, uids) if with_modseq else None
        session.conn.write(number_line(b"SORT", numbers, modseq))
    return "SORT completed"
