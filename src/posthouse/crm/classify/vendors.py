"""Bounces that aren't RFC 3464 reports, or whose report says too little: the
plain-text formats of qmail (and Yahoo's qmail-born one), Exim, Sendmail,
Postfix, Gmail, Exchange/Office 365, Lotus Domino, and Amazon SES's
notifications. Each parser gets the bounce's own text and returns the failed
recipients it finds, or None when the text isn't its format."""
from __future__ import annotations

import json
import re

from .dsn import Failed
from .parse import Mail
from .reasons import find_status

_ADDR = r"[\w.!#$%&'*+/=?^`{|}~\-]+@[\w\-]+(?:\.[\w\-]+)+"
_ADDR_RE = re.compile(_ADDR)

MAILER_LOCALS = {"mailer-daemon", "mailer_daemon", "mailerdaemon", "postmaster", "mail-daemon", "maildaemon",
                 "mdaemon", "mail.daemon", "mailadmin", "mail-delivery", "bounce", "bounces", "nobody",
                 "root", "mmdf", "smtp", "msexchange", "exchange"}
_MAILER_NAMES = re.compile(r"mail delivery (system|subsystem|service)|mailer.?daemon|postmaster|mail administrator"
                           r"|microsoft outlook|mail delivery|delivery status|system administrator|internet mail delivery", re.I)

BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|returned mail|return(ed)? to sender|delivery status notification|delivery (status )?failure"
    r"|delivery (has )?failed|mail delivery failed|failure notice|failed delivery|delivery notification|non.?deliver"
    r"|could not (be )?deliver|couldn't be delivered|delayed mail|delivery delayed|warning: could not send|mail system error"
    r"|message not delivered|not delivered|unzustellbar|nicht zustellbar|non remis|onbestelbaar|non recapitabile|no entregado"
    r"|returned to sender|delivery problem|problem delivering|rejected:|bounce|mail delivery|undeliverable", re.I)

_END = re.compile(r"^[ \t]*(-{2,}.*(below this line|copy of the message|original message|unsent message|returned message|message follows|message headers follow|headers of the original)"
                  r"|.*original message follows|-+ ?original message ?-+|[ \t]*-+ ?message headers? ?-+|return-path:|received: from)", re.I | re.M)


def is_mailer(mail: Mail) -> bool:
    """The message comes from mail software, not a person: the null sender,
    a mailer-daemon/postmaster address or name, X-Failed-Recipients."""
    if "mailer" not in mail._cache:
        mail._cache["mailer"] = _is_mailer(mail)
    return mail._cache["mailer"]


def _is_mailer(mail: Mail) -> bool:
    sender = mail.address("From")
    local = sender.split("@")[0]
    if local in MAILER_LOCALS or local.startswith(("mailer-daemon", "postmaster", "mail-daemon")):
        return True
    if _MAILER_NAMES.search(mail.display_name("From") or ""):
        return True
    if mail.has("X-Failed-Recipients"):
        return True
    rp = mail.header("Return-Path")
    return rp.replace(" ", "") == "<>" or rp.lower().startswith(("<mailer-daemon", "mailer-daemon"))


def head_of(text: str) -> str:
    """The bounce's own words: the text before the returned message begins."""
    m = _END.search(text)
    return text[: m.start()] if m else text


def _status_in(text: str) -> str | None:
    return find_status(text)


def qmail(text: str) -> list[Failed] | None:
    """qmail-send, and Yahoo's and others' qmail-born texts:
    '<user@host>:' then the reason, one recipient per paragraph."""
    if not re.search(r"qmail-send program|i'm afraid i wasn't able to deliver|unable to deliver your message to the following"
                     r"|wasn't able to deliver your message|this is a permanent error; i've given up", text, re.I):
        return None
    head = head_of(text)
    temporary = bool(re.search(r"temporary error|will (keep|continue) trying", head, re.I)) and \
        not re.search(r"permanent error|given up|not going to try again", head, re.I)
    out = []
    for m in re.finditer(rf"^<({_ADDR})>:?[ \t]*\n?(.*?)(?=\n[ \t]*\n|\n<{_ADDR}>|\Z)", head, re.M | re.S):
        diag = " ".join(m.group(2).split())
        out.append(Failed(m.group(1).lower(), _status_in(diag), "delayed" if temporary else "failed", diag, not temporary))
    return out


