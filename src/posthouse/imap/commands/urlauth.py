"""GENURLAUTH, URLFETCH and RESETKEY (URLAUTH, RFC 4467), with URLFETCH's
BODY, BINARY and BODYPARTSTRUCTURE (URLAUTH=BINARY, RFC 5524).

A URLAUTH URL lets whoever its access names (one user, any user of this
server) read one message or part of the URL's owner, until the owner resets
the mailbox's key or the URL expires.
"""
from __future__ import annotations

from ...store.api import NoSuchMailbox
from ..errors import bad, no
from ..protocol.tokens import Atom, ParenList, String
from ..protocol.writer import literal, nstring
from ..url_fetch import MECHANISM, binary_of, body_of, bodypartstructure_of, open_url, own_host, sign
from ..urls import BadUrl, parse_imap_url


def _url_text(tok) -> str:
    if isinstance(tok, Atom):
        return tok.value
    if isinstance(tok, String):
        return tok.text()
    raise bad("Expected a URL")


def _mechanism(tok) -> str:
    if not isinstance(tok, Atom):
        raise bad("Expected a URLAUTH mechanism")
    if tok.upper != MECHANISM:
        raise no(f"Unsupported URLAUTH mechanism {tok.value}")
    return MECHANISM


async def genurlauth(session, cmd):
    args = session.args(cmd)
    signed = []
    while True:
        text = _url_text(args.next("URL"))
        _mechanism(args.next("mechanism"))
        try:
            url = parse_imap_url(text)
        except BadUrl as e:
            raise bad(f"Invalid URL: {e}") from None
        if url.access is None or url.token is not None or url.user is None:
            raise bad("GENURLAUTH takes an absolute URL ending in ;URLAUTH=access")
        if url.user.lower() != session.user.name.lower() or not own_host(session, url.host):
            raise no("A URL can only be authorized by its owner, on its own server", f"BADURL {text}")
        try:
            info = await session.ctx.service.call("get_mailbox", session.user.id, url.mailbox)
        except NoSuchMailbox:
            raise no("No such mailbox", f"BADURL {text}") from None
        if url.uidvalidity is not None and url.uidvalidity != info.uidvalidity:
            raise no("UIDVALIDITY has changed", f"BADURL {text}")
        key = await session.ctx.service.call("signing_key", info.id)
        signed.append(f"{text}:{MECHANISM}:{sign(key, text)}")
        if not args.more():
            break
    session.untagged(b"GENURLAUTH " + b" ".join(nstring(s) for s in signed))


async def urlfetch(session, cmd):
    args = session.args(cmd)
    if not args.more():
        raise bad("URLFETCH needs a URL")
    requests = []
    while args.more():
        tok = args.next("URL")
        if isinstance(tok, ParenList):          # (url BODY BINARY BODYPARTSTRUCTURE), RFC 5524
            if not tok.items:
                raise bad("Empty URLFETCH request")
            wants = []
            for t in tok.items[1:]:
                if not isinstance(t, Atom) or t.upper not in ("BODY", "BINARY", "BODYPARTSTRUCTURE"):
                    raise bad("Unknown URLFETCH parameter")
                wants.append(t.upper)
            requests.append((_url_text(tok.items[0]), wants))
        else:
            requests.append((_url_text(tok), None))
    for text, wants in requests:
        head = b"URLFETCH " + nstring(text) + b" "
        try:
            url = parse_imap_url(text)
            if url.access is None:
                raise BadUrl("URLFETCH takes URLAUTH URLs")
            target = await open_url(session, url)
            if wants is None:
                session.untagged(head + literal(body_of(target)))
                continue
            parts = []
            binary = binary_of(target) if "BINARY" in wants else None
            # The order RFC 5524's examples give, whatever order they were asked in.
            if "BODYPARTSTRUCTURE" in wants:
                parts.append(b"(BODYPARTSTRUCTURE " + bodypartstructure_of(target, binary) + b")")
            if "BODY" in wants:
                parts.append(b"(BODY " + literal(body_of(target)) + b")")
            if "BINARY" in wants:
                data = binary
                parts.append(b"(BINARY " + (b"NIL" if data is None else literal(data, binary=b"\x00" in data)) + b")")
            session.untagged(head + b" ".join(parts))
        except BadUrl:
            session.untagged(head + b"NIL")      # the same for every failure: nothing leaks


async def resetkey(session, cmd):
    args = session.args(cmd)
    mailbox_id = None
    if args.more():
        name = args.mailbox()
        while args.more():
            _mechanism(args.next("mechanism"))
        try:
            mailbox_id = (await session.ctx.service.call("get_mailbox", session.user.id, name)).id
        except NoSuchMailbox:
            raise no("No such mailbox: " + name, "NONEXISTENT") from None
    await session.ctx.service.call("reset_urlauth_keys", session.user.id, mailbox_id)
