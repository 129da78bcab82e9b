"""Compose a message to send: text and/or HTML, attachments, a reply's
threading headers, an identity's display name. The result is the exact bytes
to submit (CRLF line ends, headers folded and encoded for SMTP) and the
Message-ID they carry.

Bcc recipients are not written into the bytes: they are the envelope's only
(`Composed.recipients`, the To, Cc and Bcc addresses). Every value that goes
into a header is refused if it holds a line break, so no caller input can add
a header of its own."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses
from typing import Iterable, Sequence


class ComposeError(ValueError):
    """A value that can't go into the message; the text is safe to show."""


@dataclass
class Composed:
    message: bytes
    message_id: str             # with its angle brackets, as in the header
    mail_from: str              # the envelope sender
    recipients: list[str] = field(default_factory=list)   # To + Cc + Bcc addresses, each once

    # (bytes, message_id), as the contract has compose() return
    def __iter__(self):
        return iter((self.message, self.message_id))


_ID_RIGHT = re.compile(r"^[A-Za-z0-9.\-]+$")
_MSG_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_REPLY_PREFIX = re.compile(r"^\s*re\s*(\[\d+\])?\s*:", re.IGNORECASE)


def _no_breaks(what: str, value: str) -> str:
    if not isinstance(value, str):
        raise ComposeError(f"{what} must be text, not {type(value).__name__}")
    if any(c in value for c in "\r\n\x00"):
        raise ComposeError(f"{what} may not contain a line break or NUL: {value[:60]!r}")
    return value


def _address(what: str, value) -> Address:
    """'a@b', 'Name <a@b>' or (name, 'a@b') -> Address; anything else refused."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        name, spec = _no_breaks(what, value[0] or ""), _no_breaks(what, value[1])
    else:
        text = _no_breaks(what, value)
        pairs = getaddresses([text])
        if len(pairs) != 1 or not pairs[0][1]:
            raise ComposeError(f"{what}: not one address: {text[:80]!r}")
        name, spec = pairs[0]
    spec = spec.strip()
    local, at, domain = spec.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in spec):
        raise ComposeError(f"{what}: not an address: {spec[:80]!r}")
    try:
        return Address(display_name=name.strip(), addr_spec=spec)
    except (ValueError, IndexError) as e:
        raise ComposeError(f"{what}: not an address: {spec[:80]!r} ({e})") from None


def _addresses(what: str, values) -> list[Address]:
    """A list of addresses (or one, as a string)."""
    if isinstance(values, str):
        values = [values]
    return [_address(what, v) for v in values or ()]


def _message_id(what: str, value: str) -> str:
    value = _no_breaks(what, value).strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    if not _MSG_ID.fullmatch(value):
        raise ComposeError(f"{what}: not a Message-ID: {value[:80]!r}")
    return value


def _references(values) -> list[str]:
    """The parent's References, as a header value or a list of Message-IDs."""
    if isinstance(values, str):
        # (a header value as read may be folded: its line breaks are only folding)
        values = _MSG_ID.findall(values) or ([values] if values.strip() else [])
    return [_message_id("References", v) for v in values or ()]


def reply_subject(subject: str) -> str:
    """'Re: ' + subject, unless it already starts with Re: (once is enough)."""
    return subject if _REPLY_PREFIX.match(subject) else "Re: " + subject


