"""Local delivery: one message, several recipients, each into their INBOX.

The message is parsed once; every recipient gets the same bytes (trace
headers included), so the store keeps one copy however many receive it. All
recipients' appends go to the store together and commit in one group commit,
durably, before anyone hears "250"; a failure for one recipient is that
recipient's alone.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from email.utils import formatdate

from ..store.api import NoSuchMailbox, StoreError
from .recipients import Recipient

log = logging.getLogger("posthouse.delivery")


class DeliveryResult:
    __slots__ = ("recipient", "ok", "temporary", "reason", "uid")

    def __init__(self, recipient: Recipient, ok: bool, temporary: bool = False, reason: str = "", uid=None):
        self.recipient, self.ok, self.temporary, self.reason, self.uid = recipient, ok, temporary, reason, uid


def trace_headers(mail_from: str, helo: str, peer: str, hostname: str, protocol: str, ident: str) -> bytes:
    """Return-Path and Received (RFC 5321 4.4) for a message we accept."""
    sender = mail_from if mail_from not in (None, "<>") else ""
    received = (f"Received: from {_safe(helo) or 'unknown'} ({_safe(peer)})\r\n"
                f"\tby {_safe(hostname)} (Posthouse) with {protocol} id {ident};\r\n"
                f"\t{formatdate(time.time())}\r\n")
    return f"Return-Path: <{_safe(sender)}>\r\n{received}".encode("utf-8", "replace")


def _safe(text: str) -> str:
    """Header-safe: no line breaks or other controls from what a client said."""
    return "".join(c for c in (text or "") if c >= " " and c != "\x7f")


def new_ident() -> str:
    return secrets.token_hex(8)


class Deliverer:
    def __init__(self, service):
        self.service = service

    async def deliver(self, raw: bytes, recipients: list[Recipient]) -> list[DeliveryResult]:
        try:
            raw, parsed = await self.service.parse(raw)
        except Exception:
            log.exception("delivery: the message could not be parsed")
            return [DeliveryResult(r, False, True, "4.3.0 Could not process the message")
                    for r in recipients]
        now = time.time()
        # Together: the store's group commit makes them one transaction, one fsync.
        return list(await asyncio.gather(*(self._one(r, raw, parsed, now) for r in recipients)))

    async def _one(self, recipient: Recipient, raw: bytes, parsed, now: float) -> DeliveryResult:
        try:
            mailbox = await self.service.call("get_mailbox", recipient.user.id, "INBOX")
            appended = await self.service.append_parsed(mailbox.id, [(raw, parsed, frozenset(), now)])
        except NoSuchMailbox:
            return DeliveryResult(recipient, False, True, "4.2.0 The recipient has no INBOX")
        except StoreError as e:
            return DeliveryResult(recipient, False, True, f"4.3.0 {e}")
        except Exception:
            log.exception("delivery to %s failed", recipient.address)
            return DeliveryResult(recipient, False, True, "4.3.0 Temporary failure, try again later")
        return DeliveryResult(recipient, True, uid=appended[0].uid)