def exim(text: str) -> list[Failed] | None:
    """Exim's 'This message was created automatically by mail delivery software.'
    Failures: 'The following address(es) failed:' then two-space-indented
    addresses each followed by deeper-indented detail. Delays: 'has not yet been
    delivered ... The address(es) to which ...' with 'Delay reason:'."""
    if not re.search(r"created automatically by mail delivery software|following address\(es\) failed"
                     r"|could not be delivered to one or more of its\s+recipients|has not yet been delivered to one or more",
                     text, re.I):
        return None
    head = head_of(text)
    delayed = bool(re.search(r"has not yet been delivered|delivery attempts will continue|no action is required", head, re.I))
    m = re.search(r"(address\(es\) failed:|addresses failed:|address failed:|has not yet been delivered is:"
                  r"|have not yet been delivered are:|not yet been delivered.*?:)\s*\n", head, re.I | re.S)
    body = head[m.end():] if m else head
    out: list[Failed] = []
    current = None
    for line in body.splitlines():
        am = re.match(rf"^\s{{1,4}}(?:<?({_ADDR})>?)(?:\s+<[^>]*>)?\s*(?:\(.*\))?$", line)
        if am and len(line) - len(line.lstrip()) <= 4:
            current = Failed(am.group(1).lower(), None, "delayed" if delayed else "failed", "", not delayed)
            out.append(current)
        elif current is not None and line.strip():
            if len(line) - len(line.lstrip()) < 2 and not line.lstrip().lower().startswith(("delay reason", "smtp error", "host ")):
                if out and re.match(r"^(the |this |no action|if |------)", line.strip(), re.I):
                    current = None
                    continue
            current.diagnostic = (current.diagnostic + " " + line.strip()).strip()
    for f in out:
        f.status = _status_in(f.diagnostic)
    return out


def sendmail(text: str) -> list[Failed] | None:
    """Sendmail's '----- The following addresses had permanent fatal errors -----'
    (or 'transient non-fatal errors'), then '<addr>' lines with '(reason: ...)',
    and the transcript whose '<<< 550 ...' lines say more."""
    m = re.search(r"-+\s*the following address(?:es)? ha(?:d|ve|s) (permanent fatal errors|transient non-fatal errors|delivery notifications)\s*-+",
                  text, re.I)
    if not m:
        return None
    temporary = m.group(1).lower().startswith("transient")
    rest = text[m.end():]
    end = re.search(r"^[ \t]*-+[ \t]*(transcript of session|original message|message header|unsent message)", rest, re.I | re.M)
    block = rest[: end.start()] if end else rest[:2000]
    transcript = rest[end.start():] if end else ""
    tend = _END.search(transcript[10:])
    transcript = transcript[: tend.start() + 10] if tend else transcript[:4000]
    out = []
    for am in re.finditer(rf"^[ \t]*<?({_ADDR})>?[ \t]*(?:\n[ \t]+\(reason:\s*(.*?)\))?", block, re.M | re.S):
        addr = am.group(1).lower()
        diag = " ".join((am.group(2) or "").split())
        lines = [ln.strip() for ln in transcript.splitlines()
                 if addr.split("@")[0] in ln.lower() and re.match(r"\s*(<<<\s*)?[245]\d\d", ln)]
        lines += [ln.strip() for ln in transcript.splitlines() if re.match(r"\s*<<<\s*[45]\d\d", ln)]
        if lines and not diag:
            diag = lines[0].lstrip("<").strip()
        elif lines:
            diag = diag + " " + lines[0].lstrip("<").strip()
        out.append(Failed(addr, _status_in(diag), "delayed" if temporary else "failed", diag, not temporary))
    return out


def postfix(text: str) -> list[Failed] | None:
    """Postfix's report text: '<addr>: host X said: 550 ...' or '<addr>: reason'
    per paragraph, after 'This is the mail system at host ...'."""
    if not re.search(r"this is the (mail system|postfix program) at host|could not be delivered to one or more recipients"
                     r"|message could not be\s+delivered to one or more recipients|the mail system", text, re.I):
        return None
    head = head_of(text)
    delayed = bool(re.search(r"delayed mail|still being retried|delivery will be attempted|will be retried|not yet been delivered", head, re.I))
    out = []
    for m in re.finditer(rf"^<({_ADDR})>(?:\s*\(expanded from <[^>]*>\))?:\s*(.*?)(?=\n[ \t]*\n|\n<{_ADDR}>|\Z)", head, re.M | re.S):
        diag = " ".join(m.group(2).split())
        out.append(Failed(m.group(1).lower(), _status_in(diag), "delayed" if delayed else "failed", diag, not delayed))
    return out or None


