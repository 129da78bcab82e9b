"""SEARCH, with CHARSET, ESEARCH return options (RFC 4731) and SAVE (RFC 5182)."""
from __future__ import annotations

from ..args import format_uid_set
from ..protocol.writer import number_line
from ..errors import bad, no
from ..protocol.tokens import Atom
from ..search import Evaluator, parse_program, uses_modseq

_CHARSETS = {"UTF-8", "US-ASCII"}
_RETURN_OPTS = {"MIN", "MAX", "ALL", "COUNT", "SAVE"}


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
        if returns and "SAVE" in returns:
            session.saved_search = []
        raise
    with_modseq = uses_modseq(program)
    if with_modseq:
        session.enable_condstore()
    seqs = await Evaluator(session, program).run()
    uids = session.view.uids
    numbers = [uids[s - 1] for s in seqs] if cmd.uid else seqs
    matched = numbers if cmd.uid else [uids[s - 1] for s in seqs]
    if returns is not None and "SAVE" in returns:
        session.saved_search = matched
        if returns == ["SAVE"]:
            return "SEARCH completed"
    if returns is None and not session.rev2:
        modseq = highest_modseq(session, matched) if with_modseq else None
        session.conn.write(number_line(b"SEARCH", numbers, modseq))
        return "SEARCH completed"
    opts = [r for r in (returns or ["ALL"]) if r != "SAVE"]
    if returns and "SAVE" in returns and not opts:
        return "SEARCH completed"
    send_esearch(session, cmd, numbers, opts, sorted_order=False, uids=matched if with_modseq else None)
    return "SEARCH completed"


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


def parse_return_options(args) -> list[str] | None:
    """RETURN (...) before the criteria of SEARCH or SORT (RFC 4731, RFC 5267); None without."""
    tok = args.peek()
    if not (isinstance(tok, Atom) and tok.upper == "RETURN"):
        return None
    args.next()
    returns = []
    for opt in args.plist("return options"):
        if not isinstance(opt, Atom) or opt.upper not in _RETURN_OPTS:
            raise bad("Unknown return option")
        returns.append(opt.upper)
    return returns or ["ALL"]


def send_esearch(session, cmd, numbers: list[int], opts: list[str], sorted_order: bool,
                 uids: list[int] | None = None) -> None:
    """The ESEARCH response. For a SORT (ESORT, RFC 5267 3) MIN and MAX are the first
    and last in sort order, and ALL keeps that order.

    uids (the matches' UIDs, in the order of numbers) is given when the search had
    a MODSEQ key: the response then ends with the highest MODSEQ of the messages
    it names, of all of them with ALL or COUNT, else of the MIN and MAX ones."""
    parts = [f'(TAG "{cmd.tag}")']
    if cmd.uid:
        parts.append("UID")
    reported = set()
    if numbers:
        if "MIN" in opts:
            i = 0 if sorted_order else numbers.index(min(numbers))
            parts.append(f"MIN {numbers[i]}")
            reported.add(i)
        if "MAX" in opts:
            i = len(numbers) - 1 if sorted_order else numbers.index(max(numbers))
            parts.append(f"MAX {numbers[i]}")
            reported.add(i)
    if "COUNT" in opts:
        parts.append(f"COUNT {len(numbers)}")
    if numbers and "ALL" in opts:
        parts.append("ALL " + (_ordered_set(numbers) if sorted_order else format_uid_set(numbers)))
    if uids and numbers:
        named = uids if "ALL" in opts or "COUNT" in opts else [uids[i] for i in sorted(reported)]
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
