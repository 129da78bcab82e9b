"""A message's skeleton: what the CRM reads, fetched without downloading
attachments. The whole header, the text parts and the report parts (bounded),
and every other leaf with its MIME header and an empty body, put back
together as a MIME message the email package parses.

plan(structure) says which sections to fetch; build(...) assembles them.
"""
from __future__ import annotations

import hashlib
import re
from email.parser import BytesHeaderParser
from email.policy import compat32

from ..imap_client.bodystructure import BodyPart
from .facts import Attachment

TEXT_LIMIT = 256 * 1024      # octets of one text part kept
MAX_FETCHED_PARTS = 64       # sections fetched per message (a message of 1,000 parts gets its first 64)

# Leaves whose body the CRM reads: the text, and what a reply sorter reads.
BODY_TYPES = frozenset({"text/plain", "text/html", "message/delivery-status", "message/global-delivery-status",
                        "message/feedback-report", "text/rfc822-headers", "message/disposition-notification",
                        "message/global-headers"})
ENCAPSULATED = frozenset({"message/rfc822", "message/global"})


def wants_body(part: BodyPart) -> bool:
    return part.content_type in BODY_TYPES and not (
        part.disposition == "attachment" and part.type == "text" and part.subtype not in ("rfc822-headers",))


def plan(root: BodyPart) -> list[str]:
    """The FETCH items (BODY.PEEK[...]) for the skeleton of a message."""
    items = ["BODY.PEEK[HEADER]"]
    if not root.is_multipart:
        if wants_body(root):
            items.append(f"BODY.PEEK[TEXT]<0.{TEXT_LIMIT}>")
        return items
    for part in root.walk():
        if part is root:
            continue
        if len(items) >= MAX_FETCHED_PARTS:
            break
        items.append(f"BODY.PEEK[{part.section}.MIME]")
        if part.is_multipart:
            continue
        if part.content_type in ENCAPSULATED:
            items.append(f"BODY.PEEK[{part.section}.HEADER]")
        elif wants_body(part):
            items.append(f"BODY.PEEK[{part.section}]<0.{TEXT_LIMIT}>")
    return items


def build(root: BodyPart, attrs: dict) -> bytes:
    """The skeleton from FETCH results (attrs keyed "BODY[HEADER]", "BODY[1.MIME]"...)."""
    header = attrs.get("BODY[HEADER]") or b"\r\n"
    if not root.is_multipart:
        body = (attrs.get("BODY[TEXT]") or b"") if wants_body(root) else b""
        return header + body
    return header + _multipart(root, attrs)


def _multipart(part: BodyPart, attrs: dict) -> bytes:
    boundary = part.params.get("boundary") or f"=_skeleton_{part.section or 'top'}"
    out = [b"This is a skeleton: non-text parts have empty bodies.\r\n"]
    for child in part.children:
        mime = attrs.get(f"BODY[{child.section}.MIME]")
        if not mime:
            mime = _synthetic_mime(child)
        out.append(b"--" + boundary.encode("utf-8", "replace") + b"\r\n" + mime + _body(child, attrs) + b"\r\n")
    out.append(b"--" + boundary.encode("utf-8", "replace") + b"--\r\n")
    return b"".join(out)


def _body(part: BodyPart, attrs: dict) -> bytes:
    if part.is_multipart:
        return _multipart(part, attrs)
    if part.content_type in ENCAPSULATED:
        return attrs.get(f"BODY[{part.section}.HEADER]") or b""
    if wants_body(part):
        return _whole_lines(attrs.get(f"BODY[{part.section}]") or b"")
    return b""


def _whole_lines(body: bytes) -> bytes:
    """A body cut at TEXT_LIMIT ends at its last line break (so base64 stays whole lines)."""
    if len(body) >= TEXT_LIMIT and b"\n" in body:
        return body[:body.rindex(b"\n") + 1]
    return body


def _synthetic_mime(part: BodyPart) -> bytes:
    params = "".join(f'; {k}="{v}"' for k, v in part.params.items() if '"' not in v and "\n" not in v)
    out = f"Content-Type: {part.content_type}{params}\r\n"
    if part.encoding and part.encoding not in ("7bit", "8bit", "binary"):
        out += f"Content-Transfer-Encoding: {part.encoding}\r\n"
    return out.encode("utf-8", "replace") + b"\r\n"


def attachments(root: BodyPart) -> tuple[Attachment, ...]:
    out = []
    for part in root.walk():
        if part.is_multipart or wants_body(part):
            continue
        out.append(Attachment(part.filename, part.content_type, part.size, part.section or "1"))
    return tuple(out)


# ------------------------------------------------------------ identity

_SPACE = re.compile(rb"\s+")


def header_fields(header: bytes):
    return BytesHeaderParser(policy=compat32).parsebytes(header)


def message_id(fields) -> str | None:
    value = fields.get("Message-ID")
    if value is None:
        return None
    value = str(value).strip()
    match = re.search(r"<([^<>\s]+)>", value)
    value = match.group(1) if match else value.strip("<> ")
    return value or None


def content_hash(fields, skeleton_text: bytes) -> str:
    """The same message on any server hashes the same: a few header fields with
    whitespace collapsed, and the text with all whitespace collapsed."""
    h = hashlib.sha256()
    for name in ("Date", "From", "To", "Cc", "Subject"):
        value = fields.get(name)
        raw = str(value).encode("utf-8", "surrogateescape") if value is not None else b""
        h.update(name.encode() + b":" + _SPACE.sub(b" ", raw).strip() + b"\n")
    h.update(_SPACE.sub(b" ", skeleton_text).strip())
    return h.hexdigest()


def text_of(root: BodyPart, attrs: dict) -> bytes:
    """The raw text parts, for the content hash."""
    if not root.is_multipart:
        return attrs.get("BODY[TEXT]") or b""
    return b"".join(attrs.get(f"BODY[{p.section}]") or b"" for p in root.walk()
                    if not p.is_multipart and p.type == "text" and wants_body(p))