def compose(*, from_addr: str, to: Sequence = (), cc: Sequence = (), bcc: Sequence = (),
            subject: str = "", text: str | None = None, html: str | None = None,
            attachments: Iterable[tuple[str, str, bytes]] = (),
            in_reply_to: str | None = None, references: Sequence[str] | str = (),
            identity_name: str | None = None, reply_to: Sequence = (), message_id_domain: str | None = None,
            date: str | None = None, extra_headers: Sequence[tuple[str, str]] = ()) -> Composed:
    """The message as bytes ready to submit; `compose(...)` unpacks as
    (bytes, message_id), and carries the envelope (sender, To+Cc+Bcc).
    message_id_domain: the right side of the Message-ID (default: the From
    address's domain)."""
    sender = _address("From", from_addr)
    if identity_name is not None:
        sender = Address(display_name=_no_breaks("the identity's name", identity_name).strip(),
                         addr_spec=sender.addr_spec)
    to_a, cc_a, bcc_a = _addresses("To", to), _addresses("Cc", cc), _addresses("Bcc", bcc)
    reply_a = _addresses("Reply-To", reply_to)
    if not (to_a or cc_a or bcc_a):
        raise ComposeError("a message needs at least one recipient (To, Cc or Bcc)")
    subject = _no_breaks("the subject", subject or "")
    if message_id_domain is None:
        message_id_domain = sender.domain
        try:
            message_id_domain = message_id_domain.encode("idna").decode("ascii")    # (a Message-ID is ASCII)
        except UnicodeError:
            pass
    domain = _no_breaks("the Message-ID domain", message_id_domain or "").strip()
    if not _ID_RIGHT.fullmatch(domain):
        raise ComposeError(f"not a domain for Message-IDs: {domain!r}")

    parent = _message_id("In-Reply-To", in_reply_to) if in_reply_to else None
    chain = _references(references)
    if parent:
        subject = reply_subject(subject)
        if parent not in chain:
            chain.append(parent)
    message_id = f"<{uuid.uuid4().hex}@{domain}>"

    msg = EmailMessage(policy=policy.SMTP)
    msg["Date"] = _no_breaks("Date", date) if date else formatdate(localtime=True)
    msg["From"] = sender
    if to_a:
        msg["To"] = to_a
    if cc_a:
        msg["Cc"] = cc_a
    if reply_a:
        msg["Reply-To"] = reply_a
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    if parent:
        msg["In-Reply-To"] = parent
    if chain:
        msg["References"] = " ".join(chain)
    for name, value in extra_headers:
        if not re.fullmatch(r"[!-9;-~]+", name or "") or name.lower() in _OURS:
            raise ComposeError(f"not a header that may be added: {name!r}")
        msg[name] = _no_breaks(name, value)
    msg["MIME-Version"] = "1.0"

    if text is None and html is None:
        text = ""
    if text is not None:
        msg.set_content(text, cte=_cte(text))
        if html is not None:
            msg.add_alternative(html, subtype="html", cte=_cte(html))
    else:
        msg.set_content(html, subtype="html", cte=_cte(html))
    for item in attachments or ():
        _attach(msg, *item)
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]     # (the email package writes it into every part it makes)

    recipients: list[str] = []
    for a in (*to_a, *cc_a, *bcc_a):
        if a.addr_spec.lower() not in (r.lower() for r in recipients):
            recipients.append(a.addr_spec)
    return Composed(msg.as_bytes(policy=policy.SMTP), message_id, sender.addr_spec, recipients)


_OURS = {"date", "from", "to", "cc", "bcc", "reply-to", "subject", "message-id", "in-reply-to", "references",
         "mime-version", "content-type", "content-transfer-encoding", "sender", "return-path"}


def _cte(body: str) -> str:
    # Quoted-printable unless the text is short-lined ASCII, so nothing needs
    # 8BITMIME and no line goes over SMTP's 998.
    if body.isascii() and all(len(line) <= 76 for line in body.splitlines()):
        return "7bit"
    return "quoted-printable"


def _attach(msg: EmailMessage, filename: str, content_type: str, data: bytes) -> None:
    filename = _no_breaks("an attachment's name", filename or "attachment").strip() or "attachment"
    ctype = (content_type or "application/octet-stream").split(";")[0].strip().lower()
    maintype, _, subtype = ctype.partition("/")
    if not (re.fullmatch(r"[a-z0-9!#$&^_.+-]+", maintype) and re.fullmatch(r"[a-z0-9!#$&^_.+-]+", subtype)):
        raise ComposeError(f"not a content type: {content_type!r}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ComposeError(f"the attachment {filename!r} must be bytes")
    if maintype in ("multipart", "message"):
        # (attached as opaque bytes: a message/rfc822 part would need parsing)
        maintype, subtype = "application", "octet-stream"
    msg.add_attachment(bytes(data), maintype=maintype, subtype=subtype, filename=filename)
