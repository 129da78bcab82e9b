"""Writes the labelled reply-sorting set (tests/data/replies/<kind>/<name>.eml and
labels.json). Every message is written by hand after the shapes the MTAs and
providers really send (their texts, headers and report fields); nothing is
copied from another project's corpus. Run: python3 tests/data/replies/build.py"""
from __future__ import annotations

import hashlib
import json
import os
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
LABELS: dict[str, dict] = {}
SENDER = "anna.schmidt@posthouse.example"
SENDER_H = "Anna Schmidt <anna.schmidt@posthouse.example>"


def mid(name: str, host: str = "mail.posthouse.example") -> str:
    h = hashlib.sha1(name.encode()).hexdigest()
    return f"20261203{int(h[:6], 16) % 240000:06d}.{h[6:16].upper()}@{host}"


def date(n: int) -> str:
    return f"Thu, {1 + n % 28:d} Nov 2026 {8 + n % 10:02d}:{(n * 7) % 60:02d}:{(n * 13) % 60:02d} +0000"


def original(name: str, rcpt: str, subject: str = "Your application at Posthouse", headers_only=False) -> str:
    head = textwrap.dedent(f"""\
        Return-Path: <{SENDER}>
        Received: from [192.0.2.10] (unknown [192.0.2.10])
        \tby mail.posthouse.example (Postfix) with ESMTPSA id 4F2A1C0123
        \tfor <{rcpt}>; {date(3)}
        Message-ID: <{mid(name)}>
        Date: {date(3)}
        MIME-Version: 1.0
        User-Agent: Posthouse/0.1
        From: {SENDER_H}
        To: <{rcpt}>
        Subject: {subject}
        Content-Type: text/plain; charset=UTF-8; format=flowed
        Content-Transfer-Encoding: 7bit
        """)
    if headers_only:
        return head
    return head + "\nHello,\n\nthank you for your interest. Could we talk on Monday?\n\nBest regards,\nAnna\n"


