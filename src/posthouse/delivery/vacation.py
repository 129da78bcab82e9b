"""Vacation replies (RFC 5230, with RFC 3834's rules for automatic replies).

No reply goes to: a null or daemon sender, mailing lists (List-* fields,
Precedence bulk/list/junk), anything automatic (Auto-Submitted other than
"no"), a message that isn't addressed to the user in To/Cc/Bcc (a Bcc copy
of a list, say), or the user themselves; and each sender hears at most
once per :days (per :handle or reason text). The reply has the null return
path and `Auto-Submitted: auto-replied`, so a vacation elsewhere won't
answer it back.

A reply to a sender in one of our `domains` is delivered here; one to
another domain goes into the outbound queue (with the null sender, so it
can't bounce back), when a relay is configured.
"""
from __future__ import annotations

import logging
import secrets
from email.utils import formatdate

from ..mime.address import parse_address_list
from ..mime.headers import decode_words, raw_text, split_fields

log = logging.getLogger("posthouse.vacation")

_DAEMON_PREFIXES = ("mailer-daemon", "postmaster", "owner-", "listserv", "majordomo", "noreply", "no-reply")
_LIST_FIELDS = ("list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
                "list-archive")


def _addresses(values: list[str]) -> set[str]:
    out = set()
    for value in values:
        for _name, _adl, mailbox, host in parse_address_list(value):
            if mailbox and host:
                out.add(f"{mailbox}@{host}".lower())
    return out


def why_not(fields: dict[str, list[str]], sender: str, own: set[str]) -> str | None:
    """The reason not to answer, or None: RFC 5230 4.5/4.6 and RFC 3834 2."""
    local = sender.rpartition("@")[0].lower()
    if not sender or sender == "<>" or "@" not in sender:
        return "null or local sender"
    if local.startswith(_DAEMON_PREFIXES) or local.endswith("-request"):
        return "sender is a daemon or list address"
    if sender.lower() in own:
        return "sender is the user"
    auto = [v.strip().lower() for v in fields.get("auto-submitted", [])]
    if any(v and not v.startswith("no") for v in auto):
        return "message is automatic"
    if any(fields.get(name) for name in _LIST_FIELDS):
        return "message is from a list"
    if any(v.strip().lower() in ("bulk", "list", "junk") for v in fields.get("precedence", [])):
        return "message is bulk"
    if fields.get("x-auto-response-suppress") and any(
            w in v.lower() for v in fields["x-auto-response-suppress"] for w in ("all", "oof", "autoreply")):
        return "sender asked for no automatic replies"
    to = _addresses(fields.get("to", []) + fields.get("cc", []) + fields.get("bcc", [])
                    + fields.get("resent-to", []) + fields.get("resent-cc", []))
    if not to & own:
        return "user is not in To/Cc/Bcc"
    return None


def compose(vacation, own_address: str, sender: str, fields: dict[str, list[str]]) -> bytes:
    subject = vacation.subject
    if subject is None:
        original = (fields.get("subject") or [""])[0]
        subject = "Auto: " + original if original else "Automatic reply"
    message_id = (fields.get("message-id") or [""])[0].strip()
    references = " ".join(x for x in ((fields.get("references") or [""])[0].strip(), message_id) if x)
    from_ = vacation.from_ or own_address
    domain = own_address.rpartition("@")[2] or "posthouse"
    lines = [f"From: {from_}", f"To: <{sender}>", f"Subject: {_one_line(subject)}",
             f"Date: {formatdate(localtime=True)}", f"Message-ID: <{secrets.token_hex(12)}@{domain}>",
             "Auto-Submitted: auto-replied (vacation)", "Precedence: bulk", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
    if message_id:
        lines += [f"In-Reply-To: {_one_line(message_id)}", f"References: {_one_line(references)}"]
    body = vacation.reason.replace("\r\n", "\n").replace("\n", "\r\n")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode("utf-8")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Vacations:
    def __init__(self, service, config, deliverer):
        self.service = service
        self.config = config
        self.deliverer = deliverer

    async def consider(self, recipient, raw: bytes, parsed, mail_from: str, vacation, now: float) -> None:
        """Send the reply if the rules allow; never fails the delivery."""
        try:
            await self._consider(recipient, raw, parsed, mail_from, vacation, now)
        except Exception:
            log.exception("vacation reply for %s failed", recipient.user.name)

    async def _consider(self, recipient, raw, parsed, mail_from, vacation, now) -> None:
        fields: dict[str, list[str]] = {}
        for name, value in split_fields(raw[:parsed.header_size]):
            fields.setdefault(name, []).append(decode_words(raw_text(value)))
        sender = (mail_from or "").strip("<>")
        own = {recipient.address.lower(), recipient.user.name.lower()} | {a.lower() for a in vacation.addresses}
        reason = why_not(fields, sender, own)
        if reason is not None:
            log.info("vacation of %s: no reply to %s (%s)", recipient.user.name, sender or "<>", reason)
            return
        due = await self.service.call("vacation_due", recipient.user.id, sender.lower(), vacation.handle,
                                      vacation.days, now)
        if not due:
            log.info("vacation of %s: %s was answered within %d days", recipient.user.name, sender, vacation.days)
            return
        reply = compose(vacation, recipient.address, sender, fields)
        # The null sender: a reply to it can't come back (RFC 5230 5.8).
        if await self.deliverer.send_on(reply, [sender], "", recipient.user.id, f"vacation of {recipient.user.name}"):
            log.info("vacation of %s: replied to %s", recipient.user.name, sender)
