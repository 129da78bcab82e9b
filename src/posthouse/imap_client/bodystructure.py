"""BODYSTRUCTURE (RFC 9051 7.5.2) as a tree of parts, each knowing its IMAP
section ("1", "2.1") so a client can fetch exactly the parts it wants."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..imap.protocol.responses import ResponseError, as_number, as_text
from ..imap.protocol.tokens import Atom, ParenList, String

MAX_PARTS = 500     # parts kept per message; the rest of a pathological tree is dropped


@dataclass
class BodyPart:
    section: str                    # "" for the whole message when it is multipart
    type: str                       # "text", lower-case
    subtype: str                    # "plain"
    params: dict = field(default_factory=dict)     # lower-case names
    encoding: str | None = None
    size: int = 0
    disposition: str | None = None  # "attachment" | "inline" | None
    disposition_params: dict = field(default_factory=dict)
    children: list["BodyPart"] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart"

    @property
    def filename(self) -> str | None:
        return self.disposition_params.get("filename") or self.params.get("name")

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def parse_bodystructure(token) -> BodyPart:
    """The tree from FETCH's BODYSTRUCTURE value; ResponseError if malformed."""
    if not isinstance(token, ParenList):
        raise ResponseError("BODYSTRUCTURE is not a list")
    budget = [MAX_PARTS]
    if token.items and isinstance(token.items[0], ParenList):
        return _part(token, "", budget)
    return _part(token, "1", budget, top_single=True)


def _part(token: ParenList, section: str, budget: list, top_single: bool = False) -> BodyPart:
    budget[0] -= 1
    items = token.items
    if items and isinstance(items[0], ParenList):
        children_tokens = []
        i = 0
        while i < len(items) and isinstance(items[i], ParenList):
            children_tokens.append(items[i])
            i += 1
        subtype = (_text(items[i]) if i < len(items) else "mixed").lower()
        part = BodyPart(section, "multipart", subtype)
        if i + 1 < len(items):
            part.params = _params(items[i + 1])
        if i + 2 < len(items):
            part.disposition, part.disposition_params = _disposition(items[i + 2])
        for n, child in enumerate(children_tokens, 1):
            if budget[0] <= 0:
                break
            part.children.append(_part(child, f"{section}.{n}" if section else str(n), budget))
        return part
    if len(items) < 7:
        raise ResponseError("BODYSTRUCTURE part with too few fields")
    part = BodyPart(section, _text(items[0]).lower(), _text(items[1]).lower(), _params(items[2]),
                    (as_text(items[5]) or "7bit").lower(), _number(items[6]))
    ext = 7
    if part.type == "text":
        ext = 8
    elif part.content_type in ("message/rfc822", "message/global"):
        ext = 10
    if ext + 1 < len(items):
        part.disposition, part.disposition_params = _disposition(items[ext + 1])
    return part


def _text(token) -> str:
    value = as_text(token)
    return "" if value is None else value


def _number(token) -> int:
    try:
        return as_number(token)
    except ResponseError:
        return 0


def _params(token) -> dict:
    if not isinstance(token, ParenList):
        return {}
    items = token.items
    out = {}
    for i in range(0, len(items) - 1, 2):
        if isinstance(items[i], (Atom, String)) and isinstance(items[i + 1], (Atom, String)):
            key, value = _text(items[i]).lower(), _text(items[i + 1])
            if key.endswith("*") and key.count("*") == 1:     # RFC 2231: charset'lang'%xx
                key, value = key[:-1], _rfc2231(value)
            out[key] = _decode_param(value)
    return out


def _disposition(token) -> tuple[str | None, dict]:
    if not isinstance(token, ParenList) or not token.items:
        return None, {}
    kind = as_text(token.items[0]) if isinstance(token.items[0], (Atom, String)) else None
    params = _params(token.items[1]) if len(token.items) > 1 else {}
    return (kind.lower() if kind else None), params


def _rfc2231(value: str) -> str:
    from urllib.parse import unquote
    charset, _, rest = value.partition("'")
    _lang, _, text = rest.partition("'")
    if not _:
        return unquote(value)
    try:
        return unquote(text, encoding=charset or "utf-8", errors="replace")
    except LookupError:         # an unknown charset
        return unquote(text, encoding="utf-8", errors="replace")


def _decode_param(value: str) -> str:
    """RFC 2047 words in a parameter (common in filenames, though not standard)."""
    if "=?" not in value:
        return value
    from email.header import decode_header, make_header
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        return value
