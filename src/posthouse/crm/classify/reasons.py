"""From a failed recipient's status code and diagnostic text to a reason of the
taxonomy (model.REASONS), and whether the bounce is hard.

The diagnostic text decides first (providers put one generic code on many
causes: Outlook's "550 5.5.0 mailbox unavailable" is an unknown user, 5.7.1
covers blocklists, spam and policy alike); the enhanced status code (RFC 3463
and its registry) decides when the text says nothing we know, and always for
the few codes that are unambiguous."""
from __future__ import annotations

import re

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_REPLY = re.compile(r"(?<![\d.])([245]\d\d)(?=[\s\-])")


def find_status(text: str) -> str | None:
    """The first enhanced status code in a text ("550 5.1.1 ...", "(#5.1.1)")."""
    if not text:
        return None
    m = _STATUS.search(text)
    return ".".join(m.groups()) if m else None


def find_reply_code(text: str) -> str | None:
    m = _REPLY.search(text or "")
    return m.group(1) if m else None


# Codes whose meaning no provider bends: they win over the text.
_SURE = {
    "1.1": "userunknown", "1.2": "hostunknown", "1.6": "hasmoved", "2.2": "mailboxfull",
    "3.4": "mesgtoobig", "4.7": "expired", "7.13": "suspend", "7.17": "hasmoved",
    "7.20": "authfailure", "7.21": "authfailure", "7.22": "authfailure", "7.23": "authfailure",
    "7.24": "authfailure", "7.25": "requireptr", "7.26": "authfailure", "7.27": "notaccept",
    "7.28": "ratelimited",
}

# subject.detail -> reason, when the text gives no better one (RFC 3463, RFC 7505, RFC 7372 ...)
_BY_CODE = {
    "1.0": "userunknown", "1.1": "userunknown", "1.2": "hostunknown", "1.3": "userunknown",
    "1.4": "userunknown", "1.5": "userunknown", "1.6": "hasmoved", "1.7": "rejected",
    "1.8": "rejected", "1.9": "systemerror", "1.10": "notaccept",
    "2.0": "filtered", "2.1": "suspend", "2.2": "mailboxfull", "2.3": "exceedlimit", "2.4": "systemerror",
    "3.0": "systemerror", "3.1": "systemfull", "3.2": "notaccept", "3.3": "systemerror",
    "3.4": "mesgtoobig", "3.5": "systemerror",
    "4.0": "networkerror", "4.1": "networkerror", "4.2": "networkerror", "4.3": "systemerror",
    "4.4": "hostunknown", "4.5": "toomanyconn", "4.6": "networkerror", "4.7": "expired",
    "5.1": "syntaxerror", "5.2": "syntaxerror", "5.3": "exceedlimit",
    "5.4": "syntaxerror", "5.5": "syntaxerror", "5.6": "syntaxerror",
    "6.0": "contenterror", "6.1": "contenterror", "6.2": "contenterror", "6.3": "contenterror",
    "6.4": "contenterror", "6.5": "contenterror", "6.6": "contenterror", "6.7": "contenterror",
    "6.8": "contenterror", "6.9": "contenterror", "6.10": "contenterror",
    "7.0": "securityerror", "7.1": "rejected", "7.2": "securityerror", "7.3": "securityerror",
    "7.4": "securityerror", "7.5": "securityerror", "7.6": "securityerror", "7.7": "securityerror",
    "7.8": "securityerror", "7.9": "securityerror", "7.10": "securityerror", "7.11": "securityerror",
    "7.12": "securityerror", "7.13": "suspend", "7.14": "securityerror", "7.15": "securityerror",
    "7.16": "securityerror", "7.17": "hasmoved", "7.18": "hasmoved", "7.19": "hasmoved",
    "7.20": "authfailure", "7.21": "authfailure", "7.22": "authfailure", "7.23": "authfailure",
    "7.24": "authfailure", "7.25": "requireptr", "7.26": "authfailure", "7.27": "notaccept",
    "7.28": "ratelimited", "7.29": "authfailure", "7.30": "securityerror",
}

