"""Abuse reports: ARF (RFC 5965, the feedback loops of Yahoo, Microsoft (JMRP),
AOL, Comcast, ...) and Microsoft's older non-ARF JMRP shape."""
from __future__ import annotations

import re

from .dsn import _fields, part_text
from .parse import Mail, message_id


def complaint(mail: Mail) -> tuple[list[str], str | None] | None:
    """(the complaining recipients, the reported message's Message-ID), or None
    when this isn't an abuse report."""
    reports = mail.parts_of("message/feedback-report")
    ctype = mail.ctype(mail.msg)
    report_type = (mail.msg.get_param("report-type") or "") if ctype == "multipart/report" else ""
    jmrp = mail.has("X-HmXmrOriginalRecipient") and bool(mail.attached)
    if not reports and str(report_type).lower() != "feedback-report" and not jmrp:
        return None
    fields: dict[str, str] = {}
    for part in reports:
        text = part_text(part).replace("\r\n", "\n")
        for block in re.split(r"\n[ \t]*\n", text):
            for k, v in _fields(block).items():
                fields.setdefault(k, v)
    if reports and not fields and str(report_type).lower() != "feedback-report":
        return None
    recipients: list[str] = []
    for key in ("original-rcpt-to", "removal-recipient"):
        for a in re.findall(r"[^\s<>;,\"]+@[^\s<>;,\"]+", fields.get(key, "")):
            if a.lower() not in recipients:
                recipients.append(a.lower())
    for a in mail.headers("X-HmXmrOriginalRecipient"):
        a = a.strip().strip("<>").lower()
        if "@" in a and a not in recipients:
            recipients.append(a)
    original = None
    for headers in mail.attached_headers():
        original = original or message_id(str(headers.get("Message-ID") or ""))
        if not recipients:
            from email.utils import getaddresses
            for _, a in getaddresses([str(headers.get("To") or "")]):
                if "@" in a:
                    recipients.append(a.lower())
    return recipients, original
