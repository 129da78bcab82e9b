"""SEARCH, with CHARSET, ESEARCH return options (RFC 4731), SAVE (RFC 5182) and
CONTEXT=SEARCH's PARTIAL and UPDATE (RFC 5267)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..args import format_uid_set
from ..protocol.writer import number_line
from ..errors import bad, no
from ..protocol.tokens import Atom
from ..search import Evaluator, parse_program, uses_modseq
from ..search_updates import start_updates

_CHARSETS = {"UTF-8", "US-ASCII"}


async def search(session, cmd):
    args = session.args(cmd)
    returns = parse_return_options(args)
    tok = args.peek()
    if isinstance(tok, Atom) and tok.upper == "CHARSET":
        args.next()
        read_charset(args)
    try:
        program = parse_program(args)
    except Exception:
        if returns is not None and returns.save:
            session.saved_search = []
        raise
    with_modseq = uses_modseq(program)
    if with_modseq:
        await session.start_condstore()
    seqs = await Evaluator(session, program).run()
    plain = returns is None and not session.rev2
    # The matching UIDs; a plain SEARCH (the commonest) needs none of them.
    matched = uids_at(session.view.uids, seqs) if cmd.uid or with_modseq or not plain else None
    numbers = matched if cmd.uid else seqs
    if plain:
        modseq = highest_modseq(session, matched) if with_modseq else None
        session.conn.write(number_line(b"SEARCH", numbers, modseq, ascending=True))
        return "SEARCH completed"
    returns = returns or ReturnOptions(results=["ALL"])
    if returns.save:
        session.saved_search = saved_result(returns, matched)
    if returns.update:
        start_updates(session, cmd, program, returns, matched)
    if returns.answers:
        send_esearch(session, cmd, numbers, returns, sorted_order=False, uids=matched if with_modseq else None)
    return "SEARCH completed"


def saved_result(opts: "ReturnOptions", uids: list[int]) -> list[int]:
    """What RETURN (SAVE ...) keeps for '$'. SAVE alone, or with ALL or COUNT:
    every match, in the order given (RFC 5182 2.4). Otherwise only what the
    other options name: the MIN and/or MAX message (RFC 5182 2.4) and the
    PARTIAL window's (RFC 9394 3.2). uids are in the order MIN, MAX and
    PARTIAL are taken from: ascending, or a SORT's."""
    results = set(opts.results)
    if not uids or "ALL" in results or "COUNT" in results or not (results or opts.partial):
        return uids
    kept = set()
    if opts.partial is not None:
        lo, hi = opts.partial
        kept.update(uids[lo - 1:hi])
    if "MIN" in results:
        kept.add(uids[0])
    if "MAX" in results:
        kept.add(uids[-1])
    return sorted(kept)


def uids_at(uids, seqs: list[int]) -> list[int]:
    """The UIDs at these (ascending) sequence numbers; a run of them is one slice."""
    if seqs and seqs[-1] - seqs[0] + 1 == len(seqs):
        return uids[seqs[0] - 1:seqs[-1]].tolist()
    return [uids[s - 1] for s in seqs]


def highest_modseq(session, uids) -> int | None:
    """The highest MODSEQ among the messages a search returns (RFC 7162 3.1.5), None for none."""
    modseq_of = session.modseq_of
    return max(map(modseq_of, uids), default=None)


