"""What the tracker tells the CRM: facts about messages on mail servers, and
nothing about contacts. Facts flow one way (tracker -> FactSink) and replaying
any of them changes nothing, so the tracker applies a batch of facts first and
moves its folder cursor after: a crash in between replays, never loses."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Sequence, Union


@dataclass(frozen=True)
class Place:
    """Where one copy of a message is: the IMAP identity of that copy."""
    account_id: int
    folder: str             # the folder's name, decoded (UTF-8, not modified UTF-7)
    uidvalidity: int
    uid: int


@dataclass(frozen=True)
class Attachment:
    name: str | None        # filename or name parameter, decoded; None if unnamed
    content_type: str       # "application/pdf"
    size: int               # octets as the server reports them (encoded size)
    section: str            # the IMAP body section ("2", "1.3") to fetch it with


@dataclass(frozen=True)
class MessageSeen:
    """A message found at `place` (first sight, or seen again after a reset)."""
    place: Place
    message_id: str | None          # Message-ID without <>, None if absent
    emailid: str | None             # RFC 8474 EMAILID where the server offers OBJECTID
    content_hash: str               # sha256 hex of the normalised header fields and text: identity without Message-ID
    internaldate: datetime          # timezone-aware
    size: int                       # RFC822.SIZE
    flags: tuple[str, ...]          # as the server has them ("\\Seen", "$Forwarded")
    modseq: int | None
    # The message with every non-text leaf's body left out: the whole header, the
    # text/plain and text/html parts, and the report parts a reply sorter reads
    # (message/delivery-status, message/feedback-report, text/rfc822-headers, the
    # header of an attached message/rfc822). Parse with the email package.
    skeleton: bytes
    attachments: tuple[Attachment, ...] = ()
    special_use: str | None = None  # the folder's \Sent, \Inbox-like role: "\\Sent", "\\Inbox", ...


@dataclass(frozen=True)
class MessageChanged:
    """Flags of a known copy changed."""
    place: Place
    flags: tuple[str, ...]
    modseq: int | None


@dataclass(frozen=True)
class MessageGone:
    """The copy at `place` was expunged (or its folder deleted)."""
    place: Place


@dataclass(frozen=True)
class FolderReset:
    """A folder's UIDVALIDITY changed (or its HIGHESTMODSEQ went down): every
    place in it with `old_uidvalidity` is gone; the tracker sends MessageSeen
    again for what is there now, which the CRM re-links by Message-ID/hash."""
    account_id: int
    folder: str
    old_uidvalidity: int
    new_uidvalidity: int


@dataclass(frozen=True)
class FolderRenamed:
    account_id: int
    old_name: str
    new_name: str


Fact = Union[MessageSeen, MessageChanged, MessageGone, FolderReset, FolderRenamed]


class FactSink(Protocol):
    def apply(self, facts: Sequence[Fact]) -> None:
        """Record facts, all or none (one transaction). Blocking: the tracker
        calls it on a thread. Idempotent: a replayed fact changes nothing."""
