"""Parse a message once, at arrival, into everything FETCH and SEARCH need."""
from __future__ import annotations

import email.utils
from dataclasses import dataclass

from . import imapformat
from .address import MISSING_DOMAIN, address_text, parsed_addresses
from .decode import UnknownEncoding, decode_transfer, html_to_text, normalize_space, to_text
from .headers import decode_words, raw_text
from .structure import Part, parse_part
from .subject import base_subject

# Search text is bounded so a giant attachment-like text part cannot bloat the index.
MAX_SEARCH_TEXT = 1 << 20
# Raised whenever body_text comes out different for the same message (2: HTML
# markup and other textual parts): a store then makes its older texts again.
SEARCH_TEXT_VERSION = 2
# Parts other than text/* that are text to a reader, searched as text/* is.
_TEXTUAL = {
    "application": {"xhtml+xml", "xml", "json", "javascript", "ecmascript", "x-javascript", "x-sh",
                    "x-tex", "x-latex", "yaml", "x-yaml", "sql"},
    "message": {"delivery-status", "disposition-notification", "global-delivery-status",
                "global-disposition-notification", "global-headers", "feedback-report"},
}
_HTML = {("text", "html"), ("application", "xhtml+xml")}


def is_textual(mtype: str, stype: str) -> bool:
    return mtype == "text" or stype in _TEXTUAL.get(mtype, ()) or (
        mtype == "application" and stype.endswith(("+xml", "+json")))


@dataclass(slots=True)
class ParsedMessage:
    envelope: bytes
    body: bytes              # BODY (non-extensible)
    bodystructure: bytes
    parts: dict              # offset tree, see Part.to_json
    header_size: int
    sent_date: float | None  # Date: header as a timestamp
    subject: str             # decoded
    from_: str               # decoded "Name <a@b>" lists, for SEARCH and SORT
    to: str
    cc: str
    bcc: str
    message_id: str
    in_reply_to: str
    references: str
    body_text: str           # decoded text of the text parts, for SEARCH BODY
    sort_keys: dict = None   # SORT keys (RFC 5256, RFC 5957) that need parsing: see sort_keys()


def normalize_newlines(raw: bytes) -> bytes:
    """IMAP messages use CRLF; mail from LF-only sources is converted once here."""
    if b"\n" not in raw:
        return raw
    if raw.count(b"\n") == raw.count(b"\r\n"):
        return raw
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _decoded_addresses(part: Part, name: str) -> str:
    value = part.headers.first(name)
    if value is None:
        return ""
    addrs = parsed_addresses(raw_text(value))
    decoded = [(decode_words(n) if n else n, a, m, h) for n, a, m, h in addrs]
    return address_text(decoded)


def _first_address(part: Part, name: str) -> tuple[str, str]:
    """(addr-mailbox, display) of the first address, as SORT FROM and DISPLAYFROM want them."""
    value = part.headers.first(name)
    if value is None:
        return "", ""
    for display_name, _adl, mailbox, host in parsed_addresses(raw_text(value)):
        if mailbox is None:
            continue        # end of a group
        if host is None:
            return mailbox, mailbox   # a group: its name stands first, as in ENVELOPE
        display = decode_words(display_name).strip() if display_name else ""
        if not display:
            display = f"{mailbox}@{host}" if host != MISSING_DOMAIN else mailbox
        return mailbox, display
    return "", ""


def sort_keys(root: Part, subject: str) -> dict:
    from_mbox, from_display = _first_address(root, "from")
    to_mbox, to_display = _first_address(root, "to")
    cc_mbox, _ = _first_address(root, "cc")
    return {"from": from_mbox, "to": to_mbox, "cc": cc_mbox, "displayfrom": from_display,
            "displayto": to_display, "subject": base_subject(subject)[0]}


def _collect_text(raw: bytes, part: Part, out: list[str], budget: list[int]) -> None:
    if budget[0] <= 0:
        return
    if part.children is not None:
        for child in part.children:
            _collect_text(raw, child, out, budget)
        return
    if part.message is not None:
        inner = part.message
        for name in ("subject", "from", "to"):
            v = inner.headers.text(name)
            if v:
                out.append(decode_words(v))
        _collect_text(raw, inner, out, budget)
        return
    mtype, stype = part.mtype.lower(), part.stype.lower()
    if not is_textual(mtype, stype):
        return
    try:
        data = decode_transfer(raw[part.bstart:part.end], part.encoding)
    except UnknownEncoding:
        data = raw[part.bstart:part.end]
    charset = next((v for k, v in part.params if k.lower() == "charset"), None)
    text = to_text(data, charset)
    if (mtype, stype) in _HTML:
        # SEARCH BODY is a substring of the body (RFC 9051 6.4.4): of the markup
        # as sent (a link, an alt text, a tag) as well as of the text a reader
        # sees, where <b>hel</b>lo reads "hello". Both are indexed, the visible
        # text first, so it is what a tight budget keeps.
        texts = [html_to_text(text), text]
    else:
        texts = [text]
    for text in texts:
        text = text[: budget[0]]
        budget[0] -= len(text)
        out.append(text)


def parse_message(raw: bytes) -> ParsedMessage:
    root = parse_part(raw, 0, len(raw))
    h = root.headers
    date_text = h.text("date")
    sent = sent_day = None
    if date_text:
        try:
            when = email.utils.parsedate_to_datetime(date_text)
            sent = when.timestamp()
            # SENTBEFORE/ON/SINCE compare the date as written, in the sender's zone.
            sent_day = when.date().isoformat()
        except (TypeError, ValueError, IndexError, OverflowError):
            sent = None
    texts: list[str] = []
    _collect_text(raw, root, texts, [MAX_SEARCH_TEXT])
    subject = decode_words(h.text("subject") or "")
    return ParsedMessage(
        envelope=imapformat.envelope(h),
        body=imapformat.body_structure(raw, root, extended=False),
        bodystructure=imapformat.body_structure(raw, root, extended=True),
        parts=root.to_json(),
        header_size=root.bstart - root.hstart,
        sent_date=sent,
        subject=subject,
        from_=_decoded_addresses(root, "from"),
        to=_decoded_addresses(root, "to"),
        cc=_decoded_addresses(root, "cc"),
        bcc=_decoded_addresses(root, "bcc"),
        message_id=h.text("message-id") or "",
        in_reply_to=h.text("in-reply-to") or "",
        references=h.text("references") or "",
        body_text=normalize_space("\n".join(texts)),
        sort_keys=dict(sort_keys(root, subject), sentday=sent_day),
    )