def read_charset(args) -> str:
    """The charset argument of SEARCH, SORT and THREAD: one we can search in, or NO."""
    charset = args.astring("charset").upper()
    if charset not in _CHARSETS:
        raise no("Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    return charset


@dataclass
class ReturnOptions:
    """RETURN (...) of SEARCH and SORT: ESEARCH (RFC 4731), SAVE (RFC 5182),
    and CONTEXT=SEARCH / CONTEXT=SORT's PARTIAL, UPDATE and CONTEXT (RFC 5267)."""
    results: list[str] = field(default_factory=list)   # MIN MAX COUNT ALL, as asked
    partial: tuple[int, int] | None = None
    save: bool = False
    update: bool = False

    @property
    def answers(self) -> bool:
        """Whether an ESEARCH response is owed (SAVE alone asks for none)."""
        return bool(self.results or self.partial or self.update)


def parse_return_options(args) -> ReturnOptions | None:
    """RETURN (...) before the criteria of SEARCH or SORT; None without."""
    tok = args.peek()
    if not (isinstance(tok, Atom) and tok.upper == "RETURN"):
        return None
    args.next()
    opts = ReturnOptions()
    items = args.plist("return options")
    i = 0
    while i < len(items):
        opt = items[i]
        name = opt.upper if isinstance(opt, Atom) else None
        i += 1
        if name in ("MIN", "MAX", "ALL", "COUNT"):
            if name not in opts.results:
                opts.results.append(name)
        elif name == "SAVE":
            opts.save = True
        elif name == "UPDATE":
            opts.update = True
        elif name == "CONTEXT":
            pass    # a hint that the client will ask again: nothing to keep for it
        elif name == "PARTIAL" and opts.partial is None and i < len(items):
            opts.partial = _partial_range(items[i])
            i += 1
        else:
            raise bad("Unknown return option")
    if opts.partial and "ALL" in opts.results:
        raise bad("PARTIAL and ALL can't be used together")
    if opts.update and opts.save:
        raise bad("UPDATE and SAVE can't be used together")
    if not (opts.results or opts.partial or opts.save or opts.update):
        opts.results = ["ALL"]     # RETURN () is RETURN (ALL)
    return opts


def _partial_range(tok) -> tuple[int, int]:
    """low:high, both positive, either order (RFC 5267 4.4)."""
    text = tok.value if isinstance(tok, Atom) else ""
    lo, sep, hi = text.partition(":")
    if not (sep and lo.isdigit() and hi.isdigit() and len(lo) < 11 and len(hi) < 11):
        raise bad("PARTIAL needs a range low:high")
    lo_n, hi_n = sorted((int(lo), int(hi)))
    if lo_n < 1 or hi_n >= 2**32:
        raise bad("Invalid PARTIAL range")
    return lo_n, hi_n


def send_esearch(session, cmd, numbers: list[int], opts: ReturnOptions, sorted_order: bool,
                 uids: list[int] | None = None, tag: str | None = None) -> None:
    """The ESEARCH response. For a SORT (ESORT, RFC 5267 3) MIN and MAX are the first
    and last in sort order, and ALL and PARTIAL keep that order.

    uids (the matches' UIDs, in the order of numbers) is given when the search had
    a MODSEQ key: the response then ends with the highest MODSEQ of the messages
    it names, of all of them with ALL or COUNT, else of the MIN and MAX ones."""
    results = opts.results
    parts = [f'(TAG "{tag or cmd.tag}")']
    if cmd.uid:
        parts.append("UID")
    reported = set()
    if numbers:
        if "MIN" in results:
            i = 0 if sorted_order else numbers.index(min(numbers))
            parts.append(f"MIN {numbers[i]}")
            reported.add(i)
        if "MAX" in results:
            i = len(numbers) - 1 if sorted_order else numbers.index(max(numbers))
            parts.append(f"MAX {numbers[i]}")
            reported.add(i)
    if "COUNT" in results:
        parts.append(f"COUNT {len(numbers)}")
    fmt = _ordered_set if sorted_order else format_uid_set
    if numbers and "ALL" in results:
        parts.append("ALL " + fmt(numbers))
    if opts.partial is not None:
        lo, hi = opts.partial
        window = numbers[lo - 1:hi]
        parts.append(f"PARTIAL ({lo}:{hi} {fmt(window) if window else 'NIL'})")
        reported.update(range(lo - 1, min(hi, len(numbers))))
    if uids and numbers:
        named = uids if "ALL" in results or "COUNT" in results else [uids[i] for i in sorted(reported)]
        modseq = highest_modseq(session, named)
        if modseq is not None:
            parts.append(f"MODSEQ {modseq}")
    session.untagged("ESEARCH " + " ".join(parts))


def _ordered_set(numbers: list[int]) -> str:
    """A sequence set that keeps the given order: only ascending runs become ranges."""
    out = []
    start = prev = numbers[0]
    for n in numbers[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}:{prev}")
        if n is not None:
            start = prev = n
    return ",".join(out)
