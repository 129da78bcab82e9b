"""SORT (RFC 5256), with DISPLAYFROM and DISPLAYTO (RFC 5957)."""
from __future__ import annotations

from ..errors import bad
from ..protocol.tokens import Atom
from ..protocol.writer import number_line
from ..search import Evaluator, parse_program, uses_modseq
from ..search_updates import start_updates
from .search import highest_modseq, parse_return_options, read_charset, send_esearch

_KEYS = {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
# Keys that need the parsed header values kept at delivery; the rest come from columns.
_PARSED = {"CC", "FROM", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}


def _casemap(text: str) -> bytes:
    """i;ascii-casemap, the default collation: ASCII letters compare without case."""
    return text.encode("utf-8", "surrogatepass").upper()


def _key_function(key: str, data: dict):
    """For keys read from the store: data is uid -> (sent_date, internaldate, size, keys)."""
    if key == "ARRIVAL":
        return lambda uid: data[uid][1]
    if key == "DATE":
        # The sent date, or the internal date where the Date header is missing or broken.
        return lambda uid: data[uid][0] if data[uid][0] is not None else data[uid][1]
    if key == "SIZE":
        return lambda uid: data[uid][2]
    name = key.lower()
    return lambda uid: _casemap(data[uid][3][name])


def _index_key_function(key: str, entries: dict):
    """ARRIVAL, DATE and SIZE straight from the shared in-memory index."""
    if key == "ARRIVAL":
        return lambda uid: entries[uid].internaldate
    if key == "DATE":
        def sent_or_arrival(uid):
            e = entries[uid]
            return e.sent_date if e.sent_date is not None else e.internaldate
        return sent_or_arrival
    return lambda uid: entries[uid].size


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


async def sorted_uids(session, criteria, program) -> list[int]:
    seqs = await Evaluator(session, program).run()
    all_uids = session.view.uids
    return await sort_matches(session, criteria, [all_uids[s - 1] for s in seqs])


async def sort_matches(session, criteria, matches: list[int]) -> list[int]:
    """UIDs (in mailbox order) in the order the criteria give."""
    if not matches:
        return []
    # Messages tie-break in mailbox order; stable sorts, last key first, give that.
    if not any(key in _PARSED for key, _ in criteria):
        entries = session.view.shared.entries
        result = [uid for uid in matches if uid in entries]
        for key, reverse in reversed(criteria):
            result.sort(key=_index_key_function(key, entries), reverse=reverse)
        return result
    data = await session.ctx.service.call("sort_data", session.view.shared.id)
    result = [uid for uid in matches if uid in data]
    for key, reverse in reversed(criteria):
        result.sort(key=_key_function(key, data), reverse=reverse)
    return result


async def sort(session, cmd):
    args = session.args(cmd)
    returns = parse_return_options(args)
    criteria = parse_sort_criteria(args)
    read_charset(args)
    program = parse_program(args)
    with_modseq = uses_modseq(program)
    if with_modseq:
        session.enable_condstore()
    uids = await sorted_uids(session, criteria, program)
    if cmd.uid:
        numbers = uids
    else:
        view = session.view
        if len(uids) > 64:
            seq = {u: i + 1 for i, u in enumerate(view.uids)}
            numbers = [seq[u] for u in uids]
        else:
            numbers = [view.seq_of(u) for u in uids]
    if returns is not None:
        if returns.save:      # RFC 5182 with ESORT: the saved set, order aside
            session.saved_search = sorted(uids)
        if returns.update:
            start_updates(session, cmd, program, returns, uids, criteria)
        if returns.answers:
            send_esearch(session, cmd, numbers, returns, sorted_order=True, uids=uids if with_modseq else None)
    else:
        modseq = highest_modseq(session, uids) if with_modseq else None
        session.conn.write(number_line(b"SORT", numbers, modseq))
    return "SORT completed"