def gmail(text: str) -> list[Failed] | None:
    """Gmail's texts: the old 'Delivery to the following recipient failed
    permanently:' / 'has been delayed:' and the new '** Address not found **'
    ('Your message wasn't delivered to X because ...' ... 'The response from
    the remote server was: 550 ...')."""
    old = re.search(r"delivery to the following recipients? (failed permanently|has been delayed|failed)\s*:?\s*\n", text, re.I)
    new = re.search(r"\*\*\s*(address not found|message not delivered|delivery incomplete|message blocked|"
                    r"message rejected|domain not found|mailbox full|message delayed)[^*]*\*\*", text, re.I)
    if not (old or new):
        return None
    head = head_of(text)
    delayed = bool(re.search(r"has been delayed|delivery incomplete|will retry|there was a temporary problem|message delayed", head, re.I))
    diag = ""
    for lead in (r"the error that the other server returned was", r"the response (from the remote server )?was",
                 r"technical details of (permanent|temporary) failure"):
        dm = re.search(lead + r"\s*:\s*(.*?)(?=\n[ \t]*\n\S|\n-{3,}|\Z)", head, re.I | re.S)
        if dm:
            diag = " ".join(dm.group(dm.lastindex).split())
            break
    if not diag and new:
        diag = " ".join(new.group(0).strip("* ").split()) + " " + " ".join(head[new.end(): new.end() + 400].split())
    addrs: list[str] = []
    if old:
        for line in head[old.end():].splitlines():
            if not line.strip():
                if addrs:
                    break
                continue
            am = re.fullmatch(rf"\s*<?({_ADDR})>?\s*", line)
            if not am:
                break
            addrs.append(am.group(1).lower())
    for am in re.finditer(rf"(?:wasn't|was not|hasn't been|has not been) delivered to\s+<?({_ADDR})>?", head, re.I):
        if am.group(1).lower() not in addrs:
            addrs.append(am.group(1).lower())
    return [Failed(a, _status_in(diag), "delayed" if delayed else "failed", diag, not delayed) for a in addrs]


def exchange(text: str) -> list[Failed] | None:
    """Exchange/Office 365 NDR texts: 'Delivery has failed to these recipients
    or groups:' (2007+), 'The following recipient(s) cannot be reached:' (2003,
    with '<host #5.1.1>'), 'Your message to X couldn't be delivered.' (365),
    and 'Remote Server returned '550 ...'' / '#550 5.1.1 RESOLVER... ##' details."""
    if not re.search(r"delivery has failed to these recipients|following recipient\(s\) (cannot|could not) be reached"
                     r"|your message (to .{1,200}? )?couldn't be delivered|your message did not reach some or all|"
                     r"delivery is delayed to these recipients|remote server returned|diagnostic information for administrators"
                     r"|delivery to these recipients or groups (is complete|failed)|message wasn't delivered", text, re.I):
        return None
    delayed = bool(re.search(r"delivery is delayed|will (continue to )?retry|hasn't been delivered yet|delivery.*delayed", text, re.I))
    out: dict[str, Failed] = {}
    for m in re.finditer(rf"^[ \t]*<?({_ADDR})>?(?:[ \t]+on[ \t]+[^\n]*)?[ \t]*\n(.*?)(?=\n[ \t]*\n|\Z)", text, re.M | re.S):
        addr = m.group(1).lower()
        diag = " ".join(m.group(2).split())
        if addr in out:
            out[addr].diagnostic += " " + diag
        else:
            out[addr] = Failed(addr, None, "delayed" if delayed else "failed", diag, not delayed)
    for m in re.finditer(rf"your message to\s+<?({_ADDR})>? couldn't be delivered", text, re.I):
        out.setdefault(m.group(1).lower(), Failed(m.group(1).lower(), None, "failed", "", True))
    remote = re.findall(r"remote server returned '([^']*)'|#(\d{3} [^#]{3,400}?)\s*##|<[^<>#\s]+ #([245]\.\d+\.\d+(?:[^>]*))>", text, re.I)
    extra = " ".join(" ".join(g for g in grp if g) for grp in remote)
    for f in out.values():
        if extra:
            f.diagnostic = (f.diagnostic + " " + extra).strip()
        f.status = _status_in(f.diagnostic)
    return list(out.values())


def james(text: str) -> list[Failed] | None:
    """Apache James: 'Failed recipient(s):' then addresses, 'Error message:' then the reason."""
    m = re.search(r"failed recipient\(s\):[ \t]*\n(.*?)(?:\n[ \t]*\n|\Z)", text, re.I | re.S)
    if not m:
        return None
    em = re.search(r"error message:[ \t]*\n(.*?)(?:\n[ \t]*\n|\Z)", text, re.I | re.S)
    diag = " ".join(em.group(1).split()) if em else ""
    return [Failed(a.lower(), _status_in(diag), "failed", diag, True) for a in _ADDR_RE.findall(m.group(1))]