# (reason, pattern) tried in order on the lower-cased diagnostic: the specific before the general.
_TEXT: list[tuple[str, str]] = [
    # the sender's side rejected (before "address rejected" and "domain not found")
    ("rejected", r"sender address rejected|sender (address |domain )?(is )?(denied|rejected|refused|blocked|not allowed)"
                 r"|sender verify failed|unverified sender|invalid sender|sender (address )?(is )?invalid"
                 r"|(mail from|envelope sender|return.path).{0,40}(rejected|refused|denied|invalid|not allowed)"
                 r"|domain of sender address .{0,80} does not exist|address verification failed for sender"),
    ("authfailure", r"\b(spf|dkim|dmarc)\b.{0,60}\b(fail|failed|failure|reject|rejected|not pass|none|policy|alignment|validation|check|error|invalid)"
                    r"|\b(fail|failed|failure|not pass|didn't pass|did not pass).{0,40}\b(spf|dkim|dmarc)\b"
                    r"|unauthenticated (e-?mail|mail|message)|sender policy framework|not authorized to send on behalf"
                    r"|message (is )?not (properly )?authenticated|authentication checks? (did not pass|failed)"),
    ("requireptr", r"\bptr record|reverse (dns|lookup|hostname|zone)|rdns|no (host|domain)name for your ip|cannot find your hostname"
                   r"|ip name lookup failed|(doesn't|does not) have a (ptr|reverse)|reverse-resolv|client host rejected: cannot find your"),
    ("blocked", r"blocked using|spamhaus|spamcop|barracuda|sorbs|\bdnsbls?\b|\brbls?\b|\bdnsbl\S*|black ?list|block ?list|blocked by|"
                r"(?<!not )listed (at|in|on|by)\b|banned sending ip|\bip (address )?(is )?(blocked|banned|rejected|not allowed)"
                r"|(client|your|sending) (host|ip|server|network|mta)( address)?( \S+)? (is |has been )?(blocked|banned|refused|rejected)"
                r"|connections? (will not be |is not |are not )accepted from|refused to talk to me|access denied, banned"
                r"|your (ip|server|domain) .{0,40}(on|in) our (block|black) ?list|\(s3140\)|\(s3150\)|permanently deferred|(traffic|mail|messages?|connections?) (is |are )?not accepted from|(mail|connection) from .{0,60} refused"),
    ("badreputation", r"\breputation\b|bad sender score|senderscore|sender score"),
    ("virusdetected", r"virus|malware|infected|trojan|potential security issue|malicious (content|attachment|link)"),
    ("notcompliantrfc", r"\brfc ?(2822|5322|822|5321)\b.{0,40}(compliant|compliance|violation|format|standard)"
                        r"|not (rfc|standards?)[ -]?compliant|multiple (from|subject|date|to|sender|message-id) (headers|fields)"
                        r"|does not (comply|conform) (with|to) rfc|missing (a )?(required )?(date|from|message-id) header"),
    ("spamdetected", r"\bspam\b|unsolicited|junk mail|bulk mail|spam ?assassin|content (was )?(identified|detected|considered) as (spam|bulk)"
                     r"|suspicious (content|message)|phish"),
    ("norelaying", r"relay(ing)? (access |is )?(denied|not (permitted|allowed)|prohibited|refused)|unable to relay|we do not relay"
                   r"|not (allowed|permitted|authori[sz]ed) to relay|relaying (mail )?(to .{0,60} )?(is )?(denied|not allowed)|no relaying|tenantattribution"),
    ("ratelimited", r"rate limit|ratelimit|too many (messages|mails|emails)|(sending|message|daily|hourly|user) (rate|limit|quota) (exceeded|reached)"
                    r"|exceeded .{0,30}(sending|rate|daily|hourly) (limit|quota)|unusual rate|throttl|unexpected volume|send(ing)? limit|too fast"
                    r"|temporarily deferred|receiving (mail|messages) at a rate"),
    ("toomanyconn", r"too many (connections|concurrent|sessions|simultaneous|smtp sessions|recipients)|connection (count |rate )?limit|too many hosts"),
    ("mesgtoobig", r"message (size )?(is |was )?too (big|large)|(message|mail) (size )?exceeds|exceeds? (the )?(maximum|max) (message )?size"
                   r"|size limit|message length exceeds|mail size|message size|too big for (this|the) system|maximum allowed size"),
    ("mailboxfull", r"mailbox (is |was )?full|over ?quota|quota (exceeded|full)|exceed(ed|s)? (his|her|their|the|its|your)? ?(storage|mailbox|disk)? ?quota"
                    r"|inbox (is )?full|(mailbox|mail ?box|account) (size|storage) (limit )?(exceeded|full)|not enough (storage|space) (space )?(in|for)"
                    r"|out of storage|mailfolder (is )?full|storage (allocation|limit) (exceeded|reached)|postfach (ist )?voll|boîte (aux lettres )?pleine"
                    r"|mailbox has exceeded|user (is )?over|insufficient (storage|space) (in|for) (the )?(mailbox|user|recipient)|quota"),
    ("exceedlimit", r"exceeds? (the )?(recipient'?s? |user'?s? )?(size )?limit|limit exceeded"),
    ("suspend", r"(account|mailbox|user|address|recipient)( \S+)? (has been |is |was |currently )?(disabled|suspended|deactivated|inactive|locked|frozen|closed|expired|blocked for)"
                r"|(disabled|suspended|inactive|deactivated|closed) (account|mailbox|user)|mailbox (is )?(disabled|not active)"
                r"|account (is )?not (active|available)|temporarily (disabled|deactivated)"
                r"|(is|has been|was) (disabled|suspended|deactivated)\b"),
    ("hasmoved", r"has moved|moved to|address (has )?changed|no longer (uses|valid at|at this)|user not local; please try|changed (his|her|their) (e-?mail )?address"),
    ("notaccept", r"null mx|does not accept (e-?)?mail|doesn't accept (e-?)?mail|not accepting (any )?(e-?)?mail|accepts no mail|domain does not receive"),
    ("hostunknown", r"host (or domain name )?not found|domain (name )?not found|unknown (host|domain)|no such (host|domain)|host unknown"
                    r"|name service error|domain (does not|doesn't) exist|nxdomain|no mx|dns error|address resolution of .{0,80} failed"
                    r"|(unrouteable|unroutable) (mail )?(domain|address)|mx records point to non-existent|domain (is )?(invalid|not valid)"),
    ("userunknown", r"user (is )?unknown|unknown (e-?mail |email )?(user|recipient|local|address|mailbox|account|alias)|no such (user|recipient|mailbox|address|account|person)"
                    r"|(user|recipient|mailbox|address|account|addressee)( name)? (not found|does ?n[o']t exist|unknown|not listed|invalid|not valid|unavailable|not available)"
                    r"|(account|address|mailbox) (that )?you tried to reach (does not|doesn't) exist|(does not|doesn't) have an? .{0,40}account"
                    r"|recip(ient)?notfound|resolver\.adr\.|no mailbox|mailbox (name )?not allowed|invalid (recipient|mailbox|address|user)"
                    r"|not a valid (user|mailbox|recipient|address)|bad destination (mailbox|address)|address (is )?(unknown|rejected|not found)"
                    r"|recipient address rejected|not listed in .{0,30}directory|no one here by that name"
                    r"|not our customer|undeliverable address|unknown or illegal alias|mailbox unavailable|benutzer unbekannt|unbekannte? (empf|benutzer)"
                    r"|utilisateur inconnu|destinataire inconnu|does not exist|doesn't exist|not exist"),
    ("expired", r"retry time(out)? (not reached|exceeded)|delivery time expired|expired|(in|on) (the )?queue too long|giving up|gave up"
                r"|could not be delivered (with)?in|too long in queue|message timed out|maximum time"),
    ("mailererror", r"mailer error|command (died|failed)|program (exited|failed)|procmail|x-unix|exit (status|code)|pipe to"),
    ("networkerror", r"connection (timed out|refused|reset|dropped|closed|lost)|timed out|network (is )?unreachable|no route to host"
                     r"|lost connection|(could not|couldn't|unable to) (connect|establish)|host unreachable|connect to .{0,80}(refused|failed)"
                     r"|temporary (dns|lookup) failure|try again|servfail|routing loop"),
    ("securityerror", r"\b(tls|ssl|starttls)\b|encrypt|certificate|authentication (is )?required|auth(entication)? required|must (be )?authenticat"
                      r"|not authori[sz]ed|access denied|permission denied|unauthori[sz]ed|resolver\.rst\.|security polic"),
    ("policyviolation", r"polic(y|ies)|prohibited|banned|file type|not (allowed|permitted)|forbidden|attachment"),
    ("filtered", r"filter|recipient'?s? (rules|settings)|refuses to accept|blocked senders|does not wish to receive|not accepting mail from|rejected by recipient"),
    ("syntaxerror", r"syntax error|command (unrecognized|not recognized|not implemented)|unrecognized command|bad sequence|invalid command"),
    ("contenterror", r"header|malformed|invalid message|8-?bit|non-ascii|bare lf|line too long|content (rejected|error)|message (content )?rejected|mime"),
    ("systemerror", r"system error|internal (server )?error|local error|temporary (local )?(problem|failure)|server error|loops back to myself"
                    r"|mail loop|too many hops|hop count|loop detected|service (not )?(un)?available|resources"),
    ("systemfull", r"insufficient system storage|system (storage|disk) (is )?full|out of disk|no space left|disk full|mail system full"),
    ("rejected", r"rejected|refused|denied|not accepted"),
]
_COMPILED = [(reason, re.compile(pat)) for reason, pat in _TEXT]

