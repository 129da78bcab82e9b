"""classify(raw) -> Classification: which of bounce, complaint, auto-reply,
unsubscribe, reply or other a received message is, tried in that order (the
machine-made kinds first: a bounce carries Auto-Submitted too, and a person's
reply may quote a bounce, which is why text formats count only from mail
software)."""
from __future__ import annotations

import re

from . import arf, autoreply, dsn, unsubscribe, vendors
from .dsn import Failed
from .model import Classification, Recipient
from .parse import Mail, message_id
from .reasons import find_reply_code, find_status, is_hard, reason_of, sender_rejected

# The code a reason stands for when a report gives no enhanced status code (subject.detail).
_CODE_FOR = {
    "userunknown": "1.1", "hostunknown": "1.2", "hasmoved": "1.6", "rejected": "1.8", "notaccept": "1.10",
    "filtered": "2.0", "suspend": "2.1", "mailboxfull": "2.2", "exceedlimit": "2.3", "systemfull": "3.1",
    "mesgtoobig": "3.4", "systemerror": "3.0", "mailererror": "3.0", "networkerror": "4.0", "expired": "4.7",
    "toomanyconn": "4.5", "syntaxerror": "5.2", "contenterror": "6.0", "notcompliantrfc": "6.0",
    "securityerror": "7.0", "blocked": "7.1", "spamdetected": "7.1", "virusdetected": "7.1",
    "policyviolation": "7.1", "badreputation": "7.1", "norelaying": "7.1", "authfailure": "7.26",
    "requireptr": "7.25", "ratelimited": "7.28",
}
_GAVE_UP = {"networkerror", "systemerror", "undefined", "onhold", "toomanyconn"}
_REPLY = re.compile(r"^\s*(re|aw|sv|vs|antw|odp|r|rif|res|atb)\s*(\[\d+\])?\s*:", re.I)
_BODY_MSGID = re.compile(r"^[ \t>]*message-id:[ \t]*\n?[ \t]*(<[^<>\s]+@[^<>\s]+>)", re.I | re.M)


def classify(raw: bytes) -> Classification:
    """Sort one received message (full or the tracker's skeleton). Never raises:
    what can't be read is 'other'."""
    try:
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            return Classification()
        return _classify(Mail(bytes(raw)))
    except (Exception, RecursionError):
        return Classification()


def _answered_id(mail: Mail) -> str | None:
    irt = message_id(mail.header("In-Reply-To"))
    if irt:
        return irt
    refs = re.findall(r"<([^<>\s]+@[^<>\s]+)>", mail.header("References"))
    return refs[-1] if refs else None


def _classify(mail: Mail) -> Classification:
    found = arf.complaint(mail)
    if found is not None:
        recipients, original = found
        return Classification("complaint", None, None, [Recipient(a) for a in recipients],
                              original or _answered_id(mail))

    body = mail.body()
    if "notificationType" in body or "eventType" in body:
        ses = vendors.ses_notification(mail.body(tamed=False))     # JSON on one long line
        if ses is not None:
            kind, failed, original, _subtype = ses
            if kind == "complaint":
                return Classification("complaint", None, None, [Recipient(f.address) for f in failed],
                                      message_id(original or ""))
            return _bounce(failed, message_id(original or "") or _answered_id(mail))

    bounce = _find_bounce(mail, body)
    if bounce is not None:
        return bounce

    subject = mail.subject
    says_auto = autoreply.subject_says_auto(subject)
    if unsubscribe.by_envelope(mail) and not says_auto and not mail.header("Auto-Submitted").lower().startswith("auto-replied") \
            and not vendors.is_mailer(mail):
        return Classification("unsubscribe", original_message_id=_answered_id(mail))
    if autoreply.is_auto_reply(mail):
        return Classification("auto-reply", original_message_id=_answered_id(mail))
    if vendors.is_mailer(mail) or autoreply.is_bulk(mail):
        return Classification(original_message_id=_mdn_original(mail) or _answered_id(mail))
    if unsubscribe.asks(body):
        return Classification("unsubscribe", original_message_id=_answered_id(mail))
    answers = _answered_id(mail)
    if mail.parts_of("message/disposition-notification"):      # a read receipt (RFC 8098)
        return Classification(original_message_id=_mdn_original(mail) or answers)
    if answers or _REPLY.match(subject or ""):
        return Classification("reply", original_message_id=answers)
    return Classification()


