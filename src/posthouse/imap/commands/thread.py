"""THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES."""
from __future__ import annotations

from ..errors import bad
from ..protocol.tokens import Atom
from ..search import Evaluator, parse_program
from ..threading import ThreadMessage, ordered_subject, references, render
from .search import read_charset

ALGORITHMS = {"ORDEREDSUBJECT": ordered_subject, "REFERENCES": references}


async def thread(session, cmd):
    args = session.args(cmd)
    tok = args.next("threading algorithm")
    if not isinstance(tok, Atom):
        raise bad("Threading algorithm expected")
    algorithm = ALGORITHMS.get(tok.upper)
    if algorithm is None:
        raise bad(f"Unknown threading algorithm {tok.value}")
    read_charset(args)
    program = parse_program(args)
    seqs = await Evaluator(session, program).run()
    view = session.view
    messages = []
    if seqs:
        data = await session.ctx.service.call("thread_data", view.shared.id)
        for seq in sorted(seqs):
            uid = view.uids[seq - 1]
            row = data.get(uid)
            if row is None:
                continue
            sent, internal, subject, message_id, in_reply_to, refs = row
            messages.append(ThreadMessage(uid if cmd.uid else seq, sent if sent is not None else internal,
                                          subject or "", message_id or "", in_reply_to or "", refs or ""))
    text = render(algorithm(messages))
    session.conn.write(b"* THREAD" + (b" " + text.encode() if text else b"") + b"\r\n")
    return "THREAD completed"