_ADDR = re.compile(r"<?[\w.+%=\-]+@[\w.\-]+>?")
_CONT = re.compile(r"\b[245]\d\d[ -]#?[245]\.\d{1,3}\.\d{1,3}\b|\b[245]\d\d-")


def text_reason(text: str) -> str | None:
    """The reason a diagnostic text names, or None."""
    if not text:
        return None
    t = _ADDR.sub(" ", text.lower()[:4000])        # an address such as spam@... must not decide
    t = _CONT.sub(" ", t)
    t = re.sub(r"\s+", " ", t)
    for reason, pat in _COMPILED:
        if pat.search(t):
            return reason
    return None


def code_reason(status: str | None) -> str | None:
    if not status or status.count(".") != 2:
        return None
    sub = status.split(".", 1)[1]
    return _BY_CODE.get(sub)


_SENDER_REJECTED = re.compile(r"sender verify failed|verification failed for <|sender address rejected|sender (address |domain )?(is )?"
                              r"(denied|rejected|refused|invalid)|envelope sender domain must exist|unverified sender", re.I)


_ACCESS_DENIED = re.compile(r"recipient address rejected:\s*access denied", re.I)


def sender_rejected(text: str) -> bool:
    """The remote server refused our envelope sender: a code quoted from its
    callout (Exim's 'Response: 550 5.1.1 ...') is about the sender, not the recipient."""
    return bool(_SENDER_REJECTED.search(text or ""))


