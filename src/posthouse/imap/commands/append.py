"""APPEND, with MULTIAPPEND (RFC 3502), binary literals (RFC 3516) and CATENATE (RFC 4469)."""
from __future__ import annotations

import time

from ...store.api import DiskFull, NoSuchMailbox
from ..args import format_uid_set, parse_datetime
from ..errors import bad, no
from ..protocol.tokens import Atom, ParenList, String
from ..url_fetch import body_of, open_url
from ..urls import BadUrl, parse_imap_url
from .store import parse_flag_list


async def append(session, cmd):
    args = session.args(cmd)
    name = args.mailbox()
    items = []          # (message bytes, or catenate parts; flags; date; literal8)
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
        when = idate if idate is not None else time.time()
        if isinstance(tok, Atom) and tok.upper == "CATENATE":
            items.append((_catenate_parts(args.plist("CATENATE parts")), flags, when, False))
        elif isinstance(tok, String) and tok.is_literal:
            _check_literal(session, tok)
            items.append((tok.value, flags, when, tok.literal8))
        else:
            raise bad("APPEND needs the message as a literal or CATENATE")
        if not args.more():
            break
    try:
        info = await session.ctx.service.call("get_mailbox", session.user.id, name)
    except NoSuchMailbox:
        raise no("Mailbox doesn't exist: " + name, "TRYCREATE") from None
    # Every URL is read before anything is stored: a MULTIAPPEND stores all or none.
    messages = []
    for data, flags, when, binary in items:
        if isinstance(data, list):
            data, binary = await _catenate(session, data)
        messages.append((data, flags, when, binary))
    if not session.ctx.service.space.room_for(sum(len(m[0]) for m in messages)):
        raise DiskFull()    # NO [LIMIT]: nothing is stored that the disk has no room for
    results = await session.ctx.service.append(info.id, messages)
    uidset = format_uid_set([r.uid for r in results])
    return f"APPENDUID {results[0].uidvalidity} {uidset}", "APPEND completed"


def _check_literal(session, tok: String) -> None:
    if len(tok.value) > session.ctx.config.max_message_size:
        raise no("Message too large", "TOOBIG")
    if not tok.literal8 and b"\x00" in tok.value:
        raise no("NUL in a non-binary literal; use ~{n}", "UNKNOWN-CTE")


def _catenate_parts(items: list) -> list:
    """CATENATE (TEXT literal / URL url ...) (RFC 4469): [("TEXT", String) | ("URL", text)]."""
    if not items or len(items) % 2:
        raise bad("Invalid CATENATE parts")
    parts = []
    for kind, value in zip(items[0::2], items[1::2]):
        word = kind.upper if isinstance(kind, Atom) else None
        if word == "TEXT" and isinstance(value, String) and value.is_literal:
            parts.append(("TEXT", value))
        elif word == "URL" and isinstance(value, (Atom, String)):
            parts.append(("URL", value.value if isinstance(value, Atom) else value.text()))
        else:
            raise bad("CATENATE takes TEXT literals and URLs")
    return parts


async def _catenate(session, parts: list) -> tuple[bytes, bool]:
    """The message the parts make; (bytes, whether any of them is binary)."""
    limit = session.ctx.config.max_message_size
    chunks, binary, size = [], False, 0
    for kind, value in parts:
        if kind == "TEXT":
            _check_literal(session, value)
            data = value.value
            binary = binary or value.literal8
        else:
            try:
                data = body_of(await open_url(session, parse_imap_url(value)))
            except BadUrl as e:
                raise no(f"{e}: {value}", "BADURL " + _code_text(value)) from None
            binary = binary or b"\x00" in data
        size += len(data)
        if size > limit:
            raise no("Message too large", "TOOBIG")
        chunks.append(data)
    return b"".join(chunks), binary


def _code_text(url: str) -> str:
    """The URL as a response code may carry it (no ']' or controls)."""
    return "".join(c for c in url if c != "]" and 0x20 < ord(c) < 0x7F) or "-"
