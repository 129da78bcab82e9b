"""IMAP URLs (RFC 5092) naming a message or a part of one, as CATENATE
(RFC 4469) and URLAUTH (RFC 4467) take them:

    imap://user@host/INBOX;UIDVALIDITY=7/;UID=20/;SECTION=1.2/;PARTIAL=0.512
        ;EXPIRE=2026-12-01T00:00:00Z;URLAUTH=user+bob:INTERNAL:<token>

or, relative to the session, "/INBOX/;UID=20/;SECTION=HEADER". Names are
percent-encoded UTF-8; parameter names are matched without case.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_to_bytes


class BadUrl(ValueError):
    """Not an IMAP URL we can resolve; the text says why."""


_PATH = re.compile(
    r"""^(?P<mailbox>[^;]+?)(?:;UIDVALIDITY=(?P<uidvalidity>[1-9]\d{0,9}))?
        /;UID=(?P<uid>[1-9]\d{0,9})
        (?:/;SECTION=(?P<section>[^;/]+))?
        (?:/;PARTIAL=(?P<offset>\d{1,10})(?:\.(?P<length>[1-9]\d{0,9}))?)?
        (?P<rump_end>(?:;EXPIRE=(?P<expire>[^;]+))?;URLAUTH=(?P<access>[^:;]+))?
        (?::(?P<mechanism>[A-Za-z0-9.-]+):(?P<token>[0-9A-Fa-f]{32,}))?$""",
    re.IGNORECASE | re.VERBOSE)
_SERVER = re.compile(r"^(?:(?P<user>[^@;/]+)(?:;AUTH=[^@/]+)?@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@/\[\]]+)"
                     r"(?::(?P<port>\d{1,5}))?$", re.IGNORECASE)
_ACCESS = re.compile(r"^(?:(?P<kind>submit|user)\+(?P<who>.+)|(?P<any>authuser|anonymous))$", re.IGNORECASE)


@dataclass
class ImapUrl:
    text: str
    user: str | None            # from the URL's authority; None in a relative URL
    host: str | None
    mailbox: str
    uidvalidity: int | None
    uid: int
    section: str | None         # e.g. "1.2", "HEADER", "HEADER.FIELDS (FROM TO)"
    partial: tuple[int, int | None] | None
    expire: datetime | None = None
    access: str | None = None   # "user+bob", "authuser" ... (URLAUTH)
    mechanism: str | None = None
    token: str | None = None

    @property
    def rump(self) -> str:
        """The URL up to and with ;URLAUTH=access: what a URLAUTH token signs."""
        if self.token is None:
            return self.text
        return self.text[:self.text.rindex(":" + self.mechanism + ":")]

    def access_allows(self, user_name: str | None) -> bool:
        """Whether a session of user_name (None: not logged in) may use the URL."""
        m = _ACCESS.match(self.access or "")
        if m is None:
            return False
        if m.group("any"):
            return m.group("any").lower() == "anonymous" or user_name is not None
        if m.group("kind").lower() == "submit":
            return False      # for a submission server's BURL, which this server has none of
        return user_name is not None and _decode(m.group("who")).lower() == user_name.lower()


def _decode(text: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl("URL is not UTF-8") from None


def parse_imap_url(text: str) -> ImapUrl:
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in text):
        raise BadUrl("URL has characters that must be percent-encoded")
    user = host = None
    if text[:7].lower() == "imap://":
        server, slash, path = text[7:].partition("/")
        m = _SERVER.match(server)
        if not slash or m is None:
            raise BadUrl("Invalid IMAP URL server part")
        user = _decode(m.group("user")) if m.group("user") else None
        host = m.group("host").strip("[]").lower()
    elif text.startswith("/"):
        path = text[1:]
    else:
        raise BadUrl("Not an IMAP URL")
    m = _PATH.match(path)
    if m is None:
        raise BadUrl("The URL names no message")
    section = _decode(m.group("section")) if m.group("section") else None
    partial = None
    if m.group("offset") is not None:
        length = m.group("length")
        partial = (int(m.group("offset")), int(length) if length else None)
    expire = None
    if m.group("expire"):
        try:
            expire = datetime.fromisoformat(m.group("expire").upper().replace("Z", "+00:00"))
        except ValueError:
            raise BadUrl("Invalid EXPIRE") from None
        if expire.tzinfo is None:
            raise BadUrl("EXPIRE needs a time zone")
    if m.group("token") and not m.group("access"):
        raise BadUrl("A URLAUTH verifier without URLAUTH")
    return ImapUrl(text, user, host, _decode(m.group("mailbox")), int(m.group("uidvalidity") or 0) or None,
                   int(m.group("uid")), section, partial, expire, m.group("access"),
                   m.group("mechanism"), m.group("token"))