def reason_of(status: str | None, text: str, *, delayed: bool = False) -> str:
    sub = status.split(".", 1)[1] if status and status.count(".") == 2 else None
    if sender_rejected(text):
        return "rejected"
    if sub in _SURE:
        return _SURE[sub]
    found = text_reason(text)
    if found == "userunknown" and sub and sub.startswith("7.") and _ACCESS_DENIED.search(text or ""):
        # "Recipient address rejected: Access denied": a policy map's refusal under a
        # security code (5.7.x); Office 365 says the same under 5.4.1 for an unknown address
        return "securityerror"
    if found:
        return found
    by_code = code_reason(status) if sub != "0.0" else None
    if by_code:
        return by_code
    if delayed:         # still being retried, for a reason nobody said
        return "onhold"
    return "onhold" if status and sub == "0.0" else "undefined"


# The reasons that say the address itself is bad. Everything else about a 5.x.x (our IP
# blocked, the content refused, a full or suspended mailbox) is soft, as in Sisimai: a hard
# bounce marks the contact's address as bouncing, which those don't justify.
HARD_REASONS = frozenset({"userunknown", "hostunknown", "hasmoved"})


def is_hard(reason: str, status: str | None, permanent: bool = True) -> bool:
    """Hard: the address itself will never take mail (Sisimai's split, so figures
    compare): unknown user or host, moved; notaccept, onhold and undefined by the
    code's class. Every 4.x.x, a full mailbox, a block or a content problem is soft:
    retrying later or from elsewhere can work, so the address isn't marked bouncing."""
    cls = status[0] if status else ("5" if permanent else "4")
    if cls == "4" or not permanent:
        return False
    if reason in HARD_REASONS:
        return True
    if reason in ("notaccept", "onhold", "undefined"):
        return cls == "5"
    return False
