"""Delivery status notifications (RFC 3464): the bounce a sender gets when
the outbound queue gives up on some recipients."""
from __future__ import annotations

import secrets
from email.utils import formatdate

from ..mime.headers import decode_words, header_end, raw_text, split_fields


def bounce(hostname: str, sender: str, original: bytes, failures: list[tuple[str, str, str]],
           arrival: float) -> bytes:
    """A multipart/report for failures: (recipient, status such as 5.1.1, diagnostic)."""
    boundary = "=_posthouse_" + secrets.token_hex(12)
    head_end = header_end(original, 0, len(original))
    headers = original[:head_end].rstrip(b"\r\n") + b"\r\n"
    subject = _header(headers, b"subject") or "(no subject)"
    human = ["This is the mail system at " + hostname + ".", "",
             "Your message could not be delivered to these recipients:", ""]
    for rcpt, status, diagnostic in failures:
        human.append(f"  <{rcpt}>: {diagnostic} ({status})")
    human += ["", "The message's header follows the report."]
    status_part = [f"Reporting-MTA: dns; {hostname}", f"Arrival-Date: {formatdate(arrival)}", ""]
    for rcpt, status, diagnostic in failures:
        status_part += [f"Final-Recipient: rfc822; {rcpt}", "Action: failed", f"Status: {status}",
                        f"Diagnostic-Code: smtp; {_one_line(diagnostic)}", ""]
    lines = [f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>", f"To: <{sender}>",
             f"Subject: Undelivered Mail Returned to Sender: {_one_line(subject)[:200]}",
             f"Date: {formatdate(localtime=True)}", f"Message-ID: <{secrets.token_hex(12)}@{hostname}>",
             "Auto-Submitted: auto-replied", "MIME-Version: 1.0",
             f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"', "",
             "This is a MIME-encapsulated message.", "",
             f"--{boundary}", "Content-Type: text/plain; charset=utf-8", "Content-Description: Notification", "",
             *human, "",
             f"--{boundary}", "Content-Type: message/delivery-status", "Content-Description: Delivery report", "",
             *status_part,
             f"--{boundary}", "Content-Type: text/rfc822-headers", "Content-Description: Undelivered message headers",
             ""]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8") + headers + f"\r\n--{boundary}--\r\n".encode()


def _header(block: bytes, name: bytes) -> str:
    for field, value in split_fields(block):
        if field == name.decode():
            return decode_words(raw_text(value)).strip()
    return ""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
