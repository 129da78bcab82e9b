"""Tolerant access to a received message: decoded header values, the text the
sender wrote, the report parts. Works on the tracker's skeleton (non-text
bodies removed) as on the full message, and never raises on garbage."""
from __future__ import annotations

import email
import html
import re
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parseaddr

MAX_PARTS = 200             # a bomb of nested multiparts stops here
MAX_DEPTH = 12
MAX_TEXT = 256 * 1024       # characters of any one part that are read
MAX_HEADER = 8 * 1024       # characters of any one header field that are read

_SURROGATE = re.compile("[\udc80-\udcff]")
_MSGID = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


def _text(value) -> str:
    """A header value as readable text: RFC 2047 decoded, unfolded, raw 8-bit as UTF-8."""
    if value is None:
        return ""
    try:
        s = str(value)[:MAX_HEADER]
        if not s.isascii() and _SURROGATE.search(s):      # raw 8-bit header bytes
            s = s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if "=?" in s:
            try:
                s = str(make_header(decode_header(s)))
            except Exception:
                pass
        return re.sub(r"[ \t]*\r?\n[ \t]*", " ", s).strip()
    except Exception:
        return ""


def raw_header(msg: Message, name: str):
    """A header's value as the parser stored it: raw 8-bit bytes stay surrogate-escaped
    (msg.get() would turn them into an 'unknown-8bit' Header that prints as U+FFFD)."""
    lname = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == lname:
            return value
    return None


def message_id(value: str) -> str | None:
    """The msg-id inside a Message-ID / In-Reply-To value, without <>."""
    if not value:
        return None
    m = _MSGID.search(value)
    if m:
        return m.group(1)
    v = value.strip().strip("<>").strip()
    return v if v and "@" in v and " " not in v else None


def decode_part(part: Message) -> str:
    """The decoded text of a leaf part (charset guessed when it lies)."""
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if data is None:
        payload = part.get_payload()
        if isinstance(payload, str):
            return payload[:MAX_TEXT]
        return ""
    data = data[: MAX_TEXT * 2]
    charset = None
    try:
        charset = part.get_content_charset()
    except Exception:
        pass
    for cs in (charset, "utf-8", "latin-1"):
        if not cs:
            continue
        try:
            return data.decode(cs)[:MAX_TEXT]
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")[:MAX_TEXT]


def html_to_text(s: str) -> str:
    s = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", s)
    s = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h\d|table|blockquote)\s*>", "\n", s)
    s = re.sub(r"<[^>]*>", " ", s)
    s = html.unescape(s)
    s = re.sub(r"[ \t\xa0]+", " ", s)
    return re.sub(r"\n\s*\n\s*", "\n\n", s).strip()


MAX_BODY = 128 * 1024
MAX_LINE = 1000


def tame(text: str) -> str:
    """The text the pattern matching sees: bounded in length, long runs of blanks
    squeezed and every line cut short, so that no pattern meets a line it could
    spend quadratic time on. The words of a bounce or a reply are all kept."""
    text = text[:MAX_BODY].replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v\xa0]{16,}", "        ", text)
    text = re.sub(r"(?m)^[ \t\f\v\xa0]+$", "", text)        # blank lines are empty
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    if any(len(line) > MAX_LINE for line in text.split("\n")):
        text = "\n".join(line[:MAX_LINE] for line in text.split("\n"))
    return text


class Mail:
    """One received message, parsed once."""

    def __init__(self, raw: bytes):
        self.msg: Message = email.message_from_bytes(raw, policy=compat32)
        self._fields: dict[str, list] = {}          # the top-level header, by lower-cased name
        for key, value in self.msg.raw_items():
            self._fields.setdefault(key.lower(), []).append(value)
        self._cache: dict = {}
        self._ctypes: dict[int, str] = {}
        self.parts: list[Message] = []          # the message's own parts, not those of attached messages
        self.attached: list[Message] = []       # message/rfc822 and text/rfc822-headers parts (returned mail)
        self._walk(self.msg, 0)

    def _walk(self, part: Message, depth: int) -> None:
        if len(self.parts) >= MAX_PARTS or depth > MAX_DEPTH:
            return
        self.parts.append(part)
        ctype = self.ctype(part)
        if ctype in ("message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers",
                     "text/rfc822-header") and part is not self.msg:
            self.attached.append(part)
            return
        if ctype.startswith("multipart/"):
            payload = part.get_payload()
            if isinstance(payload, list):
                for sub in payload:
                    if isinstance(sub, Message):
                        self._walk(sub, depth + 1)

    def ctype(self, part: Message) -> str:
        known = self._ctypes.get(id(part))
        if known is None:
            try:
                known = part.get_content_type().lower()
            except Exception:
                known = "text/plain"
            self._ctypes[id(part)] = known
        return known

    # -- headers of the message itself
    def header(self, name: str, part: Message | None = None) -> str:
        try:
            if part is None or part is self.msg:
                key = ("header", name.lower())
                if key not in self._cache:
                    values = self._fields.get(name.lower())
                    self._cache[key] = _text(values[0]) if values else ""
                return self._cache[key]
            return _text(raw_header(part, name))
        except Exception:
            return ""

    def headers(self, name: str) -> list[str]:
        return [_text(v) for v in self._fields.get(name.lower(), [])]

    def has(self, name: str) -> bool:
        return name.lower() in self._fields

    def _parsed(self, name: str) -> tuple[str, str]:
        key = ("addr", name.lower())
        if key not in self._cache:
            try:
                self._cache[key] = parseaddr(self.header(name))
            except Exception:
                self._cache[key] = ("", "")
        return self._cache[key]

    def address(self, name: str) -> str:
        """The first address in a header, lower-cased ('' if none)."""
        return self._parsed(name)[1].strip().lower()

    def display_name(self, name: str) -> str:
        return self._parsed(name)[0]

    def addresses(self, *names: str) -> list[str]:
        try:
            return [a.lower() for _, a in getaddresses([self.header(n) for n in names]) if "@" in a]
        except Exception:
            return []

    @property
    def subject(self) -> str:
        return self.header("Subject")

    # -- bodies
    def texts(self) -> list[str]:
        """The message's own text parts (plain preferred; HTML as text when there is no plain)."""
        plain, htmls = [], []
        for part in self.parts:
            if part.is_multipart():
                continue
            ctype = self.ctype(part)
            disp = self.header("Content-Disposition", part).lower()
            if ctype == "text/plain" and not disp.startswith("attachment"):
                plain.append(decode_part(part))
            elif ctype == "text/html" and not disp.startswith("attachment"):
                htmls.append(html_to_text(decode_part(part)))
        if not plain and not htmls and isinstance(self.msg.get_payload(), str):
            plain.append(decode_part(self.msg))     # no parts the parser could split: the raw body
        return plain or htmls

    def body(self, tamed: bool = True) -> str:
        """The message's own text, tamed (see tame()) unless asked for as it is."""
        text = "\n\n".join(t for t in self.texts() if t)
        return tame(text) if tamed else text

    def parts_of(self, *ctypes: str) -> list[Message]:
        return [p for p in self.parts if self.ctype(p) in ctypes]

    def attached_headers(self) -> list[Message]:
        """Header blocks of the returned message(s): each a Message whose headers are the original's."""
        out = []
        for part in self.attached:
            try:
                payload = part.get_payload()
                if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                    out.append(payload[0])
                    continue
                text = decode_part(part) if not isinstance(payload, list) else ""
                if text:
                    out.append(email.message_from_string(text.lstrip("\r\n"), policy=compat32))
            except Exception:
                continue
        return out
