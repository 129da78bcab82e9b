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

from ..store.api import NoSuchMailbox, OverQuota, StoreError
from .recipients import Recipient

log = logging.getLogger("posthouse.delivery")


class DeliveryResult:
    """One recipient's outcome: an SMTP reply code and enhanced status (RFC 3463)."""
    __slots__ = ("recipient", "code", "status", "text", "uid")

    def __init__(self, recipient: Recipient, code: int, status: str, text: str, uid=None):
        self.recipient, self.code, self.status, self.text, self.uid = recipient, code, status, text, uid

    @property
    def ok(self) -> bool:
        return self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    def reply(self) -> str:
        return f"{self.code} {self.status} <{self.recipient.address}> {self.text}"


def mailbox_full(recipient: Recipient, tempfail: bool) -> DeliveryResult:
    """Over quota: 552 5.2.2, or 452 4.2.2 where the server is told to let the sender retry."""
    if tempfail:
        return DeliveryResult(recipient, 452, "4.2.2", "Mailbox full, try again later")
    return DeliveryResult(recipient, 552, "5.2.2", "Mailbox full")


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
    def __init__(self, service, config):
        self.service = service
        self.config = config

    async def deliver(self, raw: bytes, recipients: list[Recipient], mail_from: str = "") -> list[DeliveryResult]:
        try:
            raw, parsed = await self.service.parse(raw)
        except Exception:
            log.exception("delivery: the message could not be parsed")
            return [DeliveryResult(r, 451, "4.3.0", "Could not process the message") for r in recipients]
        now = time.time()
        # Together: the store's group commit makes them one transaction, one fsync.
        return list(await asyncio.gather(*(self._one(r, raw, parsed, now) for r in recipients)))

    async def _one(self, recipient: Recipient, raw: bytes, parsed, now: float) -> DeliveryResult:
        try:
            mailbox = await self.service.call("get_mailbox", recipient.user.id, "INBOX")
            appended = await self.service.append_parsed(mailbox.id, [(raw, parsed, frozenset(), now)])
        except NoSuchMailbox:
            return DeliveryResult(recipient, 451, "4.2.0", "The recipient has no INBOX")
        except OverQuota:
            return mailbox_full(recipient, self.config.quota_full_tempfail)
        except StoreError as e:
            return DeliveryResult(recipient, 451, "4.3.0", str(e))
        except Exception:
            log.exception("delivery to %s failed", recipient.address)
            return DeliveryResult(recipient, 451, "4.3.0", "Temporary failure, try again later")
        return DeliveryResult(recipient, 250, "2.0.0", "Delivered", uid=appended[0].uid)