def _find_bounce(mail: Mail, body: str) -> Classification | None:
    per_message, reported = dsn.read_report(mail)
    report_type = ""
    if mail.ctype(mail.msg) == "multipart/report":
        report_type = str(mail.msg.get_param("report-type") or "").lower()
    has_report = bool(dsn.status_parts(mail)) or report_type == "delivery-status"
    mailer = vendors.is_mailer(mail)
    from_text = None
    # The text formats count only from mail software: a person quoting a bounce is replying.
    if mailer or has_report:
        from_text = vendors.text_bounce(body)
    failed: list[Failed] = []
    if reported:
        failed = [r for r in reported if (r.action in ("failed", "delayed")
                                          or (r.action is None and r.status and r.status[0] in "45"))]
        by_addr = {f.address: f for f in from_text or []}
        for f in failed:
            f.permanent = f.action != "delayed" and not (f.action is None and f.status and f.status[0] == "4")
            extra = by_addr.get(f.address)
            if extra is not None and extra.diagnostic and extra.diagnostic not in f.diagnostic:
                f.diagnostic = (f.diagnostic + " " + extra.diagnostic).strip()
            if not f.diagnostic.strip(" ;").lower().replace("smtp", "").strip(" ;"):
                # the report names no cause: the bounce's own words and subject are the best evidence
                f.diagnostic = (mail.subject + "\n" + vendors.head_of(body))[:2000]
        if not failed:      # a report of delivery, relay or expansion: nothing failed
            return Classification(original_message_id=_original_id(mail, body, per_message))
    elif from_text:
        failed = from_text
    elif mailer and (vendors.BOUNCE_SUBJECT.search(mail.subject) or has_report) and not _REPLY.match(mail.subject) \
            and not autoreply.subject_says_auto(mail.subject):
        head = vendors.head_of(body)
        delayed = bool(re.search(r"delay|will (be )?retr|still trying|not yet been delivered", mail.subject + " " + head, re.I))
        failed = vendors.loose_failures(mail, body, delayed)
        if not failed:
            status = find_status(head)
            reason = reason_of(status, head, delayed=delayed)
            return Classification("bounce", is_hard(reason, status, not delayed), reason, [],
                                  _original_id(mail, body, per_message))
    else:
        return None
    return _bounce(failed, _original_id(mail, body, per_message))


def _bounce(failed: list[Failed], original: str | None) -> Classification:
    recipients = []
    for f in failed:
        delayed = f.action == "delayed" or not f.permanent
        status = f.status
        in_text = find_status(f.diagnostic)
        if (not status or status.endswith(".0.0")) and in_text and not in_text.endswith(".0.0") \
                and (not status or in_text[0] == status[0]):
            status = in_text
        reason = reason_of(status, f.diagnostic, delayed=delayed)
        if reason == "rejected" and status and status.split(".")[1] == "1" and sender_rejected(f.diagnostic):
            status = f"{status[0]}.1.8"     # the quoted code was about our sender ("bad sender's system address")
        if not delayed and status and status[0] == "4" and reason in _GAVE_UP:
            reason = "expired"      # failed on a temporary code: the queue lifetime ran out
        if not status or status.endswith(".0.0"):
            code = find_reply_code(f.diagnostic)
            cls = status[0] if status else (code[0] if code and code[0] in "45" else ("4" if delayed else "5"))
            status = f"{cls}.{_CODE_FOR[reason]}" if reason in _CODE_FOR else (status or f"{cls}.0.0")
        recipients.append(Recipient(f.address, status, is_hard(reason, status, not delayed), reason))
    first = recipients[0] if recipients else None
    return Classification("bounce", any(r.hard for r in recipients) if recipients else None,
                          first.reason if first else None, recipients, original)


def _original_id(mail: Mail, body: str, per_message: dict[str, str]) -> str | None:
    for headers in mail.attached_headers():
        mid = message_id(str(headers.get("Message-ID") or headers.get("Message-Id") or ""))
        if mid:
            return mid
    for key in ("x-original-message-id", "original-message-id"):
        if per_message.get(key):
            return message_id(per_message[key])
    m = _BODY_MSGID.search(body)
    if m:
        return message_id(m.group(1))
    return _answered_id(mail)


def _mdn_original(mail: Mail) -> str | None:
    for part in mail.parts_of("message/disposition-notification"):
        m = re.search(r"(?im)^original-message-id:\s*(<[^>]+>)", dsn.part_text(part))
        if m:
            return message_id(m.group(1))
    return None
