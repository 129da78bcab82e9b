"""SEARCH, with CHARSET, ESEARCH return options (RFC 4731) and SAVE (RFC 5182)."""
from __future__ import annotations

from ..args import format_uid_set
from ..protocol.writer import number_line
from ..errors import bad, no
from ..protocol.tokens import Atom
from ..search import Evaluator, parse_program

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
    seqs = await Evaluator(session, program).run()
    uids = session.view.uids
    numbers = [uids[s - 1] for s in seqs] if cmd.uid else seqs
    if returns is not None and "SAVE" in returns:
        session.saved_search = numbers if cmd.uid else [uids[s - 1] for s in seqs]
        if returns == ["SAVE"]:
            return "SEARCH completed"
    if returns is None and not session.rev2:
        session.conn.write(number_line(b"SEARCH", numbers))
        return "SEARCH completed"
    opts = [r for r in (returns or ["ALL"]) if r != "SAVE"]
    if returns and "SAVE" in returns and not opts:
        return "SEARCH completed"
    send_esearch(session, cmd, numbers, opts, sorted_order=False)
    return "SEARCH completed"


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


def send_esearch(session, cmd, numbers: list[int], opts: list[str], sorted_order: bool) -> None:
    """The ESEARCH response. For a SORT (ESORT, RFC 5267 3) MIN and MAX are the first
    and last in sort order, and ALL keeps that order."""
    parts = [f'(TAG "{cmd.tag}")']
    if cmd.uid:
        parts.append("UID")
    if numbers:
        if "MIN" in opts:
            parts.append(f"MIN {numbers[0] if sorted_order else min(numbers)}")
        if "MAX" in opts:
            parts.append(f"MAX {numbers[-1] if sorted_order else max(numbers)}")
    if "COUNT" in opts:
        parts.append(f"COUNT {len(numbers)}")
    if numbers and "ALL" in opts:
        parts.append("ALL " + (_ordered_set(numbers) if sorted_order else format_uid_set(numbers)))
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