def domino(text: str) -> list[Failed] | None:
    if not re.search(r"was not delivered to:", text, re.I):
        return None
    out = []
    for m in re.finditer(rf"was not delivered to:\s*\n?\s*<?({_ADDR})>?\s*\n?\s*because:\s*(.*?)(?=\n[ \t]*\n|\Z)", text, re.I | re.S):
        diag = " ".join(m.group(2).split())
        out.append(Failed(m.group(1).lower(), _status_in(diag), "failed", diag, True))
    return out


def ses_notification(text: str) -> tuple[str, list[Failed], str | None, str | None] | None:
    """An Amazon SES notification (SNS email/JSON): ('bounce' | 'complaint',
    recipients, the original Message-ID, the bounce type)."""
    start = text.find("{")
    if start < 0 or "notificationType" not in text and "eventType" not in text:
        return None
    try:
        doc = json.JSONDecoder().raw_decode(text[start:])[0]
        if isinstance(doc.get("Message"), str):       # the raw SNS envelope
            doc = json.loads(doc["Message"])
    except (ValueError, AttributeError):
        return None
    if not isinstance(doc, dict):
        return None
    kind = str(doc.get("notificationType") or doc.get("eventType") or "").lower()
    mail = doc.get("mail") if isinstance(doc.get("mail"), dict) else {}
    mid = None
    common = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    if isinstance(common.get("messageId"), str):
        mid = common["messageId"]
    for h in mail.get("headers") or []:
        if isinstance(h, dict) and str(h.get("name", "")).lower() == "message-id":
            mid = h.get("value")
    if kind == "bounce":
        b = doc.get("bounce") if isinstance(doc.get("bounce"), dict) else {}
        permanent = str(b.get("bounceType", "")).lower() != "transient"
        out = []
        for r in b.get("bouncedRecipients") or []:
            if not isinstance(r, dict) or "@" not in str(r.get("emailAddress", "")):
                continue
            diag = str(r.get("diagnosticCode") or "") or str(b.get("bounceSubType") or "")
            status = r.get("status") if isinstance(r.get("status"), str) else _status_in(diag)
            out.append(Failed(_ADDR_RE.search(r["emailAddress"]).group(0).lower() if _ADDR_RE.search(r["emailAddress"]) else r["emailAddress"],
                              status, str(r.get("action") or ("failed" if permanent else "delayed")).lower(),
                              diag + " " + str(b.get("bounceSubType") or ""), permanent))
        return "bounce", out, mid, str(b.get("bounceSubType") or "")
    if kind == "complaint":
        c = doc.get("complaint") if isinstance(doc.get("complaint"), dict) else {}
        out = [Failed(str(r.get("emailAddress")).lower()) for r in c.get("complainedRecipients") or []
               if isinstance(r, dict) and r.get("emailAddress")]
        return "complaint", out, mid, None
    return None


TEXT_FORMATS = (james, qmail, exim, sendmail, gmail, exchange, domino, postfix)


def text_bounce(text: str) -> list[Failed] | None:
    """The first format that knows this text, with its recipients."""
    for parse in TEXT_FORMATS:
        try:
            found = parse(text)
        except re.error:
            found = None
        if found is not None:
            found = [f for f in found if "@" in f.address]
            if found:
                return found
    return None


def loose_recipients(mail: Mail, text: str) -> list[str]:
    """Last resort for a known-bounce whose format we don't know: X-Failed-Recipients,
    else addresses in the bounce's own words that aren't its sender or receiver."""
    listed = [a.strip().lower() for h in mail.headers("X-Failed-Recipients") for a in h.split(",") if "@" in a]
    if listed:
        return listed
    skip = set(mail.addresses("From", "To", "Reply-To", "Return-Path", "Sender"))
    out = []
    for a in _ADDR_RE.findall(head_of(text)):
        a = a.lower().strip(".")
        local = a.split("@")[0]
        if a in skip or a in out or local.startswith(("mailer-daemon", "mailer_daemon", "postmaster", "mail-daemon")):
            continue
        out.append(a)
    return out[:20]


_CODE_IN = re.compile(r"(?<![\d.])[245]\d\d(?![\d.])|(?<![\d.])[245]\.\d{1,3}\.\d{1,3}")


def loose_failures(mail: Mail, text: str, delayed: bool) -> list[Failed]:
    """Recipients of a bounce in a format we don't know, each with the paragraph that
    names it (and the next ones while they carry no SMTP code yet) as its diagnostic."""
    head = head_of(text)
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", head) if p.strip()]
    out = []
    for addr in loose_recipients(mail, text):
        diag = head
        for i, para in enumerate(paragraphs):
            if addr in para.lower():
                diag = para
                for nxt in paragraphs[i + 1: i + 3]:
                    if _CODE_IN.search(diag):
                        break
                    diag += "\n" + nxt
                break
        out.append(Failed(addr, None, "delayed" if delayed else "failed", " ".join(diag.split())[:2000], not delayed))
    return out
