"""`posthouse classify FILE...`: sort received messages (bounce, complaint,
auto-reply, unsubscribe, reply, other), one JSON object per line per file:
{"file", "kind", "hard", "reason", "recipients": [{"address", "status", "hard", "reason"}]}.
A file that can't be read gets {"file", "error"} and the exit status is 1 at the end."""
from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "classify", help="sort received messages: bounce, complaint, auto-reply, unsubscribe, reply, other",
        description="Print one JSON object per file: {\"file\", \"kind\", \"hard\", \"reason\", \"recipients\": "
                    "[{\"address\", \"status\", \"hard\", \"reason\"}]}. '-' reads a message from stdin.")
    p.add_argument("files", nargs="+", metavar="FILE", help="a message file (.eml, RFC 5322), or - for stdin")
    p.set_defaults(func=cmd_classify)


def cmd_classify(args) -> int:
    from . import classify
    status = 0
    out = sys.stdout
    for name in args.files:
        try:
            if name == "-":
                raw = sys.stdin.buffer.read()
            else:
                with open(name, "rb") as f:
                    raw = f.read()
        except OSError as e:
            out.write(json.dumps({"file": name, "error": e.strerror or str(e)}) + "\n")
            status = 1
            continue
        out.write(json.dumps(classify(raw).to_json(name), ensure_ascii=False) + "\n")
        out.flush()
    return status
