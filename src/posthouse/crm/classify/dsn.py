"""RFC 3464 delivery status notifications: the message/delivery-status part
(also message/global-delivery-status, RFC 6533) read into per-recipient
fields, whatever shape the email package left it in."""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from email.message import Message

from .parse import Mail, decode_part


@dataclass
class Failed:
    """One recipient of a report before it is judged: what the report says about it."""
    address: str
    status: str | None = None
    action: str | None = None       # failed | delayed | delivered | relayed | expanded (lower case)
    diagnostic: str = ""
    permanent: bool = True


def _fields(block: str) -> dict[str, str]:
    """'Name: value' lines with continuation lines, names lower-cased (first wins)."""
    out: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            out[name] += " " + line.strip()
            continue
        m = re.match(r"([A-Za-z][A-Za-z0-9\-]*)\s*:\s*(.*)", line)
        if m:
            name = m.group(1).lower()
            if name not in out:
                out[name] = m.group(2).strip()
            else:
                name = None
    return out


def part_text(part: Message) -> str:
    """The status part back as text: the parser made it a list of header blocks,
    or left it a string (unknown subtype, base64, broken)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        chunks = []
        for block in payload:
            if isinstance(block, Message):
                lines = [f"{k}: {v}" for k, v in block.items()]
                rest = block.get_payload()
                chunks.append("\n".join(lines) + ("\n\n" + rest if isinstance(rest, str) and rest.strip() else ""))
        return "\n\n".join(chunks)
    text = decode_part(part)
    if ":" not in text[:200] and text.strip():
        try:        # base64 the parser didn't undo
            text = base64.b64decode(re.sub(r"\s+", "", text), validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            pass
    return text


def _address(value: str) -> str:
    """'rfc822; <a@b>' -> 'a@b'."""
    v = value.split(";", 1)[1] if ";" in value else value
    v = v.strip().strip("<>").strip()
    m = re.search(r"[^\s<>;\"]+@[^\s<>;\"]+", v)
    return (m.group(0) if m else v).strip(".").lower()


def status_parts(mail: Mail) -> list[Message]:
    return mail.parts_of("message/delivery-status", "message/global-delivery-status")


def _unparsed_report(mail: Mail) -> str:
    """A multipart/report the parser couldn't split (a broken boundary): its raw text."""
    msg = mail.msg
    if mail.ctype(msg) == "multipart/report" and isinstance(msg.get_payload(), str):
        return decode_part(msg)
    return ""


def read_report(mail: Mail) -> tuple[dict[str, str], list[Failed]]:
    """Per-message fields and every recipient block of the message's status part(s)."""
    per_message: dict[str, str] = {}
    recipients: list[Failed] = []
    texts = [part_text(part) for part in status_parts(mail)]
    if not texts:
        raw = _unparsed_report(mail)
        start = re.search(r"(?im)^(reporting-mta|final-recipient|original-recipient)\s*:", raw)
        if start:
            texts = [raw[start.start():]]
    for text in texts:
        text = text.replace("\r\n", "\n")
        blocks = [b for b in re.split(r"\n[ \t]*\n", text) if b.strip()]
        for block in blocks:
            f = _fields(block)
            if "final-recipient" in f or "original-recipient" in f or "x-actual-recipient" in f:
                addr = _address(f.get("final-recipient") or f.get("original-recipient") or f.get("x-actual-recipient", ""))
                if "@" not in addr and f.get("original-recipient"):
                    addr = _address(f["original-recipient"])
                status_field = f.get("status") or ""
                status = status_field.split()[0] if status_field.split() else None
                comment = status_field[len(status or ""):].strip(" ()")    # "5.0.0 (recipient reached disk quota)"
                if status and not re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", status):
                    status = None
                recipients.append(Failed(address=addr, status=status,
                                         action=(f.get("action") or "").split()[0].lower() if f.get("action") else None,
                                         diagnostic=(f.get("diagnostic-code", "") + " " + comment).strip()))
            elif not recipients:
                for k, v in f.items():
                    per_message.setdefault(k, v)
    return per_message, recipients
