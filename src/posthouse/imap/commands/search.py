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
    returns = None
    tok = args.peek()
    if isinstance(tok, Atom) and tok.upper == "RETURN":
        args.next()
        returns = []
        for opt in args.plist("return options"):
            if not isinstance(opt, Atom) or opt.upper not in _RETURN_OPTS:
                raise bad("Unknown SEARCH return option")
            returns.append(opt.upper)
        if not returns:
            returns = ["ALL"]
    tok = args.peek()
    if isinstance(tok, Atom) and tok.upper == "CHARSET":
        args.next()
        charset = args.astring("charset").upper()
        if charset not in _CHARSETS:
            raise no("Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
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
    parts = [f'(TAG "{cmd.tag}")']
    if cmd.uid:
        parts.append("UID")
    if numbers:
        if "MIN" in opts:
            parts.append(f"MIN {min(numbers)}")
        if "MAX" in opts:
            parts.append(f"MAX {max(numbers)}")
    if "COUNT" in opts:
        parts.append(f"COUNT {len(numbers)}")
    if numbers and "ALL" in opts:
        parts.append("ALL " + format_uid_set(numbers))
    session.untagged("ESEARCH " + " ".join(parts))
    return "SEARCH completed"
