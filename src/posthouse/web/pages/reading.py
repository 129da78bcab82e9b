"""A message as the reading pane shows it: its headers, its body (HTML
sanitised with nh3, remote images taken out unless the user allowed them,
cid: images inlined as data: URIs) and its attachments, numbered in the
order email's walk() meets them (the download route counts the same way)."""
from __future__ import annotations

import base64
import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import nh3

MAX_INLINE_IMAGE = 2 * 1024 * 1024     # a cid: image larger than this is left out, not inlined
MAX_BODY_CHARS = 2_000_000             # a body past this is cut (with a note): the page stays usable

_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "style", "tfoot", "center"}
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"style", "class", "align", "valign", "bgcolor", "color", "width", "height", "dir", "title",
                    "border", "cellpadding", "cellspacing", "face", "size", "lang"}
_CSS_URL = re.compile(r"url\s*\(", re.IGNORECASE)
_DATA_IMAGE = re.compile(r"data:image/(png|gif|jpeg|jpg|webp|bmp);")     # (not SVG: it can carry script)
_SCHEMES = {"http", "https", "mailto", "tel", "cid", "data"}


@dataclass
class Attachment:
    index: int
    name: str
    content_type: str
    size: int


@dataclass
class Reading:
    subject: str = ""
    from_: str = ""
    from_name: str = ""
    from_address: str = ""
    to: str = ""
    cc: str = ""
    date: str = ""
    message_id: str = ""
    html: str | None = None             # sanitised, for the sandboxed frame's srcdoc
    text: str | None = None
    blocked_images: int = 0             # remote images left out
    attachments: list[Attachment] = field(default_factory=list)
    truncated: bool = False


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def _header(message, name: str) -> str:
    try:
        value = message.get(name)
        return "" if value is None else str(value)
    except Exception:       # a header the parser chokes on: shown raw, not a crash
        # (get_all would parse it again and fail the same way: read the raw pair)
        for key, raw in getattr(message, "_headers", ()):
            if key.lower() == name.lower():
                return str(raw).replace("\r", " ").replace("\n", " ").strip()
        return ""


def _content(part) -> str:
    try:
        content = part.get_content()
        if isinstance(content, bytes):
            return content.decode("utf-8", "replace")
        return content if isinstance(content, str) else str(content)
    except Exception:       # unknown charset, broken transfer encoding: decode what is there
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace")


def _body_part(message):
    try:
        return message.get_body(preferencelist=("html", "plain"))
    except Exception:
        return None


def attachments_of(message, body) -> list[tuple[int, object]]:
    """(index, part) of each downloadable part: not a container, not the body shown."""
    out = []
    for index, part in enumerate(message.walk()):
        if part.is_multipart() or part is body or part is message and body is message:
            continue
        if part.get_content_maintype() == "text" and not part.get_filename() \
                and part.get_content_disposition() != "attachment":
            continue        # the other alternative of the body (text/plain beside text/html)
        out.append((index, part))
    return out


def part_at(message, index: int):
    for i, part in enumerate(message.walk()):
        if i == index and not part.is_multipart():
            return part
    return None


def part_name(part, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    name = (name or "").replace("\x00", "").replace("/", "_").replace("\\", "_").strip()
    return name[:200] or f"part-{index}"


def read(raw: bytes, *, images: bool = False) -> Reading:
    message = parse(raw)
    name, address = parseaddr(_header(message, "From"))
    reading = Reading(subject=_header(message, "Subject"), from_=_header(message, "From"), from_name=name,
                      from_address=address, to=_header(message, "To"), cc=_header(message, "Cc"),
                      date=_header(message, "Date"), message_id=_header(message, "Message-ID").strip())
    body = _body_part(message)
    if body is not None:
        content = _content(body)
        if len(content) > MAX_BODY_CHARS:
            content, reading.truncated = content[:MAX_BODY_CHARS], True
        if body.get_content_subtype() == "html":
            reading.html, reading.blocked_images = sanitise(content, images=images, inline=_inline_images(message))
        else:
            reading.text = content
    for index, part in attachments_of(message, body):
        data = part.get_payload(decode=True) or b""
        reading.attachments.append(Attachment(index, part_name(part, index), part.get_content_type(), len(data)))
    return reading


def _inline_images(message) -> dict[str, str]:
    """cid -> data: URI of each small image part with a Content-ID."""
    out = {}
    for part in message.walk():
        cid = (part.get("Content-ID") or "").strip().strip("<>")
        if not cid or not _DATA_IMAGE.match(f"data:{part.get_content_type()};"):
            continue
        data = part.get_payload(decode=True) or b""
        if len(data) <= MAX_INLINE_IMAGE:
            out[cid] = f"data:{part.get_content_type()};base64,{base64.b64encode(data).decode()}"
    return out


def sanitise(html: str, *, images: bool = False, inline: dict[str, str] | None = None) -> tuple[str, int]:
    """(safe HTML, remote images left out). No script, handler, form, frame,
    SVG or javascript: URL survives; links open in a new tab without a referrer."""
    inline = inline or {}
    blocked = 0

    def keep(tag: str, attribute: str, value: str):
        nonlocal blocked
        if attribute in ("src", "background") or (attribute == "href" and tag not in ("a", "area")):
            lower = value.strip().lower()
            if lower.startswith("cid:"):
                return inline.get(value.strip()[4:].strip("<>"))
            if lower.startswith("data:"):
                return value if _DATA_IMAGE.match(lower) and attribute == "src" else None
            if lower.startswith(("http:", "https:", "//")):
                if images and not lower.startswith("//"):
                    return value
                blocked += 1
                return None
            return None
        if attribute == "href" and value.strip().lower().startswith(("data:", "cid:")):
            return None
        return value

    clean = nh3.clean(html, tags=_TAGS, clean_content_tags={"script", "noscript", "title", "head", "template",
                                                              "iframe", "object", "embed", "svg", "math", "form",
                                                              "textarea", "select", "button"},
                      attributes=_ATTRIBUTES, url_schemes=_SCHEMES, link_rel="noopener noreferrer",
                      set_tag_attribute_values={"a": {"target": "_blank"}}, attribute_filter=keep,
                      strip_comments=True)
    if not images:      # CSS that would load a background or font from elsewhere: defused (the CSP blocks it too)
        clean, count = _CSS_URL.subn("blocked-url(", clean)
        blocked += count
    return clean, blocked


def frame_document(body_html: str, *, images: bool) -> str:
    """The sandboxed frame's whole document: its own CSP too (stricter than the
    page's), so nothing in it loads from elsewhere unless images were allowed."""
    img = "data: https: http:" if images else "data:"
    policy = f"default-src 'none'; img-src {img}; style-src 'unsafe-inline'; font-src data:"
    return ('<!doctype html><html><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            '<style>body{font-family:system-ui,sans-serif;margin:8px;color:#222;overflow-wrap:anywhere}'
            'img{max-width:100%;height:auto}</style></head><body>'
            f'{body_html}</body></html>')


def addresses(value: str) -> list[tuple[str, str]]:
    try:
        return [(n, a) for n, a in getaddresses([value]) if a]
    except Exception:
        return []
