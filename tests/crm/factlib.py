"""Facts as the tracker would send them, built from message text, for the CRM tests."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from posthouse.tracker.facts import (Attachment, FolderRenamed, FolderReset, MessageChanged,  # noqa: F401
                                     MessageGone, MessageSeen, Place)

WHEN = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)


def message(*, frm="Ann Buyer <ann@acme.com>", to="me@ours.test", cc=None, subject="Hello",
            message_id="m1@acme.com", body="Hi there, about the offer.", date="Mon, 02 Nov 2026 10:00:00 +0100",
            extra="") -> bytes:
    lines = [f"From: {frm}", f"To: {to}"]
    if cc:
        lines.append(f"Cc: {cc}")
    lines += [f"Subject: {subject}", f"Date: {date}"]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    if extra:
        lines.append(extra.rstrip("\r\n"))
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode()


def _arrival(raw: bytes) -> datetime:
    """A minute after the Date header, as a server would have it; else WHEN."""
    found = re.search(rb"^Date:\s*(.+?)\r?$", raw, re.M | re.I)
    try:
        return parsedate_to_datetime(found.group(1).decode()) + timedelta(minutes=1)
    except Exception:
        return WHEN


def seen(raw: bytes, *, account=1, folder="INBOX", uid=1, uidvalidity=7, emailid=None, flags=(),
         special_use=None, attachments=(), internaldate=None) -> MessageSeen:
    found = re.search(rb"^Message-ID:\s*<([^>]+)>", raw, re.M | re.I)
    return MessageSeen(place=Place(account, folder, uidvalidity, uid),
                       message_id=found.group(1).decode() if found else None, emailid=emailid,
                       content_hash=hashlib.sha256(raw).hexdigest(), internaldate=internaldate or _arrival(raw), size=len(raw),
                       flags=tuple(flags), modseq=None, skeleton=raw, attachments=tuple(attachments),
                       special_use=special_use)


def counts(engine) -> dict:
    from sqlalchemy import func, select
    from posthouse.crm import tables
    out = {}
    with engine.connect() as conn:
        for t in (tables.messages, tables.message_places, tables.activities, tables.message_addresses,
                  tables.contacts, tables.contact_emails):
            out[t.name] = conn.execute(select(func.count()).select_from(t)).scalar()
    return out
