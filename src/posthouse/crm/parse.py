"""What the CRM reads from a message (the tracker's skeleton or a whole
message): participants, subject, date, thread, text. Never raises: a broken
message gives what could be read."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.utils import getaddresses, parsedate_to_datetime

from .addresses import clean_name, decode_words, maybe_canonical

ROLES = (("from", "from"), ("sender", "sender"), ("reply-to", "reply-to"), ("to", "to"), ("cc", "cc"),
         ("bcc", "bcc"))
MAX_TEXT = 200_000          # characters of text kept per message
_MSGID = re.compile(r"<([^<>\s]+)>")


@dataclass
class Parsed:
    message_id: str | None = None
    subject: str | None = None
    date: datetime | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    participants: list[dict] = field(default_factory=list)     # [{role, name, address}] canonical, Bcc included
    text: str = ""              # the readable text (text/plain, else the HTML's text)
    scan_text: str = ""         # every text the privacy check looks through

    def addresses(self, roles=None) -> set[str]:
        return {p["address"] for p in self.participants if roles is None or p["role"] in roles}


def safe_text(value: str | None) -> str | None:
    """Text any database stores: no NUL, no lone surrogates (undecodable bytes), LF line ends."""
    if value is None:
        return None
    try:        # undecoded 8-bit header bytes come as surrogate escapes: UTF-8 (RFC 6532), else Latin-1
        raw = value.encode("utf-8", "surrogateescape")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value = raw.decode("cp1252", "replace")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    value = value.replace("\x00", "")
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _raw_header(msg, name: str) -> list[str]:
    out = []
    for key, value in msg.raw_items():
        if key.lower() == name:
            out.append(value if isinstance(value, str) else str(value))
    return out


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", value).strip()


def _text_header(msg, name: str) -> str | None:
    raw = _raw_header(msg, name)
    if not raw:
        return None
    return " ".join(decode_words(safe_text(_unfold(raw[0]))).split())


_TRICKY = re.compile(r'["\\()]|=\?')


def _addresses(msg, header: str) -> list[tuple[str | None, str]]:
    """(display name, address as written) of a header, every occurrence.
    The fast splitter (email.utils) for plain headers; the full RFC 5322
    parser (policy.default's header registry, ~15x slower) where quotes,
    comments or encoded words make the fast one unreliable."""
    out: list[tuple[str | None, str]] = []
    for value in _raw_header(msg, header):
        value = safe_text(_unfold(value))
        if _TRICKY.search(value):
            try:
                for a in policy.default.header_factory(header, value).addresses:
                    out.append((a.display_name or None, a.addr_spec))
                continue
            except Exception:       # the full parser gave up: the fast one's reading
                pass
        for name, address in getaddresses([value]):
            out.append((decode_words(name) or None, address))
    return out


def _date(msg) -> datetime | None:
    raw = _raw_header(msg, "date")
    if not raw:
        return None
    try:
        value = parsedate_to_datetime(_unfold(raw[0]))
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    except Exception:
        return None


def _part_text(part) -> str:
    try:
        payload = part.get_payload(decode=True) or b""
        if not isinstance(payload, bytes):
            return ""
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:         # a charset Python doesn't know
            return payload.decode("utf-8", errors="replace")
    except Exception:
        return ""


_SCRIPT = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.I | re.S)
_BLOCK = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h\d)\b[^>]*>", re.I)
_TAG = re.compile(r"<[^>]*>")


def html_text(markup: str) -> str:
    text = _SCRIPT.sub(" ", markup)
    text = _BLOCK.sub("\n", text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def _texts(msg) -> tuple[list[str], list[str], list[str]]:
    """(plain parts, html parts) of the message's own text, and the other
    textual parts (reports, and whatever is inside an attached message) that
    only the privacy check reads."""
    plain, markup, other = [], [], []

    def walk(part, depth, inner):
        if depth > 30:
            return
        try:
            ctype = part.get_content_type()
            # (before is_multipart, which is true for message/rfc822)
            if ctype.startswith("message/") or ctype == "text/rfc822-headers":
                payload = part.get_payload()
                if isinstance(payload, list):       # an attached message: its header and text
                    for sub in payload:
                        if hasattr(sub, "raw_items"):
                            other.append("\n".join(f"{k}: {v}" for k, v in sub.raw_items()))
                            walk(sub, depth + 1, True)
                elif isinstance(payload, str):
                    other.append(_part_text(part))
                return
            if part.is_multipart():
                for sub in part.get_payload() or ():
                    if hasattr(sub, "get_content_type"):
                        walk(sub, depth + 1, inner)
                return
            text_part = (part.get_content_disposition() or "inline") != "attachment"
            if ctype == "text/plain" and text_part and not inner:
                plain.append(_part_text(part))
            elif ctype == "text/html" and text_part and not inner:
                markup.append(_part_text(part))
            elif ctype == "text/html":
                other.append(html_text(_part_text(part)))
            elif part.get_content_maintype() == "text":
                other.append(_part_text(part))
        except Exception:       # a part the email package can't read: skipped
            return

    walk(msg, 0, False)
    return plain, markup, other


def parse(data: bytes) -> Parsed:
    out = Parsed()
    try:
        # compat32 for the structure: policy.default parses every header it is
        # asked for, ~7x slower, and the tracker sends every message through here.
        msg = message_from_bytes(data or b"", policy=policy.compat32)
    except Exception:
        return out
    try:
        out.subject = _text_header(msg, "subject") or None
    except Exception:
        pass
    raw_id = _raw_header(msg, "message-id")
    if raw_id:
        found = _MSGID.search(raw_id[0]) or re.search(r"\S+", raw_id[0])
        out.message_id = found.group(1) if found and found.groups() else (found.group(0) if found else None)
    out.date = _date(msg)
    irt = _MSGID.findall(" ".join(_raw_header(msg, "in-reply-to")))
    out.in_reply_to = irt[0] if irt else None
    out.references = _MSGID.findall(" ".join(_raw_header(msg, "references")))[:200]
    seen = set()
    for header, role in ROLES:
        try:
            pairs = _addresses(msg, header)
        except Exception:
            pairs = []
        for name, written in pairs:
            address = maybe_canonical(safe_text(written))
            if not address or (role, address) in seen:
                continue
            seen.add((role, address))
            out.participants.append({"role": role, "name": safe_text(clean_name(name)), "address": address})
    try:
        plain, markup, other = _texts(msg)
    except Exception:
        plain, markup, other = [], [], []
    text = "\n\n".join(p.strip() for p in plain if p.strip())
    if not text and markup:
        text = "\n\n".join(html_text(m) for m in markup)
    out.text = safe_text(text)[:MAX_TEXT]
    out.scan_text = "\n".join(plain + markup + other)
    out.subject = safe_text(out.subject)
    out.message_id = safe_text(out.message_id)
    out.in_reply_to = safe_text(out.in_reply_to)
    out.references = [safe_text(r) for r in out.references]
    return out


def snippet(text: str, length: int = 200) -> str:
    """The first words of the text, quoted lines left out, on one line."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    flat = " ".join(" ".join(lines).split())
    return flat if len(flat) <= length else flat[:length].rsplit(" ", 1)[0] + "…"
