"""Render ENVELOPE, BODY and BODYSTRUCTURE as IMAP bytes, once, at arrival."""
from __future__ import annotations

from .imapstrings import nstring, paren
from .address import parsed_addresses
from .headers import HeaderBlock, raw_text
from .structure import Part, parse_params

# Rendered once and served to every client, so strings must be valid for
# IMAP4rev1 too: non-ASCII goes out as a literal rather than a quoted string.
_UTF8 = False


def _s(value: str | None) -> bytes:
    return nstring(value, _UTF8)


def _addresses(headers: HeaderBlock, name: str) -> list | None:
    value = headers.first(name)
    if value is None:
        return None
    addrs = parsed_addresses(raw_text(value))
    return addrs or None


def _address_list(addrs) -> bytes:
    if not addrs:
        return b"NIL"
    return b"(" + b"".join(paren([_s(a) for a in addr]) for addr in addrs) + b")"


def envelope(headers: HeaderBlock) -> bytes:
    def text(name):
        v = headers.text(name)
        return v if v else None
    frm = _addresses(headers, "from")
    sender = _addresses(headers, "sender") or frm
    reply_to = _addresses(headers, "reply-to") or frm
    items = [
        _s(text("date")), _s(text("subject")),
        _address_list(frm), _address_list(sender), _address_list(reply_to),
        _address_list(_addresses(headers, "to")), _address_list(_addresses(headers, "cc")),
        _address_list(_addresses(headers, "bcc")),
        _s(text("in-reply-to")), _s(text("message-id")),
    ]
    return paren(items)


def _params(params) -> bytes:
    if not params:
        return b"NIL"
    return paren([_s(x) for kv in params for x in kv])


def _disposition(part: Part) -> bytes:
    value = part.headers.text("content-disposition")
    if not value:
        return b"NIL"
    kind, _, rest = value.partition(";")
    kind = kind.strip()
    if not kind:
        return b"NIL"
    return paren([_s(kind), _params(parse_params(rest))])


def _language(part: Part) -> bytes:
    value = part.headers.text("content-language")
    if not value:
        return b"NIL"
    langs = [x.strip() for x in value.split(",") if x.strip()]
    if not langs:
        return b"NIL"
    if len(langs) == 1:
        return _s(langs[0])
    return paren([_s(x) for x in langs])


def body_structure(raw: bytes, part: Part, extended: bool) -> bytes:
    if part.children is not None:
        kids = b"".join(body_structure(raw, c, extended) for c in part.children)
        items = [kids, _s(part.stype)]
        if extended:
            params = [(k, v) for k, v in part.params]
            items += [_params(params), _disposition(part), _language(part),
                      _s(part.headers.text("content-location"))]
        return b"(" + b" ".join(items) + b")"
    h = part.headers
    enc = h.text("content-transfer-encoding")
    params = part.params
    if part.mtype.lower() == "text" and not any(k.lower() == "charset" for k, _ in params):
        # RFC 2045 5.2 / RFC 2046 4.1.2: text without a charset is us-ascii; said
        # explicitly (as Dovecot does), after any other parameters.
        params = params + [("charset", "us-ascii")]
    items = [_s(part.mtype), _s(part.stype), _params(params),
             _s(h.text("content-id") or None), _s(h.text("content-description") or None),
             _s((enc or "7bit").upper()), b"%d" % (part.end - part.bstart)]
    if part.message is not None:
        inner = part.message
        items += [envelope(inner.headers), body_structure(raw, inner, extended), b"%d" % part.lines]
    elif part.mtype.lower() == "text":
        items.append(b"%d" % part.lines)
    if extended:
        items += [_s(h.text("content-md5") or None), _disposition(part), _language(part),
                  _s(h.text("content-location") or None)]
    return paren(items)
