"""Reading what an IMAP URL names, with the right to read it checked: the
session's own mail, or another user's through a URLAUTH-authorized URL
(RFC 4467) whose token was signed with that mailbox's access key.

Every failure is the same BadUrl to the caller (CATENATE answers
NO [BADURL], URLFETCH answers NIL): a URL never tells whether another
user's mailbox or message exists.
"""
from __future__ import annotations

import hashlib
import hmac
import socket
from dataclasses import dataclass
from datetime import datetime, timezone

from ..mime.decode import UnknownEncoding, decode_transfer
from ..mime.imapformat import body_structure
from ..mime.sections import filter_header_fields, resolve, section_range
from ..mime.headers import HeaderBlock
from ..mime.structure import Part, parse_part, resolve as resolve_part
from ..store.api import MessageData, NoSuchMailbox
from .protocol.tokens import ParseError
from .urls import BadUrl, ImapUrl

MECHANISM = "INTERNAL"


def sign(key: bytes, rump: str) -> str:
    """The INTERNAL mechanism's verifier: HMAC-SHA256 of the URL rump under the
    mailbox's access key."""
    return hmac.new(key, rump.encode("utf-8"), hashlib.sha256).hexdigest()


def own_host(session, host: str | None) -> bool:
    if host is None:
        return True
    names = {"localhost", session.ctx.config.hostname.lower() or socket.gethostname().lower()}
    local = getattr(session.conn, "local_host", None)
    if local:
        names.add(local.lower())
    return host.lower() in names


@dataclass
class UrlTarget:
    url: ImapUrl
    msg: MessageData
    raw: bytes


async def open_url(session, url: ImapUrl) -> UrlTarget:
    """The message a URL names, if this session may read it."""
    service = session.ctx.service
    if not own_host(session, url.host):
        raise BadUrl("The URL names another server")
    if url.access is not None:
        if url.token is None or url.user is None:
            raise BadUrl("URLAUTH URL without its verifier")
        if url.mechanism.upper() != MECHANISM or not url.access_allows(session.user.name):
            raise BadUrl("Not authorized")
        if url.expire is not None and url.expire <= datetime.now(timezone.utc):
            raise BadUrl("Expired")
        owner = await service.call("get_user", url.user)
        if owner is None:
            raise BadUrl("Not authorized")
    else:
        if url.user is not None and url.user.lower() != session.user.name.lower():
            raise BadUrl("Another user's mail needs a URLAUTH URL")
        owner = session.user
    try:
        info = await service.call("get_mailbox", owner.id, url.mailbox)
    except NoSuchMailbox:
        raise BadUrl("No such mailbox") from None
    if url.access is not None:
        key = await service.call("urlauth_key", info.id)
        if key is None or not hmac.compare_digest(sign(key, url.rump), url.token.lower()):
            raise BadUrl("Not authorized")
    if url.uidvalidity is not None and url.uidvalidity != info.uidvalidity:
        raise BadUrl("UIDVALIDITY has changed")
    found = await service.call("message_data", info.id, [url.uid], True)
    msg = found.get(url.uid)
    if msg is None:
        raise BadUrl("No such message")
    try:
        raw = msg.inline if msg.inline is not None else await service.read_blob(msg.blob_key, 0, msg.size)
    except FileNotFoundError:
        raise BadUrl("No such message") from None
    return UrlTarget(url, msg, raw)


def _section(target: UrlTarget):
    """(numbers, keyword, fields) of the URL's section."""
    from .commands.fetch import parse_section
    if target.url.section is None:
        return [], None, None
    try:
        item = parse_section(target.url.section)
    except ParseError:
        raise BadUrl("Invalid section") from None
    return item.numbers, item.keyword, item.fields


def _partial(data: bytes, partial) -> bytes:
    if partial is None:
        return data
    offset, length = partial
    return data[offset:] if length is None else data[offset:offset + length]


def body_of(target: UrlTarget) -> bytes:
    """BODY[section]<partial> of the URL's message, as the URL names it."""
    numbers, keyword, fields = _section(target)
    span = section_range(target.msg.parts, numbers, keyword)
    if span is None:
        raise BadUrl("No such section")
    data = target.raw[span[0]:span[1]]
    if fields is not None:
        data = filter_header_fields(data, fields, keyword.endswith(".NOT"))
    return _partial(data, target.url.partial)


def binary_of(target: UrlTarget) -> bytes | None:
    """The part decoded from its transfer encoding (RFC 5524 BINARY); None
    where the encoding is unknown."""
    numbers, keyword, _fields = _section(target)
    if keyword is not None:
        raise BadUrl("BINARY takes part numbers only")
    if not numbers:
        return _partial(target.raw, target.url.partial)
    node = resolve(target.msg.parts, numbers)
    if node is None or "c" in node:
        raise BadUrl("No such leaf part")
    try:
        data = decode_transfer(target.raw[node["b"]:node["e"]], node.get("x", "7bit"))
    except UnknownEncoding:
        return None
    return _partial(data, target.url.partial)


def bodypartstructure_of(target: UrlTarget, decoded: bytes | None = None) -> bytes:
    """The BODYSTRUCTURE of the part the URL names (RFC 5524). With decoded (the
    part as BINARY returns it), it describes that: no transfer encoding left
    (7bit, 8bit or binary as the bytes are) and their size. Its line count is
    given as 0, as Dovecot gives it (imaptest urlauth-binary expects that)."""
    numbers, keyword, _fields = _section(target)
    if keyword is not None:
        raise BadUrl("BODYPARTSTRUCTURE takes part numbers only")
    root = parse_part(target.raw, 0, len(target.raw))
    part = resolve_part(root, numbers) if numbers else root
    if part is None:
        raise BadUrl("No such part")
    if decoded is None or part.children is not None or part.message is not None:
        return body_structure(target.raw, part, extended=True)
    encoding = b"binary" if b"\x00" in decoded else b"8bit" if any(b > 0x7F for b in decoded) else b"7bit"
    converted = Part(0, 0, len(decoded))
    converted.mtype, converted.stype, converted.params = part.mtype, part.stype, part.params
    converted.headers = HeaderBlock(b"")
    converted.headers.fields = [f for f in part.headers.fields if f[0] != "content-transfer-encoding"]
    converted.headers.fields.append(("content-transfer-encoding", b" " + encoding))
    return body_structure(decoded, converted, extended=True)
