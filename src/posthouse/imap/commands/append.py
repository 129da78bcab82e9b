"""APPEND, with MULTIAPPEND (RFC 3502) and binary literals (RFC 3516)."""
from __future__ import annotations

import time

from ...store.api import NoSuchMailbox
from ..args import format_uid_set, parse_datetime
from ..errors import bad, no
from ..protocol.tokens import ParenList, String
from .store import parse_flag_list


async def append(session, cmd):
    args = session.args(cmd)
    name = args.mailbox()
    items = []
    limit = session.ctx.config.max_message_size
    while True:
        flags = frozenset()
        idate = None
        tok = args.next("message")
        if isinstance(tok, ParenList):
            flags = parse_flag_list(tok.items)
            tok = args.next("message")
        if isinstance(tok, String) and not tok.is_literal:
            idate = parse_datetime(tok.text())   # a quoted date-time
            tok = args.next("message")
        if not (isinstance(tok, String) and tok.is_literal):
            raise bad("APPEND needs the message as a literal")
        if len(tok.value) > limit:
            raise no("Message too large", "TOOBIG")
        if not tok.literal8 and b"\x00" in tok.value:
            raise no("NUL in a non-binary literal; use ~{n}", "UNKNOWN-CTE")
        items.append((tok.value, flags, idate if idate is not None else time.time(), tok.literal8))
        if not args.more():
            break
    try:
        info = await session.ctx.service.call("get_mailbox", session.user.id, name)
    except NoSuchMailbox:
        raise no("Mailbox doesn't exist: " + name, "TRYCREATE") from None
    results = await session.ctx.service.append(info.id, items)
    uidset = format_uid_set([r.uid for r in results])
    return f"APPENDUID {results[0].uidvalidity} {uidset}", "APPEND completed"