def write(kind: str, name: str, text: str, label: dict) -> None:
    os.makedirs(os.path.join(HERE, kind), exist_ok=True)
    path = f"{kind}/{name}.eml"
    with open(os.path.join(HERE, path), "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    label = {"kind": kind, "hard": None, "reason": None, "recipients": [], **label}
    LABELS[path] = label


def bounce_label(recipients: list[tuple], original_name: str | None = None) -> dict:
    """recipients: (address, status, hard, reason)."""
    rs = [{"address": a, "status": s, "hard": h, "reason": r} for a, s, h, r in recipients]
    return {"hard": any(r["hard"] for r in rs), "reason": rs[0]["reason"], "recipients": rs,
            "original_message_id": mid(original_name) if original_name else None}


def report(*, name: str, from_h: str, subject: str, text: str, per_message: str, per_rcpt: list[str],
           rcpt: str, headers: str = "", html: str | None = None, attach: str = "rfc822",
           boundary: str | None = None, orig_subject="Your application at Posthouse") -> str:
    b = boundary or hashlib.md5(name.encode()).hexdigest()[:12].upper() + ".1764756902/mx.posthouse.example"
    parts = [f"--{b}\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n{text}\n"]
    if html:
        parts[0] = (f"--{b}\nContent-Type: multipart/alternative; boundary=\"alt-{b[:8]}\"\n\n"
                    f"--alt-{b[:8]}\nContent-Type: text/plain; charset=us-ascii\n\n{text}\n"
                    f"--alt-{b[:8]}\nContent-Type: text/html; charset=us-ascii\n\n{html}\n--alt-{b[:8]}--\n")
    status = per_message.rstrip("\n") + "\n\n" + "\n\n".join(p.rstrip("\n") for p in per_rcpt) + "\n"
    parts.append(f"--{b}\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n{status}")
    if attach == "rfc822":
        parts.append(f"--{b}\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\n\n"
                     f"{original(name, rcpt, orig_subject)}")
    elif attach == "headers":
        parts.append(f"--{b}\nContent-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n\n"
                     f"{original(name, rcpt, orig_subject, headers_only=True)}")
    return (f"Return-Path: <>\n{headers}From: {from_h}\nTo: {SENDER}\nSubject: {subject}\nDate: {date(len(name))}\n"
            f"Message-ID: <{mid(name + 'bounce', 'mx.example.net')}>\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n"
            f"Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{b}\"\n"
            f"Content-Transfer-Encoding: 7bit\n\nThis is a MIME-encapsulated message.\n\n" + "\n".join(parts) + f"\n--{b}--\n")


# ---------------------------------------------------------------- Postfix
def postfix(name, rcpts, *, delayed=False, host="mx.posthouse.example"):
    """rcpts: (address, status, diag_text_line, dsn_diag, label_status, hard, reason)."""
    if delayed:
        subject = "Delayed Mail (still being retried)"
        intro = (f"This is the mail system at host {host}.\n\n####################################################################\n"
                 "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
                 "####################################################################\n\n"
                 "Your message could not be delivered for more than 3 hour(s).\nIt will be retried until it is 5 day(s) old.\n\n"
                 "For further assistance, please send mail to postmaster.\n\n"
                 "If you do so, please include this problem report. You can\ndelete your own text from the attached returned message.\n\n"
                 "                   The mail system\n\n")
    else:
        subject = "Undelivered Mail Returned to Sender"
        intro = (f"This is the mail system at host {host}.\n\nI'm sorry to have to inform you that your message could not\n"
                 "be delivered to one or more recipients. It's attached below.\n\n"
                 "For further assistance, please send mail to postmaster.\n\n"
                 "If you do so, please include this problem report. You can\ndelete your own text from the attached returned message.\n\n"
                 "                   The mail system\n\n")
    text = intro + "\n\n".join(f"<{a}>: {line}" for a, s, line, d, *_ in rcpts) + "\n"
    per_message = (f"Reporting-MTA: dns; {host}\nX-Postfix-Queue-ID: 4F2A1C0123\nX-Postfix-Sender: rfc822; {SENDER}\n"
                   f"Arrival-Date: {date(2)}")
    blocks = []
    for a, s, line, d, *_ in rcpts:
        blk = f"Final-Recipient: rfc822; {a}\nOriginal-Recipient: rfc822;{a}\nAction: {'delayed' if delayed else 'failed'}\nStatus: {s}\n"
        if "said:" in d or d.startswith("smtp;"):
            blk += f"Remote-MTA: dns; mx.{a.split('@')[1]}\n"
        blk += f"Diagnostic-Code: {d}\n"
        if delayed:
            blk += f"Will-Retry-Until: {date(9)}\n"
        blocks.append(blk)
    msg = report(name=name, from_h=f"MAILER-DAEMON@{host} (Mail Delivery System)", subject=subject, text=text,
                 per_message=per_message, per_rcpt=blocks, rcpt=rcpts[0][0],
                 attach="headers" if delayed else "rfc822")
    return msg, bounce_label([(a, ls, h, r) for a, s, line, d, ls, h, r in rcpts], name)


def wrap_said(host, said):
    return "\n    ".join(textwrap.wrap(f"host {host}[203.0.113.25] said: {said}", 72))


def add_postfix():
    cases = [
        ("postfix_userunknown_local", [("jdoe@example.org", "5.1.1",
          "host mx.example.org[203.0.113.25] said: 550 5.1.1\n    <jdoe@example.org>: Recipient address rejected: User unknown in local\n    recipient table (in reply to RCPT TO command)",
          "smtp; 550 5.1.1 <jdoe@example.org>: Recipient address rejected: User\n    unknown in local recipient table", "5.1.1", True, "userunknown")]),
        ("postfix_to_gmail_nosuchuser", [("no.such.person.4711@gmail.com", "5.1.1",
          wrap_said("gmail-smtp-in.l.google.com", "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. For more information, go to 550 5.1.1 https://support.google.com/mail/?p=NoSuchUser a640c23a62f3a-ab7c4b2c1e5si123456766b.123 - gsmtp (in reply to RCPT TO command)"),
          "smtp; 550-5.1.1 The email account that you tried to reach does\n    not exist. Please try 550-5.1.1 double-checking the recipient's email\n    address for typos or 550-5.1.1 unnecessary spaces. For more information,\n    go to 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser\n    a640c23a62f3a-ab7c4b2c1e5si123456766b.123 - gsmtp",
          "5.1.1", True, "userunknown")]),
        ("postfix_hostunknown", [("info@no-such-domain-4711.example", "5.4.4",
          "Host or domain name not found. Name service error\n    for name=no-such-domain-4711.example type=AAAA: Host not found",
          "X-Postfix; Host or domain name not found. Name service\n    error for name=no-such-domain-4711.example type=AAAA: Host not found",
          "5.4.4", True, "hostunknown")]),
        ("postfix_remote_overquota", [("kontakt@firma-beispiel.de", "5.2.2",
          wrap_said("mx01.firma-beispiel.de", "552 5.2.2 <kontakt@firma-beispiel.de>: user is over quota (in reply to end of DATA command)"),
          "smtp; 552 5.2.2 <kontakt@firma-beispiel.de>: user is over quota", "5.2.2", False, "mailboxfull")]),
        ("postfix_spamhaus_blocked", [("sales@example.com", "5.7.1",
          wrap_said("mx.example.com", "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.10 (in reply to RCPT TO command)"),
          "smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked\n    using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.10",
          "5.7.1", False, "blocked")]),
        ("postfix_relay_denied", [("ceo@partner.example", "5.7.1",
          wrap_said("mail.partner.example", "554 5.7.1 <ceo@partner.example>: Relay access denied (in reply to RCPT TO command)"),
          "smtp; 554 5.7.1 <ceo@partner.example>: Relay access denied", "5.7.1", False, "norelaying")]),
        ("postfix_message_too_big", [("hr@agency.example", "5.3.4",
          wrap_said("smtp.agency.example", "552 5.3.4 Message size exceeds fixed limit (in reply to end of DATA command)"),
          "smtp; 552 5.3.4 Message size exceeds fixed limit", "5.3.4", False, "mesgtoobig")]),
        ("postfix_two_recipients", [
            ("m.mueller@example.de", "5.1.1",
             wrap_said("mx.example.de", "550 5.1.1 <m.mueller@example.de>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)"),
             "smtp; 550 5.1.1 <m.mueller@example.de>: Recipient address rejected:\n    User unknown in virtual mailbox table", "5.1.1", True, "userunknown"),
            ("t.schulz@example.de", "5.2.2",
             wrap_said("mx.example.de", "552 5.2.2 <t.schulz@example.de>: Mailbox full (in reply to RCPT TO command)"),
             "smtp; 552 5.2.2 <t.schulz@example.de>: Mailbox full", "5.2.2", False, "mailboxfull")]),
        ("postfix_outlook_mailbox_unavailable", [("j.smith1987@outlook.com", "5.5.0",
          wrap_said("outlook-com.olc.protection.outlook.com", "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). [AM4PEPF00027A5C.eurprd04.prod.outlook.com 2026-11-03T10:22:31.123Z 08DCF7A1B2C3D4E5] (in reply to RCPT TO command)"),
          "smtp; 550 5.5.0 Requested action not taken: mailbox unavailable\n    (S2017062302). [AM4PEPF00027A5C.eurprd04.prod.outlook.com\n    2026-11-03T10:22:31.123Z 08DCF7A1B2C3D4E5]",
          "5.5.0", True, "userunknown")]),
        ("postfix_outlook_banned_ip", [("buyer@contoso.example", "5.7.606",
          wrap_said("contoso-example.mail.protection.outlook.com", "550 5.7.606 Access denied, banned sending IP [192.0.2.10]. To request removal from this list please visit https://sender.office.com/ and follow the directions. For more information please go to http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) (in reply to RCPT TO command)"),
          "smtp; 550 5.7.606 Access denied, banned sending IP [192.0.2.10]. To\n    request removal from this list please visit https://sender.office.com/\n    and follow the directions. AS(1430)",
          "5.7.606", False, "blocked")]),
        ("postfix_outlook_dmarc", [("procurement@fabrikam.example", "5.7.509",
          wrap_said("fabrikam-example.mail.protection.outlook.com", "550 5.7.509 Access denied, sending domain posthouse.example does not pass DMARC verification and has a DMARC policy of reject. (in reply to end of DATA command)"),
          "smtp; 550 5.7.509 Access denied, sending domain posthouse.example does\n    not pass DMARC verification and has a DMARC policy of reject.",
          "5.7.509", False, "authfailure")]),
        ("postfix_gmail_unsolicited", [("recruiting.team@gmail.com", "5.7.1",
          wrap_said("gmail-smtp-in.l.google.com", "550-5.7.1 [192.0.2.10 12] Our system has detected that this message is 550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail, 550-5.7.1 this message has been blocked. For more information, go to 550 5.7.1 https://support.google.com/mail/?p=UnsolicitedMessageError 41be03b00d2f7-7c2a3b4c5d6si123 - gsmtp (in reply to end of DATA command)"),
          "smtp; 550-5.7.1 [192.0.2.10 12] Our system has detected that this\n    message is 550-5.7.1 likely unsolicited mail. To reduce the amount of spam\n    sent to Gmail, 550-5.7.1 this message has been blocked.",
          "5.7.1", False, "spamdetected")]),
        ("postfix_gmail_dmarc", [("hiring.manager@gmail.com", "5.7.26",
          wrap_said("gmail-smtp-in.l.google.com", "550-5.7.26 Unauthenticated email from posthouse.example is not accepted due to 550-5.7.26 domain's DMARC policy. Please contact the administrator of 550-5.7.26 posthouse.example domain if this was a legitimate mail. - gsmtp (in reply to end of DATA command)"),
          "smtp; 550-5.7.26 Unauthenticated email from posthouse.example is not\n    accepted due to 550-5.7.26 domain's DMARC policy. - gsmtp",
          "5.7.26", False, "authfailure")]),
        ("postfix_gmail_disabled", [("old.account.2009@gmail.com", "5.2.1",
          wrap_said("gmail-smtp-in.l.google.com", "550-5.2.1 The email account that you tried to reach is disabled. Learn more at 550 5.2.1 https://support.google.com/mail/?p=DisabledUser 5b1f17b1804b1-43b2c3d4e5si1234 - gsmtp (in reply to RCPT TO command)"),
          "smtp; 550-5.2.1 The email account that you tried to reach is disabled.\n    Learn more at 550 5.2.1 https://support.google.com/mail/?p=DisabledUser",
          "5.2.1", False, "suspend")]),
        ("postfix_gmail_low_reputation", [("talent.scout@gmail.com", "5.7.1",
          wrap_said("gmail-smtp-in.l.google.com", "550-5.7.1 This message was blocked because it is suspicious due to 550-5.7.1 the very low reputation of the sending domain. To best protect our 550-5.7.1 users from spam, the message has been blocked. - gsmtp (in reply to end of DATA command)"),
          "smtp; 550-5.7.1 This message was blocked because it is suspicious due to\n    550-5.7.1 the very low reputation of the sending domain.",
          "5.7.1", False, "badreputation")]),
        ("postfix_not_rfc5322", [("press@media.example", "5.7.1",
          wrap_said("gmail-smtp-in.l.google.com", "550-5.7.1 [192.0.2.10] This message is not RFC 5322 compliant. There are 550-5.7.1 multiple Subject headers. To reduce the amount of spam sent to Gmail, 550 5.7.1 this message has been blocked. - gsmtp (in reply to end of DATA command)"),
          "smtp; 550-5.7.1 [192.0.2.10] This message is not RFC 5322 compliant.\n    There are 550-5.7.1 multiple Subject headers.",
          "5.7.1", False, "notcompliantrfc")]),
        ("postfix_virus", [("it@school.example", "5.7.1",
          wrap_said("mx.school.example", "554 5.7.1 Rejected: message contains a virus (Win.Trojan.Agent-123456) (in reply to end of DATA command)"),
          "smtp; 554 5.7.1 Rejected: message contains a virus\n    (Win.Trojan.Agent-123456)", "5.7.1", False, "virusdetected")]),
        ("postfix_user_moved", [("prof.weber@uni.example", "5.1.6",
          wrap_said("mailin.uni.example", "551 5.1.6 User has moved; please try <weber@newuni.example> (in reply to RCPT TO command)"),
          "smtp; 551 5.1.6 User has moved; please try <weber@newuni.example>", "5.1.6", True, "hasmoved")]),
        ("postfix_sender_domain_rejected", [("office@lawfirm.example", "5.1.8",
          wrap_said("mx.lawfirm.example", "553 5.1.8 <anna.schmidt@posthouse.example>: Sender address rejected: Domain not found (in reply to RCPT TO command)"),
          "smtp; 553 5.1.8 <anna.schmidt@posthouse.example>: Sender address\n    rejected: Domain not found", "5.1.8", False, "rejected")]),
        ("postfix_blocked_senders_filter", [("ceo@bigcorp.example", "5.7.1",
          wrap_said("mx.bigcorp.example", "550 5.7.1 Message rejected: the recipient's filter rules do not allow mail from this sender (in reply to end of DATA command)"),
          "smtp; 550 5.7.1 Message rejected: the recipient's filter rules do not\n    allow mail from this sender", "5.7.1", False, "filtered")]),
        ("postfix_spf_fail", [("finance@acme.example", "5.7.23",
          wrap_said("mx.acme.example", "550 5.7.23 Message rejected due to: SPF fail - not authorized. Please see http://www.openspf.net/Why?s=mfrom;id=anna.schmidt@posthouse.example;ip=192.0.2.10 (in reply to RCPT TO command)"),
          "smtp; 550 5.7.23 Message rejected due to: SPF fail - not authorized.", "5.7.23", False, "authfailure")]),
        ("postfix_loops_back", [("team@posthouse-old.example", "5.4.6",
          "mail for posthouse-old.example loops back to myself",
          "X-Postfix; mail for posthouse-old.example loops back to myself", "5.4.6", False, "systemerror")]),
        ("postfix_pipe_command_died", [("bob@posthouse.example", "5.3.0",
          "Command died with status 127:\n    \"/usr/local/bin/deliver-mail\". Command output: /bin/sh: 1:\n    /usr/local/bin/deliver-mail: Permission denied",
          "x-unix; /bin/sh: 1: /usr/local/bin/deliver-mail: Permission denied", "5.3.0", False, "mailererror")]),
        ("postfix_expired_timeout", [("contact@slow-host.example", "4.4.1",
          "delivery temporarily suspended: connect to\n    mx.slow-host.example[198.51.100.7]:25: Connection timed out",
          "X-Postfix; delivery temporarily suspended: connect to\n    mx.slow-host.example[198.51.100.7]:25: Connection timed out", "4.4.1", False, "expired")]),
    ]
    for name, rcpts in cases:
        msg, label = postfix(name, rcpts)
        write("bounce", name, msg, label)
    delayed = [
        ("postfix_delayed_timeout", [("hello@startup.example", "4.4.1",
          "connect to mx.startup.example[198.51.100.20]:25: Connection timed out",
          "X-Postfix; connect to mx.startup.example[198.51.100.20]:25: Connection\n    timed out", "4.4.1", False, "networkerror")]),
        ("postfix_delayed_gmail_overquota", [("busy.person@gmail.com", "4.2.2",
          wrap_said("gmail-smtp-in.l.google.com", "452-4.2.2 The email account that you tried to reach is over quota. Please direct 452-4.2.2 the recipient to 452 4.2.2 https://support.google.com/mail/?p=OverQuotaTemp - gsmtp (in reply to RCPT TO command)"),
          "smtp; 452-4.2.2 The email account that you tried to reach is over quota.\n    Please direct 452-4.2.2 the recipient to 452 4.2.2\n    https://support.google.com/mail/?p=OverQuotaTemp - gsmtp",
          "4.2.2", False, "mailboxfull")]),
        ("postfix_delayed_no_ptr", [("jobs@strict.example", "4.7.1",
          wrap_said("mx.strict.example", "450 4.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.10] (in reply to RCPT TO command)"),
          "smtp; 450 4.7.1 Client host rejected: cannot find your reverse hostname,\n    [192.0.2.10]", "4.7.1", False, "requireptr")]),
        ("postfix_delayed_yahoo_deferred", [("someone@yahoo.com", "4.7.0",
          wrap_said("mta7.am0.yahoodns.net", "421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)"),
          "smtp; 421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred\n    due to unexpected volume or user complaints - 4.16.55.1", "4.7.0", False, "ratelimited")]),
        ("postfix_delayed_too_many_conn", [("info@smallbiz.example", "4.7.0",
          wrap_said("mail.smallbiz.example", "421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later (in reply to end of DATA command)"),
          "smtp; 421 4.7.0 Too many concurrent SMTP connections from this IP\n    address; please try again later", "4.7.0", False, "toomanyconn")]),
        ("postfix_delayed_local_problem", [("support@vendor.example", "4.3.0",
          wrap_said("mx.vendor.example", "451 4.3.0 Temporary local problem - please try later (in reply to end of DATA command)"),
          "smtp; 451 4.3.0 Temporary local problem - please try later", "4.3.0", False, "systemerror")]),
    ]
    for name, rcpts in delayed:
        msg, label = postfix(name, rcpts, delayed=True)
        write("bounce", name, msg, label)


# ---------------------------------------------------------------- Exim (text, no DSN)
def exim(name, failures, *, host="mail.example-hosting.net", delayed=False, subject=None):
    """failures: (address, detail lines, label_status, hard, reason)."""
    if delayed:
        subject = subject or "Warning: message 1tQx9A-0003Zk-2B delayed 24 hours"
        body = (f"This message was created automatically by mail delivery software.\n"
                f"A message that you sent has not yet been delivered to one or more of its\n"
                f"recipients after more than 24 hours on the queue on {host}.\n\n"
                f"The message identifier is:     1tQx9A-0003Zk-2B\nThe subject of the message is: Your application at Posthouse\n"
                f"The date of the message is:    {date(3)}\n\n"
                f"The address to which the message has not yet been delivered is:\n\n"
                + "\n".join(f"  {a}\n" + "\n".join("    " + ln for ln in lines) + "\n" for a, lines, *_ in failures)
                + "\nNo action is required on your part. Delivery attempts will continue for\nsome time, and this warning may be "
                "repeated at intervals if the message\nremains undelivered. Eventually the mail delivery software will give up,\n"
                "and when that happens, the message will be returned to you.\n")
    else:
        subject = subject or "Mail delivery failed: returning message to sender"
        body = ("This message was created automatically by mail delivery software.\n\n"
                "A message that you sent could not be delivered to one or more of its\n"
                "recipients. This is a permanent error. The following address(es) failed:\n\n"
                + "\n".join(f"  {a}\n" + "\n".join("    " + ln for ln in lines) + "\n" for a, lines, *_ in failures)
                + "\n------ This is a copy of the message, including all the headers. ------\n\n"
                + original(name, failures[0][0]))
    failed_hdr = "" if delayed else f"X-Failed-Recipients: {', '.join(a for a, *_ in failures)}\n"
    msg = (f"Return-path: <>\nEnvelope-to: {SENDER}\nDelivery-date: {date(4)}\nReceived: from mail by {host} with local (Exim 4.96)\n"
           f"\tid 1tQxAB-0004aB-3C\n\tfor {SENDER}; {date(4)}\n{failed_hdr}Auto-Submitted: auto-replied\n"
           f"From: Mail Delivery System <Mailer-Daemon@{host}>\nTo: {SENDER}\nReferences: <{mid(name)}>\n"
           f"Content-Type: text/plain; charset=us-ascii\nSubject: {subject}\nMessage-Id: <E1tQxAB-0004aB-3C@{host}>\n"
           f"Date: {date(4)}\n\n{body}")
    return msg, bounce_label([(a, s, h, r) for a, lines, s, h, r in failures], name)


def add_exim():
    cases = [
        ("exim_userunknown", [("j.doe@example.net", ["host mx.example.net [203.0.113.5]",
          "SMTP error from remote mail server after RCPT TO:<j.doe@example.net>:",
          "550 5.1.1 <j.doe@example.net>: Recipient address rejected: User unknown in virtual mailbox table"],
          "5.1.1", True, "userunknown")]),
        ("exim_unrouteable", [("contact@gone-domain.example", ["Unrouteable address"], "5.1.2", True, "hostunknown")]),
        ("exim_local_no_such_user", [("nobody-here@example-hosting.net", ["No Such User Here"], "5.1.1", True, "userunknown")]),
        ("exim_mailbox_quota", [("marketing@client.example", ["host mail.client.example [198.51.100.44]",
          "SMTP error from remote mail server after end of data:",
          "552 5.2.2 Mailbox quota exceeded: storage allocation exceeded"], "5.2.2", False, "mailboxfull")]),
        ("exim_retry_timeout", [("office@dead-server.example", ["retry timeout exceeded"], "5.4.7", False, "expired")]),
        ("exim_pipe_failed", [("|/home/user/bin/ticket-import", ["pipe to |/home/user/bin/ticket-import",
          "  generated by tickets@example-hosting.net",
          "Child process of address_pipe transport returned 69 (could mean service or program unavailable) from command:",
          "/home/user/bin/ticket-import"], None, None, None)]),
        ("exim_two_failures", [
            ("anne@example.co.uk", ["host mx.example.co.uk [192.0.2.77]", "SMTP error from remote mail server after RCPT TO:<anne@example.co.uk>:",
                                    "550 No such recipient"], "5.1.1", True, "userunknown"),
            ("bert@example.co.uk", ["host mx.example.co.uk [192.0.2.77]", "SMTP error from remote mail server after RCPT TO:<bert@example.co.uk>:",
                                    "550 5.7.1 Relaying denied"], "5.7.1", False, "norelaying")]),
    ]
    for name, failures in cases:
        if name == "exim_pipe_failed":
            continue
        msg, label = exim(name, failures)
        write("bounce", name, msg, label)
    msg, label = exim("exim_delayed_mailboxfull", [("partner@remote.example", [
        "Delay reason: SMTP error from remote mail server after RCPT TO:<partner@remote.example>:",
        "452 4.2.2 Mailbox full", "host mx.remote.example [203.0.113.90]"], "4.2.2", False, "mailboxfull")],
        delayed=True)
    write("bounce", "exim_delayed_mailboxfull", msg, label)


# ---------------------------------------------------------------- Sendmail
def add_sendmail():
    host = "mail.company.example"
    name = "sendmail_userunknown"
    text = ("The original message was received at " + date(3) + "\nfrom mail.posthouse.example [192.0.2.10]\n\n"
            "   ----- The following addresses had permanent fatal errors -----\n<peter.pan@company.example>\n"
            "    (reason: 550 5.1.1 <peter.pan@company.example>... User unknown)\n\n"
            "   ----- Transcript of session follows -----\n... while talking to mailhub.company.example.:\n>>> RCPT To:<peter.pan@company.example>\n"
            "<<< 550 5.1.1 <peter.pan@company.example>... User unknown\n550 5.1.1 <peter.pan@company.example>... User unknown\n")
    msg = report(name=name, from_h=f"Mail Delivery Subsystem <MAILER-DAEMON@{host}>", subject="Returned mail: see transcript for details",
                 text=text, per_message=f"Reporting-MTA: dns; {host}\nReceived-From-MTA: DNS; mail.posthouse.example\nArrival-Date: {date(3)}",
                 per_rcpt=[f"Final-Recipient: RFC822; peter.pan@company.example\nAction: failed\nStatus: 5.1.1\nRemote-MTA: DNS; mailhub.company.example\n"
                           f"Diagnostic-Code: SMTP; 550 5.1.1 <peter.pan@company.example>... User unknown\nLast-Attempt-Date: {date(3)}"],
                 rcpt="peter.pan@company.example", boundary="0B3KfNq8012345.1764756902/" + host)
    write("bounce", name, msg, bounce_label([("peter.pan@company.example", "5.1.1", True, "userunknown")], name))

    name = "sendmail_text_hostunknown"
    body = ("The original message was received at " + date(3) + "\nfrom mail.posthouse.example [192.0.2.10]\n\n"
            "   ----- The following addresses had permanent fatal errors -----\n<info@nonexistent-firm.example>\n"
            "    (reason: 550 Host unknown)\n\n   ----- Transcript of session follows -----\n"
            "550 5.1.2 <info@nonexistent-firm.example>... Host unknown (Name server: nonexistent-firm.example: host not found)\n\n"
            "   ----- Original message follows -----\n\n" + original(name, "info@nonexistent-firm.example"))
    msg = (f"Return-Path: <>\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@{host}>\nTo: <{SENDER}>\nSubject: Returned mail: Host unknown (Name server: nonexistent-firm.example: host not found)\n"
           f"Date: {date(5)}\nMessage-Id: <202611030822.0B3KfNq8012399@{host}>\nAuto-Submitted: auto-generated (failure)\n\n{body}")
    write("bounce", name, msg, bounce_label([("info@nonexistent-firm.example", "5.1.2", True, "hostunknown")], name))

    name = "sendmail_warning_delayed"
    text = ("    **********************************************\n    **      THIS IS A WARNING MESSAGE ONLY      **\n"
            "    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n    **********************************************\n\n"
            "The original message was received at " + date(3) + "\nfrom mail.posthouse.example [192.0.2.10]\n\n"
            "   ----- Transcript of session follows -----\n<hr@manufacturer.example>... Deferred: Connection refused by mx.manufacturer.example.\n"
            "Warning: message still undelivered after 4 hours\nWill keep trying until message is 5 days old\n")
    msg = report(name=name, from_h=f"Mail Delivery Subsystem <MAILER-DAEMON@{host}>",
                 subject="Warning: could not send message for past 4 hours", text=text,
                 per_message=f"Reporting-MTA: dns; {host}\nArrival-Date: {date(3)}",
                 per_rcpt=["Final-Recipient: RFC822; hr@manufacturer.example\nAction: delayed\nStatus: 4.4.1\n"
                           f"Remote-MTA: DNS; mx.manufacturer.example\nLast-Attempt-Date: {date(4)}\nWill-Retry-Until: {date(8)}"],
                 rcpt="hr@manufacturer.example", attach="headers")
    write("bounce", name, msg, bounce_label([("hr@manufacturer.example", "4.4.1", False, "networkerror")], name))


# ---------------------------------------------------------------- qmail and Yahoo (qmail-born text)
def qmail(name, blocks, *, host="mx.provider.example", yahoo=False):
    if yahoo:
        intro = "Sorry, we were unable to deliver your message to the following address.\n\n"
        tail = "\n--- Below this line is a copy of the message.\n\n"
        from_h = "MAILER-DAEMON@yahoo.com"
        subject = "Failure Notice"
    else:
        intro = (f"Hi. This is the qmail-send program at {host}.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n"
                 "This is a permanent error; I've given up. Sorry it didn't work out.\n\n")
        tail = "\n--- Below this line is a copy of the message.\n\n"
        from_h = f"MAILER-DAEMON@{host}"
        subject = "failure notice"
    body = intro + "\n".join(f"<{a}>:\n{text}\n" for a, text, *_ in blocks) + tail + original(name, blocks[0][0])
    msg = (f"Return-Path: <>\nReceived: (qmail 12345 invoked for bounce); {date(6)}\nDate: {date(6)}\nFrom: {from_h}\nTo: {SENDER}\n"
           f"Subject: {subject}\n\n{body}")
    return msg, bounce_label([(a, s, h, r) for a, text, s, h, r in blocks], name)


def add_qmail():
    for name, blocks, kw in [
        ("qmail_no_mailbox", [("sam@provider.example", "Sorry, no mailbox here by that name. (#5.1.1)", "5.1.1", True, "userunknown")], {}),
        ("qmail_remote_spam", [("news@media.example", "192.0.2.66 does not like recipient.\nRemote host said: 554 5.7.1 Message rejected as spam by Content Filtering.\nGiving up on 192.0.2.66.",
                                "5.7.1", False, "spamdetected")], {}),
        ("qmail_overquota", [("lisa@provider.example", "The users mailfolder is over the allowed quota (size). (#5.2.2)", "5.2.2", False, "mailboxfull")], {}),
        ("qmail_no_host", [("bob@typo-domain.example", "Sorry, I couldn't find any host named typo-domain.example. (#5.1.2)", "5.1.2", True, "hostunknown")], {}),
        ("yahoo_no_account", [("maria.lopez1990@yahoo.com", "554 delivery error: dd This user doesn't have a yahoo.com account (maria.lopez1990@yahoo.com) [0] - mta4012.mail.gq1.yahoo.com",
                              "5.1.1", True, "userunknown")], {"yahoo": True}),
        ("yahoo_mailbox_disabled", [("old.friend@yahoo.com", "554 delivery error: dd Sorry your message to old.friend@yahoo.com cannot be delivered. This mailbox is disabled (554.30). - mta1234.mail.bf1.yahoo.com",
                                    "5.2.1", False, "suspend")], {"yahoo": True}),
        ("yahoo_remote_mailboxfull", [("kunde@isp.example", "Remote host said: 552 5.2.2 <kunde@isp.example>: Recipient address rejected: Mailbox full [RCPT_TO]",
                                      "5.2.2", False, "mailboxfull")], {"yahoo": True}),
    ]:
        msg, label = qmail(name, blocks, **kw)
        write("bounce", name, msg, label)


# ---------------------------------------------------------------- Exchange / Office 365
def o365(name, rcpt, status, diag, user_text, label):
    host = "AM6PR04MB5432.eurprd04.prod.outlook.com"
    text = (f"Your message to {rcpt} couldn't be delivered.\n\n{user_text}\n\nanna.schmidt\nOffice 365\n\n{rcpt.split('@')[0]}\n"
            f"Action Required\t\t\tRecipient\n\n\nHow to Fix It\n\n\nMore Info for Email Admins\nStatus code: {diag.split(';')[0].split()[1]}\n\n"
            "Diagnostic information for administrators:\n\n"
            f"Generating server: {host}\n\n{rcpt}\nRemote Server returned '{diag}'\n\n"
            f"Original message headers:\n\nReceived: from AM6PR04MB1111.eurprd04.prod.outlook.com by {host} with HTTPS; {date(3)}\n"
            f"Message-ID: <{mid(name)}>\nSubject: Your application at Posthouse\n")
    html = ("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=us-ascii\"></head><body>"
            f"<p><b><font color=\"#000000\" size=\"3\">Your message to <a href=\"mailto:{rcpt}\">{rcpt}</a> couldn't be delivered.</font></b></p>"
            f"<p>{user_text}</p><p>Diagnostic information for administrators:</p><p>Generating server: {host}<br>{rcpt}<br>"
            f"Remote Server returned '{diag}'</p></body></html>")
    msg = report(name=name, from_h="Microsoft Outlook <MAILER-DAEMON@eurprd04.prod.outlook.com>",
                 subject="Undeliverable: Your application at Posthouse", text=text, html=html,
                 per_message=f"Reporting-MTA: dns;{host}\nReceived-From-MTA: dns;AM6PR04MB1111.eurprd04.prod.outlook.com\nArrival-Date: {date(3)}",
                 per_rcpt=[f"Original-Recipient: rfc822;{rcpt}\nFinal-Recipient: rfc822;{rcpt}\nAction: failed\nStatus: {status}\n"
                           f"Diagnostic-Code: smtp;{diag}"],
                 rcpt=rcpt, attach="headers",
                 headers=f"Thread-Topic: Your application at Posthouse\nIn-Reply-To: <{mid(name)}>\nReferences: <{mid(name)}>\n"
                         "X-MS-Exchange-Message-Is-Ndr: \nContent-Language: en-US\n")
    write("bounce", name, msg, bounce_label([(rcpt, *label)], name))


def add_exchange():
    o365("o365_recipient_not_found", "former.employee@contoso.example", "5.1.10",
         "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient former.employee@contoso.example not found by SMTP address lookup",
         "former.employee wasn't found at contoso.example.", ("5.1.10", True, "userunknown"))
    o365("o365_recipnotfound_511", "j.meier@fabrikam.example", "5.1.1",
         "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
         "The email address you entered couldn't be found. Please check the recipient's email address and try to resend the message.",
         ("5.1.1", True, "userunknown"))
    o365("o365_quota_exceeded", "busy.boss@tailspin.example", "5.2.2",
         "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; Failed to process message due to a permanent exception",
         "The recipient's mailbox is full and can't accept messages now.", ("5.2.2", False, "mailboxfull"))
    o365("o365_auth_required", "all-staff@woodgrove.example", "5.7.1",
         "550 5.7.1 RESOLVER.RST.AuthRequired; authentication required [Stage: CreateMessage]",
         "Your message couldn't be delivered because delivery to this group is restricted to authenticated senders.",
         ("5.7.1", False, "securityerror"))
    o365("o365_relay_denied", "someone@litware.example", "5.7.64",
         "550 5.7.64 TenantAttribution; Relay Access Denied [SN1NAM02FT012.eop-nam02.prod.protection.outlook.com]",
         "Your message wasn't delivered because the recipient's email provider rejected it.", ("5.7.64", False, "norelaying"))

    # Exchange 2010 on premises: the "Delivery has failed" text and '#550 ... ##' details
    name, rcpt = "exchange2010_recipnotfound", "k.wagner@firma.example"
    text = ("Delivery has failed to these recipients or groups:\n\n" + rcpt + "\nThe e-mail address you entered couldn't be found. "
            "Please check the recipient's e-mail address and try to resend the message. If the problem continues, please contact your helpdesk.\n\n\n\n\n\n"
            "Diagnostic information for administrators:\n\nGenerating server: EXCH01.firma.local\n\n" + rcpt +
            "\n#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##\n\nOriginal message headers:\n\n")
    msg = report(name=name, from_h="Microsoft Exchange <postmaster@firma.example>", subject="Undeliverable: Your application at Posthouse",
                 text=text, per_message="Reporting-MTA: dns;EXCH01.firma.local\nReceived-From-MTA: dns;mail.posthouse.example\n"
                 f"Arrival-Date: {date(3)}", per_rcpt=[f"Final-Recipient: rfc822;{rcpt}\nAction: failed\nStatus: 5.1.1\n"
                 "Diagnostic-Code: smtp;550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"], rcpt=rcpt, attach="rfc822")
    write("bounce", name, msg, bounce_label([(rcpt, "5.1.1", True, "userunknown")], name))

    # Exchange 2003: text only, no report part
    name, rcpt = "exchange2003_text", "r.fischer@alt-firma.example"
    body = ("Your message did not reach some or all of the intended recipients.\n\n      Subject:\tYour application at Posthouse\n"
            f"      Sent:\t11/3/2026 9:12 AM\n\nThe following recipient(s) cannot be reached:\n\n      {rcpt} on 11/3/2026 9:12 AM\n"
            "            The e-mail account does not exist at the organization this message was sent to.  Check the e-mail address, "
            "or contact the recipient directly to find out the correct address.\n            <EXCHSRV.alt-firma.local #5.1.1>\n")
    msg = (f"Return-Path: <>\nFrom: System Administrator <postmaster@alt-firma.example>\nTo: {SENDER_H}\n"
           f"Subject: Undeliverable: Your application at Posthouse\nDate: {date(7)}\nMessage-ID: <NDR.{mid(name, 'alt-firma.example')}>\n"
           f"In-Reply-To: <{mid(name)}>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=\"iso-8859-1\"\nX-MS-Has-Attach: \n\n{body}")
    write("bounce", name, msg, bounce_label([(rcpt, "5.1.1", True, "userunknown")], name))


# ---------------------------------------------------------------- Gmail as the sender's provider
def gmail(name, rcpt, *, title, explain, response, status, action="failed", label):
    b = "000000000000" + hashlib.md5(name.encode()).hexdigest()[:16]
    text = (f"\n** {title} **\n\n{explain}\n\nThe response {'from the remote server ' if 'DNS' not in response else ''}was:\n{response}\n")
    html = (f"<html><head></head><body><div style=\"font-family:Roboto\"><h2>{title}</h2><p>{explain}</p>"
            f"<p>The response was:</p><p style=\"font-family:monospace\">{response}</p></div></body></html>")
    msg = (f"Return-Path: <>\nReceived: by 2002:a05:6a10:1234:b0:5a1:1234:5678 with SMTP id abc123csp456789pxb;\n\t{date(8)}\n"
           f"From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: anna.schmidt@gmail.com\n"
           f"Auto-Submitted: auto-replied\nMessage-ID: <{mid(name + 'g', 'mx.google.com')}>\nDate: {date(8)}\n"
           f"Subject: Delivery Status Notification ({'Failure' if action == 'failed' else 'Delay'})\n"
           f"References: <{mid(name)}>\nIn-Reply-To: <{mid(name)}>\nX-Failed-Recipients: {rcpt}\n" if action == "failed" else
           f"Return-Path: <>\nFrom: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: anna.schmidt@gmail.com\n"
           f"Auto-Submitted: auto-replied\nMessage-ID: <{mid(name + 'g', 'mx.google.com')}>\nDate: {date(8)}\n"
           f"Subject: Delivery Status Notification (Delay)\nReferences: <{mid(name)}>\nIn-Reply-To: <{mid(name)}>\n")
    msg += (f"MIME-Version: 1.0\nContent-Type: multipart/report; boundary=\"{b}\"; report-type=delivery-status\n\n"
            f"--{b}\nContent-Type: multipart/related; boundary=\"{b}_r\"\n\n--{b}_r\nContent-Type: multipart/alternative; boundary=\"{b}_a\"\n\n"
            f"--{b}_a\nContent-Type: text/plain; charset=\"UTF-8\"\n\n{text}\n--{b}_a\nContent-Type: text/html; charset=\"UTF-8\"\n\n{html}\n--{b}_a--\n"
            f"--{b}_r--\n--{b}\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; googlemail.com\n"
            f"Received-From-MTA: dns; anna.schmidt@gmail.com\nArrival-Date: {date(3)}\nX-Original-Message-ID: <{mid(name)}>\n\n"
            f"Final-Recipient: rfc822; {rcpt}\nAction: {action}\nStatus: {status}\n"
            + (f"Remote-MTA: dns; mx.{rcpt.split('@')[1]}. (203.0.113.9, the server for the domain {rcpt.split('@')[1]}.)\n" if "DNS" not in response else "")
            + f"Diagnostic-Code: smtp; {response}\nLast-Attempt-Date: {date(8)}\n" + (f"Will-Retry-Until: {date(12)}\n" if action == "delayed" else "")
            + f"\n--{b}\nContent-Type: message/rfc822\n\n{original(name, rcpt)}\n--{b}--\n")
    write("bounce", name, msg, bounce_label([(rcpt, *label)], name))


def add_gmail():
    gmail("gmail_address_not_found", "h.becker@kanzlei.example", title="Address not found",
          explain="Your message wasn't delivered to h.becker@kanzlei.example because the address couldn't be found, or is unable to receive mail.",
          response="550 5.1.1 <h.becker@kanzlei.example>: Recipient address rejected: User unknown in virtual mailbox table",
          status="5.1.1", label=("5.1.1", True, "userunknown"))
    gmail("gmail_domain_not_found", "info@kanzlei-typo.example", title="Address not found",
          explain="Your message wasn't delivered to info@kanzlei-typo.example because the domain kanzlei-typo.example couldn't be found. Check for typos or unnecessary spaces and try again.",
          response="DNS Error: 2841371 DNS type 'mx' lookup of kanzlei-typo.example responded with code NXDOMAIN Domain name not found: kanzlei-typo.example",
          status="5.0.0", label=("5.1.2", True, "hostunknown"))
    gmail("gmail_delay_timeout", "office@flaky.example", title="Delivery incomplete",
          explain="There was a temporary problem delivering your message to office@flaky.example. Gmail will retry for 45 more hours. You'll be notified if the delivery fails permanently.",
          response="The recipient server did not accept our requests to connect. [mx.flaky.example. 198.51.100.3: timed out]",
          status="4.4.1", action="delayed", label=("4.4.1", False, "networkerror"))
    gmail("gmail_message_blocked", "security@bank.example", title="Message blocked",
          explain="Your message to security@bank.example has been blocked. See technical details below for more information.",
          response="552 5.7.0 This message was blocked because its content presents a potential security issue. Please visit https://support.google.com/mail/?p=BlockedMessage to review our message content and attachment content guidelines.",
          status="5.7.0", label=("5.7.0", False, "virusdetected"))

    # the older Gmail text, no report part
    name, rcpt = "gmail_old_text_permanent", "t.klein@agentur.example"
    body = (f"Delivery to the following recipient failed permanently:\n\n     {rcpt}\n\nTechnical details of permanent failure:\n"
            "Google tried to deliver your message, but it was rejected by the server for the recipient domain agentur.example by mx.agentur.example. [203.0.113.61].\n\n"
            "The error that the other server returned was:\n550 5.1.1 <t.klein@agentur.example>... User unknown\n\n"
            "----- Original message -----\n\n" + original(name, rcpt))
    msg = (f"Return-Path: <>\nFrom: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nTo: anna.schmidt@gmail.com\n"
           f"X-Failed-Recipients: {rcpt}\nSubject: Delivery Status Notification (Failure)\nDate: {date(9)}\n"
           f"Message-ID: <{mid(name + 'g', 'mail.gmail.com')}>\nContent-Type: text/plain; charset=ISO-8859-1\n\n{body}")
    write("bounce", name, msg, bounce_label([(rcpt, "5.1.1", True, "userunknown")], name))


# ---------------------------------------------------------------- Amazon SES
def add_ses():
    name, rcpt = "ses_dsn_userunknown", "nobody@customer.example"
    text = "An error occurred while trying to deliver the mail to the following recipients:\n" + rcpt
    msg = report(name=name, from_h="MAILER-DAEMON@amazonses.com", subject="Delivery Status Notification (Failure)", text=text,
                 per_message="Reporting-MTA: dns; a27-33.smtp-out.eu-west-1.amazonses.com",
                 per_rcpt=[f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: 5.1.1\n"
                           "Remote-MTA: dns; mx.customer.example. 198.51.100.9\nDiagnostic-Code: smtp; 550 5.1.1 user unknown"],
                 rcpt=rcpt, headers="X-Original-To: anna.schmidt@posthouse.example\n")
    write("bounce", name, msg, bounce_label([(rcpt, "5.1.1", True, "userunknown")], name))

    def sns(name, doc, subject="AWS Notification Message"):
        body = json.dumps({"Type": "Notification", "MessageId": "a1b2c3d4-5678-90ab-cdef-111122223333",
                           "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-bounces", "Message": json.dumps(doc),
                           "Timestamp": "2026-11-03T10:22:31.123Z", "SignatureVersion": "1"}) if name.endswith("_envelope") else json.dumps(doc, indent=2)
        return (f"Return-Path: <0102019a1b2c3d4e-sns@eu-west-1.amazonses.com>\nFrom: AWS Notifications <no-reply@sns.amazonaws.com>\n"
                f"To: {SENDER}\nSubject: {subject}\nDate: {date(10)}\nMessage-ID: <0102019a1b2c3d4e-{hashlib.md5(name.encode()).hexdigest()[:12]}-000000@eu-west-1.amazonses.com>\n"
                f"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 7bit\n\n{body}\n\n--\n"
                "If you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe:\n"
                "https://sns.eu-west-1.amazonaws.com/unsubscribe.html?SubscriptionArn=arn:aws:sns:eu-west-1:123456789012:ses-bounces:abc\n")

    def mail_part(name, rcpt):
        return {"timestamp": "2026-11-03T10:20:00.000Z", "source": SENDER, "messageId": "0102019a1b2c3d4e-aaaa-bbbb-cccc-000000",
                "destination": [rcpt], "headersTruncated": False,
                "headers": [{"name": "From", "value": SENDER_H}, {"name": "To", "value": rcpt},
                            {"name": "Message-ID", "value": f"<{mid(name)}>"}, {"name": "Subject", "value": "Newsletter November"}],
                "commonHeaders": {"from": [SENDER_H], "to": [rcpt], "messageId": f"<{mid(name)}>", "subject": "Newsletter November"}}

    name, rcpt = "ses_notification_permanent", "gone@customer.example"
    doc = {"notificationType": "Bounce", "bounce": {"feedbackId": "0102019a-feedback", "bounceType": "Permanent", "bounceSubType": "General",
           "bouncedRecipients": [{"emailAddress": rcpt, "action": "failed", "status": "5.1.1",
                                  "diagnosticCode": "smtp; 550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown"}],
           "timestamp": "2026-11-03T10:22:30.000Z", "remoteMtaIp": "198.51.100.9", "reportingMTA": "dsn; a27-33.smtp-out.eu-west-1.amazonses.com"},
           "mail": mail_part(name, rcpt)}
    write("bounce", name, sns(name, doc), bounce_label([(rcpt, "5.1.1", True, "userunknown")], name))
    name, rcpt = "ses_notification_transient_envelope", "full@customer.example"
    doc = {"notificationType": "Bounce", "bounce": {"bounceType": "Transient", "bounceSubType": "MailboxFull",
           "bouncedRecipients": [{"emailAddress": rcpt, "action": "failed", "status": "4.2.2",
                                  "diagnosticCode": "smtp; 452 4.2.2 Mailbox full"}], "timestamp": "2026-11-03T10:22:30.000Z"},
           "mail": mail_part(name, rcpt)}
    write("bounce", name, sns(name, doc), bounce_label([(rcpt, "4.2.2", False, "mailboxfull")], name))
    name, rcpt = "ses_notification_complaint", "annoyed@customer.example"
    doc = {"notificationType": "Complaint", "complaint": {"complainedRecipients": [{"emailAddress": rcpt}],
           "timestamp": "2026-11-03T11:00:00.000Z", "feedbackId": "0102019a-cfb", "complaintFeedbackType": "abuse",
           "userAgent": "Yahoo!-Mail-Feedback/2.0"}, "mail": mail_part(name, rcpt)}
    write("complaint", name, sns(name, doc), {"recipients": [{"address": rcpt, "status": None, "hard": None, "reason": None}],
                                                "original_message_id": mid(name)})


# ---------------------------------------------------------------- Lotus Domino
def add_domino():
    name, rcpt = "domino_not_listed", "f.hoffmann@versicherung.example"
    body = (f"Your message\n\n  Subject: Your application at Posthouse\n\nwas not delivered to:\n\n  {rcpt}\n\n"
            f"because:\n\n  User f.hoffmann ({rcpt}) not listed in Domino Directory\n\n")
    msg = report(name=name, from_h="Postmaster@versicherung.example", subject="DELIVERY FAILURE: User f.hoffmann (f.hoffmann@versicherung.example) not listed in Domino Directory",
                 text=body, per_message="Reporting-MTA: dns;mail01.versicherung.example", per_rcpt=[
                     f"Final-Recipient: rfc822;{rcpt}\nAction: failed\nStatus: 5.0.0\nDiagnostic-Code: X-Notes; User f.hoffmann ({rcpt}) not listed in Domino Directory"],
                 rcpt=rcpt, attach="headers")
    write("bounce", name, msg, bounce_label([(rcpt, "5.1.1", True, "userunknown")], name))


# ---------------------------------------------------------------- ARF complaints (RFC 5965)
def arf(name, *, from_h, subject, feedback, attach="rfc822", rcpt="reader@yahoo.com", extra_headers="", intro=None):
    b = "----=_Part_" + hashlib.md5(name.encode()).hexdigest()[:10]
    orig = original(name, rcpt, "November newsletter", headers_only=(attach == "headers"))
    msg = (f"Return-Path: <>\nFrom: {from_h}\nTo: fbl@posthouse.example\nSubject: {subject}\nDate: {date(11)}\n"
           f"Message-ID: <{hashlib.md5(name.encode()).hexdigest()}@feedback.example>\n{extra_headers}MIME-Version: 1.0\n"
           f"Content-Type: multipart/report; report-type=feedback-report;\n\tboundary=\"{b}\"\n\n"
           f"--{b}\nContent-Type: text/plain; charset=\"US-ASCII\"\nContent-Transfer-Encoding: 7bit\n\n"
           f"{intro or 'This is an email abuse report for an email message received from IP 192.0.2.10 on ' + date(3)}\n\n"
           f"--{b}\nContent-Type: message/feedback-report\n\n{feedback}\n"
           f"--{b}\nContent-Type: {'text/rfc822-headers' if attach == 'headers' else 'message/rfc822'}\nContent-Disposition: inline\n\n{orig}\n--{b}--\n")
    write("complaint", name, msg, {"recipients": [{"address": rcpt, "status": None, "hard": None, "reason": None}],
                                   "original_message_id": mid(name)})


def add_arf():
    arf("yahoo_fbl", from_h="feedback@arf.mail.yahoo.com", subject="FW: November newsletter",
        feedback="Feedback-Type: abuse\nUser-Agent: Yahoo!-Mail-Feedback/2.0\nVersion: 0.1\nOriginal-Mail-From: <bounces@posthouse.example>\n"
                 f"Original-Rcpt-To: reader@yahoo.com\nReceived-Date: {date(3)}\nReported-Domain: posthouse.example\n"
                 "Authentication-Results: mta1234.mail.bf1.yahoo.com  from=posthouse.example; domainkeys=neutral (no sig);  from=posthouse.example; dkim=pass (ok)\n")
    arf("hotmail_jmrp", from_h="staff@hotmail.com", subject="complaint about message from 192.0.2.10",
        rcpt="reader.1990@hotmail.com", intro="This is an email abuse report for an email message received from IP 192.0.2.10.",
        feedback=f"Feedback-Type: abuse\nUser-Agent: Hotmail FBL\nVersion: 1\nOriginal-Mail-From: <bounces@posthouse.example>\n"
                 f"Arrival-Date: {date(3)}\nSource-IP: 192.0.2.10\nReported-Domain: posthouse.example\n",
        extra_headers="X-HmXmrOriginalRecipient: <reader.1990@hotmail.com>\n")
    arf("aol_arf_headers_only", from_h="scomp@aol.net", subject="Email Feedback Report for IP 192.0.2.10", attach="headers",
        rcpt="member@aol.com",
        feedback=f"Feedback-Type: abuse\nUser-Agent: AOL SComp\nVersion: 1\nOriginal-Mail-From: bounces@posthouse.example\n"
                 f"Original-Rcpt-To: member@aol.com\nArrival-Date: {date(3)}\nReporting-MTA: dns; mail.aol.com\nSource-IP: 192.0.2.10\n")
    arf("generic_arf_fraud", from_h="abuse-reports@isp.example", subject="Abuse Report", rcpt="victim@isp.example",
        feedback=f"Feedback-Type: fraud\nUser-Agent: SomeGenerator/1.0\nVersion: 1\nOriginal-Mail-From: <bounces@posthouse.example>\n"
                 f"Original-Rcpt-To: <victim@isp.example>\nArrival-Date: {date(3)}\nSource-IP: 192.0.2.10\nReported-Domain: posthouse.example\n"
                 "Reported-Uri: http://posthouse.example/offer\nRemoval-Recipient: victim@isp.example\n")


# ---------------------------------------------------------------- automatic replies
def simple(kind, name, *, from_h, subject, body, headers="", to=SENDER_H, in_reply_to=True, ctype="text/plain; charset=UTF-8",
           cte="8bit", label=None, answers=None, return_path=None):
    irt = f"In-Reply-To: <{answers or mid(name)}>\nReferences: <{answers or mid(name)}>\n" if in_reply_to else ""
    rp = return_path if return_path is not None else (from_h.split('<')[-1].rstrip('>') if '<' in from_h else from_h)
    msg = (f"Return-Path: <{rp}>\nFrom: {from_h}\nTo: {to}\nSubject: {subject}\n"
           f"Date: {date(len(name) + 3)}\nMessage-ID: <{hashlib.md5(name.encode()).hexdigest()[:20]}@{from_h.split('@')[-1].rstrip('>')}>\n"
           f"{irt}{headers}MIME-Version: 1.0\nContent-Type: {ctype}\nContent-Transfer-Encoding: {cte}\n\n{body}")
    write(kind, name, msg, {**(label or {}), "original_message_id": (answers or mid(name)) if in_reply_to else None})


def add_autoreplies():
    simple("auto-reply", "sieve_vacation", from_h="Jonas Weber <jonas.weber@example.org>", subject="Auto: Your application at Posthouse",
           headers="Auto-Submitted: auto-replied (vacation)\nPrecedence: bulk\n", return_path="",
           body="I am on holiday until 14 November and will read your message when I am back.\n\nJonas\n")
    simple("auto-reply", "exchange_oof_automatic_reply", from_h="Sarah Connor <sarah.connor@contoso.example>",
           subject="Automatic reply: Your application at Posthouse",
           headers="Thread-Topic: Your application at Posthouse\nX-MS-Has-Attach: \nX-Auto-Response-Suppress: All\n"
                   "X-MS-Exchange-Inbox-Rules-Loop: sarah.connor@contoso.example\nAuto-Submitted: auto-generated\n"
                   "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent\nContent-Language: en-US\n",
           body="Thank you for your email. I am out of the office until Monday 10 November with limited access to email.\n"
                "For urgent matters please contact office@contoso.example.\n\nKind regards,\nSarah\n")
    simple("auto-reply", "exchange_oof_german", from_h="Müller, Thomas <t.mueller@beispiel-gmbh.example>",
           subject="=?utf-8?Q?Automatische_Antwort:_Your_application_at_Posthouse?=",
           headers="Thread-Topic: Your application at Posthouse\nX-Auto-Response-Suppress: All\nAuto-Submitted: auto-generated\nContent-Language: de-DE\n",
           body="Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich 12.11. nicht im Büro.\nIhre E-Mail wird nicht weitergeleitet.\n\nMit freundlichen Grüßen\nThomas Müller\n")
    simple("auto-reply", "outlook_abwesenheitsnotiz", from_h="Julia Braun <j.braun@kanzlei.example>",
           subject="Abwesenheitsnotiz: Your application at Posthouse", headers="X-Mailer: Microsoft Outlook 16.0\n",
           body="Guten Tag,\n\nich bin bis zum 20.11. im Urlaub. In dringenden Fällen wenden Sie sich bitte an meine Kollegin.\n\nJulia Braun\n")
    simple("auto-reply", "reponse_automatique_fr", from_h="Claire Martin <claire.martin@societe.example>",
           subject="=?iso-8859-1?Q?R=E9ponse_automatique_:_Your_application_at_Posthouse?=",
           headers="X-Auto-Response-Suppress: All\n", ctype="text/plain; charset=iso-8859-1", cte="quoted-printable",
           body="Bonjour,\n\nJe suis absente jusqu'au 15 novembre. Je r=E9pondrai =E0 votre message d=E8s mon retour.\n\nCordialement,\nClaire\n")
    simple("auto-reply", "gmail_vacation_re_subject", from_h="Tom Baker <tom.baker.dev@gmail.com>",
           subject="Re: Your application at Posthouse", headers="Auto-Submitted: auto-replied\n",
           body="Hi! I'm travelling this week with limited access to email. I'll get back to you as soon as I can.\n\nTom\n")
    simple("auto-reply", "cpanel_autoresponder", from_h="sales@shop.example", subject="Thanks for your email",
           headers="X-Autoreply: yes\nAuto-Submitted: auto-replied\nPrecedence: auto_reply\n",
           body="We have received your email and will respond within one business day.\n\nShop Example Sales\n")
    simple("auto-reply", "x_autorespond_header", from_h="Support Team <support@saas.example>", subject="We received your request",
           headers="X-Autorespond: We received your request\n", in_reply_to=False,
           body="Hello,\n\nthis is an automatic confirmation. Ticket #48213 was created for your message.\n")
    simple("auto-reply", "precedence_auto_reply", from_h="info@hotel.example", subject="Your message to Hotel Example",
           headers="Precedence: auto_reply\n", body="Thank you for contacting Hotel Example. Our team will answer within 24 hours.\n")
    simple("auto-reply", "lotus_notes_out_of_office", from_h="Peter Vogel <peter.vogel@versicherung.example>",
           subject="Peter Vogel is out of the office.", headers="Auto-Submitted: auto-generated\nX-Mailer: Lotus Domino Release 9.0.1FP10\n",
           body="I will be out of the office starting 03.11.2026 and will not return until 07.11.2026.\n\nI will respond to your message when I return.\n")
    simple("auto-reply", "respuesta_automatica_es", from_h="Lucía García <lucia.garcia@empresa.example>",
           subject="=?UTF-8?Q?Respuesta_autom=C3=A1tica:_Your_application_at_Posthouse?=", headers="Auto-Submitted: auto-replied\n",
           body="Estoy fuera de la oficina hasta el lunes. Responderé a su mensaje a mi regreso.\n")
    simple("auto-reply", "out_of_office_subject_only", from_h="Mark Lee <mark.lee@agency.example>",
           subject="Out of Office: Your application at Posthouse", in_reply_to=False,
           body="I'm out of the office until November 12th. For urgent requests please call +1 555 0100.\n")


# ---------------------------------------------------------------- unsubscribe requests
def add_unsubscribe():
    simple("unsubscribe", "list_unsubscribe_mailto", from_h="reader@example.net",
           to="unsubscribe-7f3a9c21e4@lists.posthouse.example", subject="unsubscribe", in_reply_to=False,
           body="This message was automatically generated by Gmail.\n")
    simple("unsubscribe", "mailto_subject_unsubscribe_token", from_h="Karl Heinz <k.heinz@web.example>",
           to="newsletter@posthouse.example", subject="Unsubscribe 7f3a9c21e4-b2", in_reply_to=False, body="\n")
    simple("unsubscribe", "mailman_leave", from_h="old.member@example.org", to="announce-leave@lists.posthouse.example",
           subject="", in_reply_to=False, body="\n")
    simple("unsubscribe", "reply_remove_me", from_h="Linda Park <linda.park@example.com>", subject="Re: November newsletter",
           body="Please remove me from your mailing list.\n\nThanks,\nLinda\n\nOn Mon, Nov 3, 2026 at 10:20 AM Anna Schmidt <anna.schmidt@posthouse.example> wrote:\n"
                "> Hello Linda,\n>\n> here is what is new at Posthouse this month ...\n>\n> To unsubscribe, reply with \"unsubscribe\".\n")
    simple("unsubscribe", "reply_stop_emailing", from_h="Greg Miller <greg@miller-consulting.example>", subject="RE: Quick question",
           body="Stop emailing me. I never signed up for this.\n\n-----Original Message-----\nFrom: Anna Schmidt <anna.schmidt@posthouse.example>\n"
                "Sent: Monday, November 3, 2026 10:20 AM\nTo: greg@miller-consulting.example\nSubject: Quick question\n\nHi Greg, do you have 10 minutes this week?\n")
    simple("unsubscribe", "reply_german_austragen", from_h="Helga Schneider <h.schneider@beispiel.example>", subject="AW: Unser Angebot für Sie",
           body="Sehr geehrte Damen und Herren,\n\nbitte tragen Sie mich aus Ihrem Verteiler aus. Ich möchte keine weiteren E-Mails erhalten.\n\n"
                "Mit freundlichen Grüßen\nHelga Schneider\n\nVon: Anna Schmidt <anna.schmidt@posthouse.example>\nGesendet: Montag, 3. November 2026 10:20\n"
                "An: h.schneider@beispiel.example\nBetreff: Unser Angebot für Sie\n\nSehr geehrte Frau Schneider, ...\n")
    simple("unsubscribe", "reply_french_desinscrire", from_h="Jean Dupont <jean.dupont@exemple.example>", subject="RE: Notre offre",
           body="Bonjour,\n\nMerci de me désinscrire de votre liste.\n\nCordialement,\nJean\n\nLe lun. 3 nov. 2026 à 10:20, Anna Schmidt <anna.schmidt@posthouse.example> a écrit :\n> Bonjour Jean, ...\n")
    simple("unsubscribe", "reply_just_unsubscribe", from_h="sam@example.io", subject="Re: November newsletter",
           body="UNSUBSCRIBE\n\nSent from my iPhone\n\n> On 3 Nov 2026, at 10:20, Anna Schmidt <anna.schmidt@posthouse.example> wrote:\n> Hello ...\n")


# ---------------------------------------------------------------- people's replies
def add_replies():
    simple("reply", "plain_reply", from_h="Jonas Weber <jonas.weber@example.org>", subject="Re: Your application at Posthouse",
           body="Hi Anna,\n\nMonday works for me, 10:00?\n\nJonas\n\nOn Mon, Nov 3, 2026 at 9:12 AM Anna Schmidt <anna.schmidt@posthouse.example> wrote:\n"
                "> Hello,\n>\n> thank you for your interest. Could we talk on Monday?\n")
    simple("reply", "reply_quoting_a_bounce", from_h="Tim Berger <tim.berger@partner.example>", subject="Re: Undelivered Mail Returned to Sender",
           body="Hi Anna,\n\nthe address you used is old, please write to tim@partner-new.example instead.\n\nTim\n\n"
                "Am 03.11.2026 um 09:15 schrieb Mail Delivery System <MAILER-DAEMON@mx.posthouse.example>:\n"
                "> This is the mail system at host mx.posthouse.example.\n>\n> I'm sorry to have to inform you that your message could not\n"
                "> be delivered to one or more recipients. It's attached below.\n>\n> <tim.berger@partner-old.example>: host mx.partner-old.example[203.0.113.4] said:\n"
                ">     550 5.1.1 <tim.berger@partner-old.example>: Recipient address rejected: User\n>     unknown in local recipient table (in reply to RCPT TO command)\n")
    simple("reply", "reply_forwarding_gmail_bounce_text", from_h="Nina Roth <nina.roth@gmail.com>", subject="Re: Delivery Status Notification (Failure)",
           body="Anna, I got this when I tried to write to your colleague. Is the address right?\n\n"
                "---------- Forwarded message ---------\nFrom: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
                "Subject: Delivery Status Notification (Failure)\n\n** Address not found **\n\nYour message wasn't delivered to bob@posthouse.example because the address couldn't be found, or is unable to receive mail.\n\n"
                "The response from the remote server was:\n550 5.1.1 <bob@posthouse.example>: Recipient address rejected: User unknown in virtual mailbox table\n")
    simple("reply", "german_reply_aw", from_h="Stefan Koch <s.koch@handwerk.example>", subject="AW: Ihr Angebot",
           body="Hallo Frau Schmidt,\n\nvielen Dank für das Angebot. Können Sie mir bitte noch die Preise für 20 Lizenzen schicken?\n\n"
                "Viele Grüße\nStefan Koch\n\n-----Ursprüngliche Nachricht-----\nVon: Anna Schmidt <anna.schmidt@posthouse.example>\n"
                "Gesendet: Montag, 3. November 2026 09:12\nAn: s.koch@handwerk.example\nBetreff: Ihr Angebot\n\nSehr geehrter Herr Koch, ...\n")
    simple("reply", "outlook_reply_original_message", from_h="Rachel Green <rachel.green@bigcorp.example>", subject="RE: Your application at Posthouse",
           headers="Thread-Topic: Your application at Posthouse\nThread-Index: AQHbTz1234567890abcdef==\nX-MS-Has-Attach: \nContent-Language: en-US\n",
           body="Hi Anna,\n\nThanks. I was out of office last week, sorry for the late answer. Monday is fine.\n\nRachel\n\n"
                "-----Original Message-----\nFrom: Anna Schmidt <anna.schmidt@posthouse.example>\nSent: Monday, November 3, 2026 9:12 AM\n"
                "To: Rachel Green <rachel.green@bigcorp.example>\nSubject: Your application at Posthouse\n\nHello, ...\n")
    simple("reply", "html_only_reply", from_h="Chris Adams <chris@adams-design.example>", subject="Re: Proposal", ctype="text/html; charset=UTF-8",
           body="<html><body><div>Looks good to me, let's do it!</div><div><br></div><div>Chris</div><blockquote>On Mon, Anna wrote:<br>"
                "Here is the proposal ...</blockquote></body></html>\n")
    simple("reply", "reply_not_interested", from_h="Olivia Brown <olivia@brown-law.example>", subject="Re: Quick question",
           body="Thanks, but we are not interested at the moment.\n\nOlivia\n\nOn Mon, Nov 3, 2026 at 10:20 AM Anna Schmidt wrote:\n> Hi Olivia, ...\n"
                "> If you don't want to hear from us again, unsubscribe here: https://posthouse.example/u/abc\n")
    simple("reply", "reply_without_re_but_in_reply_to", from_h="Dmitri Ivanov <d.ivanov@example.ru>", subject="Meeting on Monday",
           body="Dear Anna,\n\nconfirmed for Monday 10:00 CET.\n\nBest,\nDmitri\n")
    simple("reply", "reply_sv_swedish", from_h="Erik Larsson <erik.larsson@foretag.example>", subject="SV: Your application at Posthouse",
           body="Hej Anna,\n\ntack! Måndag passar bra.\n\nErik\n\nFrån: Anna Schmidt <anna.schmidt@posthouse.example>\nSkickat: den 3 november 2026 09:12\n")
    simple("reply", "reply_multipart_alternative", from_h="Priya Patel <priya.patel@example.in>", subject="Re: Your application at Posthouse",
           ctype="multipart/alternative; boundary=\"b1\"", cte="7bit",
           body="--b1\nContent-Type: text/plain; charset=UTF-8\n\nHi Anna, attached is my CV as requested.\n\nPriya\n\n"
                "On Mon, Nov 3, 2026 at 9:12 AM Anna Schmidt wrote:\n> Could you send your CV?\n"
                "--b1\nContent-Type: text/html; charset=UTF-8\n\n<div>Hi Anna, attached is my CV as requested.</div><div>Priya</div>\n--b1--\n")


# ---------------------------------------------------------------- other: newsletters, notifications, receipts
def add_other():
    simple("other", "newsletter_list_unsubscribe", from_h="Tech Weekly <newsletter@techweekly.example>", subject="This week in tech: 10 stories",
           in_reply_to=False, headers="List-Unsubscribe: <mailto:unsubscribe@techweekly.example?subject=unsubscribe>, <https://techweekly.example/u/abc>\n"
                                      "List-Unsubscribe-Post: List-Unsubscribe=One-Click\nPrecedence: bulk\nFeedback-ID: 123:456:campaign:techweekly\n",
           body="Hello reader,\n\nhere are this week's stories ...\n\nTo unsubscribe click here: https://techweekly.example/u/abc\n")
    simple("other", "newsletter_with_auto_response_suppress", from_h="Shop Example <news@shop.example>", subject="Black Friday: 30% off everything",
           in_reply_to=False, headers="X-Auto-Response-Suppress: OOF, AutoReply\nList-Unsubscribe: <https://shop.example/unsub?u=1>\nX-Mailer: Mailchimp Mailer\n",
           body="Only this weekend: 30% off. If you no longer wish to receive these emails, unsubscribe here.\n")
    simple("other", "github_notification", from_h="GitHub <notifications@github.com>", subject="[posthouse/posthouse] Fix IDLE timeout (PR #1234)",
           headers="List-ID: posthouse/posthouse <posthouse.posthouse.github.com>\nList-Archive: https://github.com/posthouse/posthouse\n"
                   "Precedence: list\nX-GitHub-Reason: subscribed\n", answers="posthouse/posthouse/pull/1234@github.com",
           body="@someone approved this pull request.\n\n-- \nReply to this email directly or view it on GitHub.\n")
    simple("other", "cron_output_auto_generated", from_h="Cron Daemon <root@server.posthouse.example>", subject="Cron <root@server> /usr/local/bin/backup",
           in_reply_to=False, headers="Auto-Submitted: auto-generated\nX-Cron-Env: <SHELL=/bin/sh>\n",
           body="backup: 1423 files, 2.1 GB, done in 93 s\n")
    simple("other", "password_reset_noreply", from_h="Example Cloud <no-reply@cloud.example>", subject="Reset your password",
           in_reply_to=False, headers="Auto-Submitted: auto-generated\n",
           body="Someone asked to reset your password. If it wasn't you, ignore this email.\n")
    # a delivery report that says delivered (a DSN with NOTIFY=SUCCESS): nothing failed
    name, rcpt = "dsn_delivered_success", "partner@example.org"
    msg = report(name=name, from_h="Mail Delivery System <MAILER-DAEMON@mx.posthouse.example>", subject="Successful Mail Delivery Report",
                 text=f"This is the mail system at host mx.posthouse.example.\n\nYour message was successfully delivered to the destination(s)\nlisted below.\n\n"
                      f"<{rcpt}>: delivery via mx.example.org[203.0.113.25]:25: 250 2.0.0 Ok: queued as 4AbC1\n",
                 per_message="Reporting-MTA: dns; mx.posthouse.example",
                 per_rcpt=[f"Final-Recipient: rfc822; {rcpt}\nAction: relayed\nStatus: 2.0.0\nRemote-MTA: dns; mx.example.org\n"
                           "Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 4AbC1"], rcpt=rcpt, attach="headers")
    write("other", name, msg, {"original_message_id": mid(name)})
    # a read receipt (RFC 8098 MDN)
    b = "mdn-boundary-1"
    msg = (f"From: Jonas Weber <jonas.weber@example.org>\nTo: {SENDER_H}\nSubject: Read: Your application at Posthouse\nDate: {date(20)}\n"
           f"Message-ID: <mdn-1@example.org>\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"{b}\"\n\n"
           f"--{b}\nContent-Type: text/plain\n\nYour message was displayed on {date(4)}.\n\n--{b}\nContent-Type: message/disposition-notification\n\n"
           f"Reporting-UA: example.org; Thunderbird\nFinal-Recipient: rfc822;jonas.weber@example.org\nOriginal-Message-ID: <{mid('mdn')}>\n"
           f"Disposition: manual-action/MDN-sent-manually; displayed\n\n--{b}--\n")
    write("other", "read_receipt_mdn", msg, {"original_message_id": mid("mdn")})
    simple("other", "cold_email_no_reply_markers", from_h="Vendor Sales <sales@vendor.example>", subject="Partnership opportunity",
           in_reply_to=False, headers="List-Unsubscribe: <https://vendor.example/optout>\n",
           body="Hi Anna,\n\nwe help companies like yours grow. Do you have 15 minutes next week?\n\nBest,\nVendor Sales\n")



# ---------------------------------------------------------------- the held-out batch
# Written after the sorter was frozen and measured before any change to it: its
# first figures are the honest ones (see labels' "subset": "heldout").
HELDOUT = []


def heldout(fn):
    HELDOUT.append(fn)
    return fn


@heldout
def add_heldout_bounces():
    cases = [
        ("h_postfix_dovecot_lmtp_quota", [("lea@posthouse.example", "5.2.2",
          "host mail.posthouse.example[private/dovecot-lmtp] said: 552 5.2.2\n    <lea@posthouse.example> Quota exceeded (mailbox for user is full) (in\n    reply to end of DATA command)",
          "smtp; 552 5.2.2 <lea@posthouse.example> Quota exceeded (mailbox for user is\n    full)", "5.2.2", False, "mailboxfull")]),
        ("h_o365_dbeb_access_denied", [("nobody.here@northwind.example", "5.4.1",
          wrap_said("northwind-example.mail.protection.outlook.com", "550 5.4.1 Recipient address rejected: Access denied. For more information see https://aka.ms/EXOSmtpErrors [DB5PEPF00014B8F.eurprd02.prod.outlook.com 2026-11-03T10:22:31.123Z 08DCF7A1B2C3D4E5] (in reply to RCPT TO command)"),
          "smtp; 550 5.4.1 Recipient address rejected: Access denied. For more\n    information see https://aka.ms/EXOSmtpErrors", "5.4.1", True, "userunknown")]),
        ("h_o365_traffic_not_accepted", [("buyer@adatum.example", "5.7.708",
          wrap_said("adatum-example.mail.protection.outlook.com", "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 AS(7230) (in reply to MAIL FROM command)"),
          "smtp; 550 5.7.708 Service unavailable. Access denied, traffic not accepted\n    from this IP. AS(7230)", "5.7.708", False, "blocked")]),
        ("h_gmail_ip_reputation", [("candidate.2026@gmail.com", "5.7.1",
          wrap_said("gmail-smtp-in.l.google.com", "550-5.7.1 [192.0.2.10] Gmail has detected that this message is likely 550-5.7.1 suspicious due to the very low reputation of the sending IP address. 550-5.7.1 To best protect our users from spam, the message has been blocked. - gsmtp (in reply to end of DATA command)"),
          "smtp; 550-5.7.1 [192.0.2.10] Gmail has detected that this message is\n    likely 550-5.7.1 suspicious due to the very low reputation of the sending\n    IP address.", "5.7.1", False, "badreputation")]),
        ("h_yahoo_permanently_deferred", [("client@yahoo.com", "5.7.2",
          wrap_said("mta5.am0.yahoodns.net", "553 5.7.2 [TSS09] All messages from 192.0.2.10 will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)"),
          "smtp; 553 5.7.2 [TSS09] All messages from 192.0.2.10 will be permanently\n    deferred; Retrying will NOT succeed.", "5.7.2", False, "blocked")]),
        ("h_yahoo_policy", [("reader2@yahoo.com", "5.7.9",
          wrap_said("mta6.am0.yahoodns.net", "554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes (in reply to end of DATA command)"),
          "smtp; 554 5.7.9 Message not accepted for policy reasons.  See\n    https://postmaster.yahooinc.com/error-codes", "5.7.9", False, "policyviolation")]),
        ("h_icloud_no_user", [("someone.old@icloud.com", "5.1.1",
          wrap_said("mx01.mail.icloud.com", "550 5.1.1 <someone.old@icloud.com>: user does not exist (in reply to RCPT TO command)"),
          "smtp; 550 5.1.1 <someone.old@icloud.com>: user does not exist", "5.1.1", True, "userunknown")]),
        ("h_mailbox_inactive", [("archive@oldfirm.example", "5.2.1",
          wrap_said("mx.oldfirm.example", "550 5.2.1 <archive@oldfirm.example>: Recipient address rejected: this mailbox is inactive and has been disabled (in reply to RCPT TO command)"),
          "smtp; 550 5.2.1 <archive@oldfirm.example>: Recipient address rejected: this\n    mailbox is inactive and has been disabled", "5.2.1", False, "suspend")]),
        ("h_dmarc_policy_text", [("office@strict-dmarc.example", "5.7.1",
          wrap_said("mx.strict-dmarc.example", "550 5.7.1 Email rejected per DMARC policy for posthouse.example (in reply to end of DATA command)"),
          "smtp; 550 5.7.1 Email rejected per DMARC policy for posthouse.example", "5.7.1", False, "authfailure")]),
        ("h_barracuda_reputation", [("info@school2.example", "5.7.1",
          wrap_said("mx.school2.example", "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using Barracuda Reputation; http://www.barracudanetworks.com/reputation/?pr=1&ip=192.0.2.10 (in reply to RCPT TO command)"),
          "smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked\n    using Barracuda Reputation", "5.7.1", False, "blocked")]),
    ]
    for name, rcpts in cases:
        msg, label = postfix(name, rcpts)
        write("bounce", name, msg, label)
    msg, label = postfix("h_postfix_tls_required", [("secure@bank2.example", "4.7.4",
        "TLS is required, but was not offered by host\n    mx.bank2.example[203.0.113.80]",
        "X-Postfix; TLS is required, but was not offered by host\n    mx.bank2.example[203.0.113.80]", "4.7.4", False, "securityerror")], delayed=True)
    write("bounce", "h_postfix_tls_required", msg, label)
    msg, label = postfix("h_gmail_unusual_rate", [("many.people@gmail.com", "4.7.28",
        wrap_said("gmail-smtp-in.l.google.com", "421-4.7.28 [192.0.2.10 15] Our system has detected an unusual rate of 421-4.7.28 unsolicited mail originating from your IP address. To protect our 421-4.7.28 users from spam, mail sent from your IP address has been temporarily 421 4.7.28 rate limited. - gsmtp (in reply to end of DATA command)"),
        "smtp; 421-4.7.28 [192.0.2.10 15] Our system has detected an unusual rate of\n    421-4.7.28 unsolicited mail originating from your IP address.", "4.7.28", False, "ratelimited")], delayed=True)
    write("bounce", "h_gmail_unusual_rate", msg, label)

    msg, label = exim("h_exim_no_mx_hosts", [("sales@parked-domain.example", ["all relevant MX records point to non-existent hosts"], "5.1.2", True, "hostunknown")])
    write("bounce", "h_exim_no_mx_hosts", msg, label)
    msg, label = exim("h_exim_sender_verify", [("contact@verifier.example", ["host mx.verifier.example [203.0.113.70]",
        "SMTP error from remote mail server after RCPT TO:<contact@verifier.example>:", "550-Verification failed for <anna.schmidt@posthouse.example>",
        "550-Called:   192.0.2.10", "550-Sent:     RCPT TO:<anna.schmidt@posthouse.example>", "550-Response: 550 5.1.1 No such user",
        "550 Sender verify failed"], "5.1.8", False, "rejected")])
    write("bounce", "h_exim_sender_verify", msg, label)
    msg, label = qmail("h_qmail_sender_rejected", [("team@qmail-host.example", "Connected to 203.0.113.12 but sender was rejected.\nRemote host said: 553 sorry, your envelope sender domain must exist (#5.7.1)",
        "5.7.1", False, "rejected")])
    write("bounce", "h_qmail_sender_rejected", msg, label)

    name, rcpt = "h_sendmail_over_quota", "chef@restaurant.example"
    text = ("The original message was received at " + date(3) + "\nfrom mail.posthouse.example [192.0.2.10]\n\n"
            "   ----- The following addresses had permanent fatal errors -----\n<chef@restaurant.example>\n"
            "    (reason: 552 5.2.2 Over quota)\n\n   ----- Transcript of session follows -----\n... while talking to mx.restaurant.example.:\n"
            ">>> DATA\n<<< 552 5.2.2 Over quota\n554 5.0.0 Service unavailable\n")
    msg = report(name=name, from_h="Mail Delivery Subsystem <MAILER-DAEMON@relay.example>", subject="Returned mail: see transcript for details",
                 text=text, per_message="Reporting-MTA: dns; relay.example", per_rcpt=[
                     f"Final-Recipient: RFC822; {rcpt}\nAction: failed\nStatus: 5.2.2\nRemote-MTA: DNS; mx.restaurant.example\n"
                     "Diagnostic-Code: SMTP; 552 5.2.2 Over quota"], rcpt=rcpt)
    write("bounce", name, msg, bounce_label([(rcpt, "5.2.2", False, "mailboxfull")], name))

    name, rcpt = "h_courier_user_unknown", "ghost@courier-host.example"
    text = ("This is a delivery status notification from mail.courier-host.example,\nrunning the Courier mail server, version 1.1.8.\n\n"
            "The original message was received on " + date(3) + "\nfrom mail.posthouse.example [192.0.2.10]\n\n"
            "---------------------------------------------------------------------------\n\n"
            "                           UNDELIVERABLE MAIL\n\nYour message to the following recipients cannot be delivered:\n\n"
            f"<{rcpt}>:\n    mx.courier-host.example [203.0.113.33]:\n>>> RCPT TO:<{rcpt}>\n<<< 550 5.1.1 User unknown\n")
    msg = report(name=name, from_h="Courier mail server at mail.courier-host.example <@>", subject="NOTICE: mail delivery status.",
                 text=text, per_message="Reporting-MTA: dns; mail.courier-host.example", per_rcpt=[
                     f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: 5.0.0\nRemote-MTA: dns; mx.courier-host.example\n"
                     "Diagnostic-Code: smtp; 550 5.1.1 User unknown"], rcpt=rcpt)
    write("bounce", name, msg, bounce_label([(rcpt, "5.1.1", True, "userunknown")], name))

    name, rcpt = "h_german_text_bounce", "k.lehmann@stadtwerke.example"
    body = (f"Ihre Nachricht konnte nicht an alle Empfänger zugestellt werden.\n\nEmpfänger: {rcpt}\nGrund: 550 5.1.1 Benutzer unbekannt\n\n"
            "--- Originalnachricht ---\n" + original(name, rcpt))
    msg = (f"Return-Path: <>\nFrom: Mailserver <MAILER-DAEMON@stadtwerke.example>\nTo: {SENDER}\nSubject: Unzustellbar: Your application at Posthouse\n"
           f"Date: {date(13)}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n{body}")
    write("bounce", name, msg, bounce_label([(rcpt, "5.1.1", True, "userunknown")], name))

    name, rcpt = "h_ses_dsn_expired", "ops@unreachable.example"
    msg = report(name=name, from_h="MAILER-DAEMON@amazonses.com", subject="Delivery Status Notification (Failure)",
                 text="An error occurred while trying to deliver the mail to the following recipients:\n" + rcpt,
                 per_message="Reporting-MTA: dns; a27-34.smtp-out.eu-west-1.amazonses.com", per_rcpt=[
                     f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: 4.4.7\n"
                     "Diagnostic-Code: smtp; 554 4.4.7 Message expired: unable to deliver in 840 minutes.<421 4.4.0 Unable to lookup DNS for unreachable.example>"],
                 rcpt=rcpt)
    write("bounce", name, msg, bounce_label([(rcpt, "4.4.7", False, "expired")], name))


@heldout
def add_heldout_others():
    simple("reply", "h_thunderbird_german", from_h="Uwe Krause <uwe.krause@posteo.example>", subject="Re: Termin am Montag",
           body="Hallo Anna,\n\npasst mir gut, bis Montag.\n\nUwe\n\nAm 03.11.26 um 09:12 schrieb Anna Schmidt:\n> Hallo Uwe,\n> passt dir Montag?\n")
    simple("reply", "h_apple_mail", from_h="Mia Wong <mia.wong@me.example>", subject="Re: Your application at Posthouse",
           body="Sounds great, see you then!\n\nMia\n\n> On 3 Nov 2026, at 09:12, Anna Schmidt <anna.schmidt@posthouse.example> wrote:\n>\n> Could we talk on Monday?\n")
    simple("reply", "h_auto_submitted_no", from_h="Paul Novak <paul@novak.example>", subject="Re: Offer", headers="Auto-Submitted: no\n",
           body="Yes, please send the contract.\n\nPaul\n")
    simple("reply", "h_dont_unsubscribe_me", from_h="Fiona Kelly <fiona@kelly.example>", subject="Re: November newsletter",
           body="Hi, I changed jobs - please send the newsletter to fiona@newjob.example from now on. I love it!\n\nFiona\n\n"
                "On Mon, Nov 3, 2026 at 10:20 AM Anna Schmidt wrote:\n> ...\n> Unsubscribe: https://posthouse.example/u/xyz\n")
    simple("auto-reply", "h_freshdesk_ticket_ack", from_h="Acme Support <support@acme-help.example>", subject="Ticket Received - Your application at Posthouse",
           headers="Auto-Submitted: auto-generated\nX-Auto-Response-Suppress: All\n",
           body="Dear Anna,\n\nWe would like to acknowledge that we have received your request and a ticket has been created (#1234).\n")
    simple("auto-reply", "h_risposta_automatica", from_h="Marco Rossi <marco.rossi@azienda.example>", subject="Risposta automatica: Your application at Posthouse",
           body="Sono fuori ufficio fino al 10 novembre.\n")
    simple("auto-reply", "h_automatisch_antwoord", from_h="Sanne de Vries <sanne@bedrijf.example>", subject="Automatisch antwoord: Your application at Posthouse",
           headers="X-Auto-Response-Suppress: All\n", body="Ik ben afwezig tot en met vrijdag.\n")
    simple("auto-reply", "h_gmail_custom_vacation_subject", from_h="Ben Carter <ben.carter@gmail.com>", subject="Away until Monday",
           headers="Auto-Submitted: auto-replied\n", body="I'm away until Monday with no access to email.\n")
    simple("unsubscribe", "h_spanish_baja", from_h="Carmen Ruiz <carmen@ruiz.example>", subject="RE: Novedades de noviembre",
           body="Por favor, darme de baja de su lista.\n\nSaludos,\nCarmen\n\nEl lun, 3 nov 2026 a las 10:20, Anna Schmidt escribió:\n> Hola ...\n")
    simple("unsubscribe", "h_outlook_mailto_unsubscribe", from_h="Ray Hill <ray.hill@outlook.example>", to="list-unsubscribe@lists.posthouse.example",
           subject="unsubscribe", in_reply_to=False, headers="X-Mailer: Microsoft Outlook 16.0\n", body="unsubscribe\n")
    simple("other", "h_substack_newsletter", from_h="The Weekly Thing <theweekly@substack.example>", subject="Issue #214: the long read",
           in_reply_to=False, headers="List-Unsubscribe: <https://theweekly.substack.example/action/disable_email?token=abc>\nList-Id: <theweekly.substack.example>\n"
                                      "List-Unsubscribe-Post: List-Unsubscribe=One-Click\n", body="This week: a long read about mail servers.\n")
    simple("other", "h_calendar_invite", from_h="Greta Lind <greta.lind@partner.example>", subject="Project kickoff", in_reply_to=False,
           ctype="text/calendar; charset=UTF-8; method=REQUEST", cte="7bit",
           body="BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nSUMMARY:Project kickoff\nDTSTART:20261110T090000Z\nEND:VEVENT\nEND:VCALENDAR\n")
    arf("h_comcast_arf", from_h="feedback@comcast.example", subject="Comcast FBL report", rcpt="subscriber@comcast.example",
        feedback=f"Feedback-Type: abuse\nUser-Agent: Comcast FBL\nVersion: 1\nOriginal-Mail-From: <bounces@posthouse.example>\n"
                 f"Arrival-Date: {date(3)}\nSource-IP: 192.0.2.10\n")



# ---------------------------------------------------------------- the second held-out batch: other MTAs' texts
def plain_bounce(name, rcpt, *, from_h, subject, body, label, ctype="text/plain; charset=us-ascii", extra=""):
    msg = (f"Return-Path: <>\nFrom: {from_h}\nTo: {SENDER}\nSubject: {subject}\nDate: {date(len(name))}\n"
           f"Message-ID: <{hashlib.md5(name.encode()).hexdigest()[:16]}@{from_h.split('@')[-1].rstrip('>')}>\n{extra}"
           f"MIME-Version: 1.0\nContent-Type: {ctype}\n\n{body}")
    write("bounce", name, msg, bounce_label([(rcpt, *label)], name if mid(name) in body else None))


@heldout
def add_heldout2():
    r = "lena@oldmail.example"
    plain_bounce("h2_opensmtpd", r, from_h="MAILER-DAEMON@relay.smtpd.example", subject="Delivery status notification: error",
                 body=("Hi!\n\nThis is the MAILER-DAEMON, please DO NOT REPLY to this email.\n\n"
                       "An error has occurred while attempting to deliver a message for\nthe following list of recipients:\n\n"
                       f"{r}: 550 5.1.1 <{r}>: Recipient address rejected: User unknown in virtual mailbox table\n\n"
                       "Below is a copy of the original message:\n\n" + original("h2_opensmtpd", r)),
                 label=("5.1.1", True, "userunknown"))
    r = "max.power@web-mail.example"
    plain_bounce("h2_gmx_style", r, from_h="\"Mail Delivery System\" <mailer-daemon@gmx.example>", subject="Mail delivery failed: returning message to sender",
                 body=("This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of\n"
                       "its recipients. This is a permanent error. The following address\nfailed:\n\n"
                       f"\"{r}\":\n\nSMTP error from remote server for RCPT TO command, host: mx00.web-mail.example (203.0.113.50)\n"
                       f"reason: 550 5.1.1 <{r}>: Recipient address rejected: User unknown\n\n"
                       "--- The header of the original message is following. ---\n\n" + original("h2_gmx_style", r, headers_only=True)),
                 label=("5.1.1", True, "userunknown"))
    r = "someone@zoho-dest.example"
    plain_bounce("h2_zoho_style", r, from_h="mailer-daemon@mail.zoho.example", subject="Undelivered Mail Returned to Sender",
                 body=("This message was created automatically by mail delivery software.\nA message that you sent could not be delivered to one or more of its recipients. "
                       "This is a permanent error.\n\n"
                       f"{r} Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 <{r}>: Recipient address rejected: User unknown in relay recipient table\n\n"
                       "Received: from mail.posthouse.example by mx.zohomail.example\n" + original("h2_zoho_style", r)),
                 label=("5.1.1", True, "userunknown"))
    r = "nobody@james.example"
    plain_bounce("h2_apache_james", r, from_h="postmaster@james.example", subject="[BOUNCE]",
                 body=("Hi. This is the James mail server at james.example.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n"
                       "This is a permanent error; I've given up. Sorry it didn't work out.  Below\nI include the list of recipients and the reason why I was unable to deliver\n"
                       f"your message.\n\nFailed recipient(s):\n{r}\n\nError message:\n550 - Requested action not taken: no such user here\n\n"),
                 label=("5.1.1", True, "userunknown"))
    r = "user@filtered.example"
    plain_bounce("h2_mcafee_style", r, from_h="Postmaster <postmaster@filtered.example>", subject="Delivery Status Notification (Failure)",
                 body=("--- The following addresses had delivery problems ---\n\n"
                       f"<{r}>   (User unknown {r})\n\n--- Transcript of session follows ---\n550 5.1.1 <{r}>... User unknown\n"),
                 label=("5.1.1", True, "userunknown"))
    r = "ivan.petrov@yandex.example"
    plain_bounce("h2_mailru_exim", r, from_h="Mail Delivery System <mailer-daemon@corp.mail.example>", subject="Mail delivery failed: returning message to sender",
                 ctype="text/plain; charset=utf-8", extra="X-Failed-Recipients: " + r + "\nContent-Transfer-Encoding: 8bit\n",
                 body=("Сообщение не было доставлено.\n\nThis message was created automatically by mail delivery software.\n\n"
                       "A message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n"
                       f"  {r}\n    SMTP error from remote mail server after RCPT TO:<{r}>:\n"
                       f"    host mx.yandex.example [203.0.113.77]: 550 Message was not accepted -- invalid mailbox.  Local mailbox {r} is unavailable: user not found\n"),
                 label=("5.1.1", True, "userunknown"))
    r = "sam.jones@hotmail.example"
    name = "h2_outlookcom_mailbox_unavailable"
    msg = report(name=name, from_h="postmaster@outlook.example", subject="Undeliverable: Your application at Posthouse",
                 text=f"Delivery has failed to these recipients or groups:\n\n{r}\nThe recipient's mailbox is unavailable.\n\n"
                      "Diagnostic information for administrators:\n\nGenerating server: DM6NAM12HT123.mail.protection.outlook.example\n\n"
                      f"{r}\nRemote Server returned '550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302)'\n",
                 per_message="Reporting-MTA: dns;DM6NAM12HT123.mail.protection.outlook.example",
                 per_rcpt=[f"Final-Recipient: rfc822;{r}\nAction: failed\nStatus: 5.5.0\n"
                           "Diagnostic-Code: smtp;550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302)"], rcpt=r, attach="headers")
    write("bounce", name, msg, bounce_label([(r, "5.5.0", True, "userunknown")], name))
    name = "h2_postfix_alias_two"
    msg, label = postfix(name, [
        ("a.one@club.example", "5.1.1", "host mx.club.example[203.0.113.8] said: 550 5.1.1 <a.one@club.example>: No such\n    user (in reply to RCPT TO command)",
         "smtp; 550 5.1.1 <a.one@club.example>: No such user", "5.1.1", True, "userunknown"),
        ("b.two@club.example", "4.2.2", "host mx.club.example[203.0.113.8] said: 452 4.2.2 Mailbox over quota (in\n    reply to RCPT TO command)",
         "smtp; 452 4.2.2 Mailbox over quota", "4.2.2", False, "mailboxfull")])
    msg = msg.replace("<b.two@club.example>: host", "<b.two@club.example> (expanded from <board@posthouse.example>): host")
    label["recipients"][1]["status"] = "4.2.2"
    write("bounce", name, msg, label)
    r = "dept@plesk-host.example"
    plain_bounce("h2_qmail_plesk", r, from_h="MAILER-DAEMON@plesk-host.example", subject="failure notice",
                 body=("Hi. This is the qmail-send program at plesk-host.example.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n"
                       "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
                       f"<{r}>:\n203.0.113.99 does not like recipient.\nRemote host said: 550 5.7.1 <{r}>: Recipient address rejected: Access denied\n"
                       "Giving up on 203.0.113.99.\n\n--- Below this line is a copy of the message.\n\n" + original("h2_qmail_plesk", r)),
                 label=("5.7.1", False, "securityerror"))
    simple("reply", "h2_japanese_reply", from_h="Yuki Tanaka <yuki.tanaka@kaisha.example>", subject="Re: Your application at Posthouse",
           ctype="text/plain; charset=UTF-8", body="アンナ様\n\n月曜日で大丈夫です。よろしくお願いします。\n\n田中\n")
    arf("h2_arf_without_report_type", from_h="fbl@mailbox-provider.example", subject="Spam report", rcpt="victim2@mailbox-provider.example",
        feedback=f"Feedback-Type: abuse\nUser-Agent: ProviderFBL/2.1\nVersion: 1\nOriginal-Rcpt-To: victim2@mailbox-provider.example\nArrival-Date: {date(3)}\n")
    p = os.path.join(HERE, "complaint", "h2_arf_without_report_type.eml")
    with open(p, encoding="utf-8") as f:
        text = f.read().replace("multipart/report; report-type=feedback-report;", "multipart/report;")
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
    simple("auto-reply", "h2_abwesend_subject", from_h="Klaus Meyer <k.meyer@firma2.example>", subject="Abwesend: Your application at Posthouse",
           headers="X-Auto-Response-Suppress: All\n", body="Ich bin bis 14.11. abwesend.\n")
    simple("auto-reply", "h2_zimbra_autoreply", from_h="Office <office@zimbra-firm.example>", subject="Re: Your application at Posthouse",
           headers="Auto-Submitted: auto-replied (zimbra; vacation)\nPrecedence: bulk\n", body="We are closed until January 2nd.\n")
    simple("other", "h2_shipping_notification", from_h="Parcel Service <noreply@parcel.example>", subject="Your parcel is on its way",
           in_reply_to=False, headers="X-Mailer: parcel-notify 2.0\n", body="Your parcel 1Z999 will arrive tomorrow.\n")



@heldout
def add_heldout3():
    cases = [
        ("h3_postfix_local_unknown_user", [("bob.old@posthouse.example", "5.1.1", "unknown user: \"bob.old\"",
          "X-Postfix; unknown user: \"bob.old\"", "5.1.1", True, "userunknown")]),
        ("h3_gmail_no_ptr", [("reader.3@gmail.com", "5.7.25",
          wrap_said("gmail-smtp-in.l.google.com", "550-5.7.25 [192.0.2.10] The IP address sending this message does not have a 550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not 550-5.7.25 point to the sending IP. - gsmtp (in reply to end of DATA command)"),
          "smtp; 550-5.7.25 [192.0.2.10] The IP address sending this message does not\n    have a 550-5.7.25 PTR record setup", "5.7.25", False, "requireptr")]),
        ("h3_comcast_dnsbl", [("family@comcast.example", "5.0.0",
          wrap_said("mx1.comcast.example", "554 resimta-ch2-18v.sys.comcast.example resimta-ch2-18v.sys.comcast.example 192.0.2.10 found on one or more DNSBLs, see http://postmaster.comcast.example/smtp-error-codes.php#BL000001 (in reply to MAIL FROM command)"),
          "smtp; 554 resimta-ch2-18v.sys.comcast.example 192.0.2.10 found on one or more\n    DNSBLs, see http://postmaster.comcast.example/smtp-error-codes.php#BL000001", "5.7.1", False, "blocked")]),
        ("h3_outlook_s3150", [("someone@live.example", "5.7.1",
          wrap_said("eur.olc.protection.outlook.example", "550 5.7.1 Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. (in reply to MAIL FROM command)"),
          "smtp; 550 5.7.1 Unfortunately, messages from [192.0.2.10] weren't sent.\n    Please contact your Internet service provider since part of their network\n    is on our block list (S3150).", "5.7.1", False, "blocked")]),
        ("h3_yahoo_552_not_found", [("gone.user@yahoo.example", "5.0.0",
          wrap_said("mta7.am0.yahoodns.example", "552 1 Requested mail action aborted, mailbox not found (in reply to end of DATA command)"),
          "smtp; 552 1 Requested mail action aborted, mailbox not found", "5.1.1", True, "userunknown")]),
    ]
    for name, rcpts in cases:
        msg, label = postfix(name, rcpts)
        write("bounce", name, msg, label)
    msg, label = exim("h3_exim_long_failure", [("team@down-for-weeks.example", ["retry time not reached for any host after a long failure period"],
                                                "5.4.7", False, "expired")])
    write("bounce", "h3_exim_long_failure", msg, label)
    simple("auto-reply", "h3_exchange2003_oof", from_h="Bill Turner <bill.turner@legacy.example>", subject="Out of Office AutoReply: Your application at Posthouse",
           headers="X-MimeOLE: Produced By Microsoft Exchange V6.5\nThread-Topic: Your application at Posthouse\n",
           body="I am out of the office until 11/10 with no access to email.\n")
    simple("auto-reply", "h3_rfc3834_junk_re", from_h="Alex Kim <alex.kim@uni2.example>", subject="Re: Your application at Posthouse",
           headers="Auto-Submitted: auto-replied\nPrecedence: junk\n", return_path="",
           body="This is an automatic reply: I am attending a conference until Friday.\n")
    simple("reply", "h3_groupwise_antw_references_only", from_h="Gerda Wolf <gerda.wolf@amt.example>", subject="Antw: Ihr Angebot",
           body="Sehr geehrte Frau Schmidt,\nwir nehmen das Angebot an.\nMfG G. Wolf\n\n>>> Anna Schmidt <anna.schmidt@posthouse.example> 03.11.2026 09:12 >>>\nSehr geehrte Frau Wolf, ...\n")
    p = os.path.join(HERE, "reply", "h3_groupwise_antw_references_only.eml")
    with open(p, encoding="utf-8") as f:
        text = f.read()
    text = "".join(line for line in text.splitlines(True) if not line.startswith("In-Reply-To:"))
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
    simple("reply", "h3_role_address_reply", from_h="Info Team <info@smallshop.example>", subject="Re: Wholesale prices",
           body="Hello Anna,\nthanks, the prices are fine for us. We'll order next week.\nKind regards, Maria (Small Shop)\n")
    simple("unsubscribe", "h3_german_melden_ab", from_h="Ute Lang <ute.lang@beispiel2.example>", subject="AW: Newsletter November",
           body="Bitte melden Sie mich vom Newsletter ab.\n\nUte Lang\n\n-----Ursprüngliche Nachricht-----\nVon: Anna Schmidt\n...\n")
    name, rcpt = "h3_exchange_delivered_receipt", "partner2@example.org"
    msg = report(name=name, from_h="Microsoft Outlook <postmaster@posthouse-exchange.example>", subject="Delivered: Your application at Posthouse",
                 text=f"Your message has been delivered to the following recipients:\n\n{rcpt}\n\nSubject: Your application at Posthouse\n",
                 per_message="Reporting-MTA: dns;EXCH02.posthouse.local", per_rcpt=[
                     f"Final-Recipient: rfc822;{rcpt}\nAction: delivered\nStatus: 2.0.0"], rcpt=rcpt, attach="headers")
    write("other", name, msg, {"original_message_id": mid(name)})
    name = "h3_arf_to_from_attached"
    arf(name, from_h="fbl-reports@mailbox.example", subject="Abuse report", rcpt="complainer@mailbox.example",
        feedback=f"Feedback-Type: abuse\nUser-Agent: MailboxFBL/1.0\nVersion: 1\nArrival-Date: {date(3)}\nSource-IP: 192.0.2.10\n")


if __name__ == "__main__":
    import shutil
    for kind in ("bounce", "complaint", "auto-reply", "unsubscribe", "reply", "other"):
        shutil.rmtree(os.path.join(HERE, kind), ignore_errors=True)
    for add in (add_postfix, add_exim, add_sendmail, add_qmail, add_exchange, add_gmail, add_ses, add_domino,
                add_arf, add_autoreplies, add_unsubscribe, add_replies, add_other):
        add()
    before = set(LABELS)
    for add in HELDOUT:
        add()
    for path in set(LABELS) - before:
        LABELS[path]["subset"] = "heldout3" if "/h3_" in path else "heldout2" if "/h2_" in path else "heldout"
    with open(os.path.join(HERE, "labels.json"), "w", encoding="utf-8") as f:
        json.dump(dict(sorted(LABELS.items())), f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(len(LABELS), "messages")
