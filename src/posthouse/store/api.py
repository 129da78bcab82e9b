"""The storage API every backend implements, and the values it deals in.

IMAP, POP3 and delivery code talk only to this interface; sqlite/ is the
embedded backend. Methods are synchronous and called from the store's own
thread (see service.py), never from the event loop.
"""
from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from functools import cached_property


class StoreError(Exception):
    """A request the store refuses; the message is safe to show a client."""
    code: str | None = None   # IMAP response code such as NONEXISTENT, ALREADYEXISTS


class NoSuchMailbox(StoreError):
    code = "NONEXISTENT"


class MailboxExists(StoreError):
    code = "ALREADYEXISTS"


class MailboxHasChildren(StoreError):
    code = "HASCHILDREN"


class OverQuota(StoreError):
    """The change would take a user past a storage or message-count limit."""
    code = "OVERQUOTA"


class DiskFull(StoreError):
    """No room left on the disk for the change (see store/space.py); the client may retry later."""
    code = "LIMIT"

    def __init__(self, text: str = "The server's disk is full; try again later"):
        super().__init__(text)


class NoSuchUser(StoreError):
    pass


class UserExists(StoreError):
    pass


@dataclass(slots=True)
class User:
    id: int
    name: str
    password_hash: str


@dataclass(slots=True)
class Quota:
    """A user's usage and limits (RFC 9208 resources STORAGE and MESSAGE).
    A limit of None means none."""
    storage: int                  # bytes, the sum of every message's size
    messages: int
    storage_limit: int | None     # bytes
    message_limit: int | None


@dataclass(slots=True)
class Outbound:
    """A queued message and the recipients it still has to reach."""
    id: int
    user_id: int | None
    sender: str
    recipients: list[str]
    data: bytes
    created: float
    attempts: int
    last_error: str


@dataclass(slots=True)
class MailboxInfo:
    id: int
    user_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None
    first_recent_uid: int = 1
    noselect: int = 0    # 1: a name kept for its children after a DELETE, not a mailbox to open


@dataclass(slots=True)
class DeliveryFacts:
    """What a delivery to a user needs to know, read in one go at RCPT."""
    user: User
    quota: Quota
    script: str | None            # the active Sieve script's text
    inbox: MailboxInfo | None     # None only for a user without an INBOX


@dataclass(slots=True)
class IndexEntry:
    """What the shared in-memory index keeps for each message."""
    uid: int
    flags: frozenset
    modseq: int
    size: int
    internaldate: float
    sent_date: float | None = None    # the Date header's time, for SORT (DATE) from memory


@dataclass
class MessageData:
    """Everything FETCH needs about one message apart from its bytes."""
    uid: int
    blob_key: str
    size: int
    internaldate: float
    envelope: bytes
    body: bytes
    bodystructure: bytes
    parts_json: str
    header_size: int
    inline: bytes | None = None    # the bytes, when asked for and kept in the database

    @cached_property
    def parts(self) -> dict:
        """The part tree (mime.sections), decoded only when a section is asked for."""
        return json.loads(self.parts_json)


@dataclass(slots=True)
class SearchFields:
    uid: int
    sent_date: float | None
    subject: str
    from_: str
    to: str
    cc: str
    bcc: str
    message_id: str
    in_reply_to: str
    references: str


# --- change events: what the store tells the shared mailbox indexes -------

@dataclass(slots=True)
class MessageAdded:
    mailbox_id: int
    entry: IndexEntry


def merged_flags(old: frozenset, mode: str, flags: frozenset) -> frozenset | None:
    """A message's flags after a STORE of flags in mode "set", "add" or
    "remove"; None if that changes nothing. Names compare without case, as
    IMAP's do: a flag added that is there in another case keeps its spelling.
    The store applies this, and the IMAP server answers a STORE with it."""
    have = {f.lower(): f for f in old}
    want = {f.lower(): f for f in flags}
    if mode == "set":
        new = want
    elif mode == "add":
        new = {**want, **have}
    else:
        new = {k: v for k, v in have.items() if k not in want}
    return None if new.keys() == have.keys() else frozenset(new.values())


@dataclass(slots=True)
class FlagsChanged:
    mailbox_id: int
    uid: int
    flags: frozenset
    modseq: int


@dataclass(slots=True)
class MessagesExpunged:
    mailbox_id: int
    uids: list
    modseq: int


@dataclass(slots=True)
class MailboxGone:
    """Deleted or renamed away: sessions with it selected must be told."""
    mailbox_id: int


@dataclass(slots=True)
class MailboxChanged:
    """Changes up to MODSEQ modseq were committed to a mailbox elsewhere (by
    another node): what they are is read from the store's change log.
    kinds: "a" messages added, "f" flags changed, "x" expunged; "?" unknown
    (found by a check, not told); "" none known (only: check you are current)."""
    mailbox_id: int
    modseq: int
    kinds: str = "?"


@dataclass(slots=True)
class MailboxListChanged:
    """A user's mailbox was created, deleted or renamed, or (un)subscribed:
    what NOTIFY's MailboxName and SubscriptionChange events tell (RFC 5465)."""
    user_id: int
    kind: str                    # "created", "deleted", "renamed", "subscribed", "unsubscribed"
    name: str
    old_name: str | None = None
    origin: object = None        # the session that made the change (it is not told)
    mailbox_id: int | None = None   # of a created mailbox: followed at once, before mail can arrive

    @property
    def hub_key(self):
        return ("user", self.user_id)


@dataclass(slots=True)
class AppendResult:
    uidvalidity: int
    uid: int
    events: list = field(default_factory=list)


@dataclass(slots=True)
class CopyResult:
    uidvalidity: int
    source_uids: list
    dest_uids: list
    events: list = field(default_factory=list)


class Store(abc.ABC):
    # users
    @abc.abstractmethod
    def create_user(self, name: str, password_hash: str, mailboxes: list[tuple[str, str | None]]) -> User: ...
    @abc.abstractmethod
    def get_user(self, name: str) -> User | None: ...
    @abc.abstractmethod
    def user_by_id(self, user_id: int) -> User | None: ...
    @abc.abstractmethod
    def set_password(self, name: str, password_hash: str) -> None: ...
    @abc.abstractmethod
    def delete_user(self, name: str) -> list: ...
    @abc.abstractmethod
    def list_users(self) -> list[str]: ...
    @abc.abstractmethod
    def get_quota(self, user_id: int) -> Quota: ...

    # sieve scripts
    @abc.abstractmethod
    def put_script(self, user_id: int, name: str, script: str) -> None: ...
    @abc.abstractmethod
    def get_script(self, user_id: int, name: str) -> str | None: ...
    @abc.abstractmethod
    def list_scripts(self, user_id: int) -> list[tuple[str, bool]]: ...
    @abc.abstractmethod
    def activate_script(self, user_id: int, name: str | None) -> None: ...
    @abc.abstractmethod
    def delete_script(self, user_id: int, name: str) -> None: ...
    @abc.abstractmethod
    def rename_script(self, user_id: int, old: str, new: str) -> None: ...
    @abc.abstractmethod
    def active_script(self, user_id: int) -> str | None: ...

    def delivery_facts(self, name: str) -> DeliveryFacts | None:
        """A user's account, quota, active script and INBOX, by user name
        (None: no such user); a store may read them all at once."""
        user = self.get_user(name)
        if user is None:
            return None
        try:
            inbox = self.get_mailbox(user.id, "INBOX")
        except NoSuchMailbox:
            inbox = None
        return DeliveryFacts(user, self.get_quota(user.id), self.active_script(user.id), inbox)

    # the outbound queue
    @abc.abstractmethod
    def enqueue(self, user_id: int | None, sender: str, recipients: list[str], data: bytes, now: float) -> int: ...
    @abc.abstractmethod
    def due_outbound(self, now: float, limit: int) -> list[Outbound]: ...
    @abc.abstractmethod
    def outbound_attempted(self, item_id: int, remaining: list[str], next_attempt: float | None,
                           error: str) -> None: ...
    @abc.abstractmethod
    def next_outbound_time(self) -> float | None: ...

    @abc.abstractmethod
    def vacation_due(self, user_id: int, sender: str, handle: str, days: float, now: float) -> bool: ...
    @abc.abstractmethod
    def set_quota(self, name: str, storage_limit: int | None | str, message_limit: int | None | str) -> None: ...

    # mailboxes
    @abc.abstractmethod
    def list_mailboxes(self, user_id: int, noselect_too: bool = False) -> list[MailboxInfo]: ...
    @abc.abstractmethod
    def get_mailbox(self, user_id: int, name: str) -> MailboxInfo: ...
    @abc.abstractmethod
    def create_mailbox(self, user_id: int, name: str, special_use: str | None = None) -> MailboxInfo: ...
    @abc.abstractmethod
    def delete_mailbox(self, user_id: int, name: str) -> list: ...
    @abc.abstractmethod
    def rename_mailbox(self, user_id: int, old: str, new: str) -> list: ...
    @abc.abstractmethod
    def subscriptions(self, user_id: int) -> set[str]: ...
    @abc.abstractmethod
    def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None: ...
    @abc.abstractmethod
    def mailbox_counts(self, mailbox_id: int) -> dict: ...
    @abc.abstractmethod
    def claim_recent(self, mailbox_id: int, first_recent_uid: int) -> None: ...

    # messages
    @abc.abstractmethod
    def load_index(self, mailbox_id: int, from_uid: int = 0) -> tuple[MailboxInfo, list[IndexEntry]]: ...
    @abc.abstractmethod
    def append(self, mailbox_id: int, raw: bytes, parsed, flags: frozenset, internaldate: float) -> AppendResult: ...
    @abc.abstractmethod
    def store_flags(self, mailbox_id: int, uids: list[int], mode: str, flags: frozenset,
                    unchanged_since: int | None = None) -> tuple[list, list]: ...
    @abc.abstractmethod
    def expunge(self, mailbox_id: int, uids: list[int]) -> list: ...
    @abc.abstractmethod
    def copy(self, src_id: int, uids: list[int], dst_id: int, move: bool = False) -> CopyResult: ...
    @abc.abstractmethod
    def message_data(self, mailbox_id: int, uids: list[int], with_bytes: bool = False) -> dict[int, MessageData]: ...
    @abc.abstractmethod
    def search_fields(self, mailbox_id: int, uids: list[int]) -> dict[int, SearchFields]: ...

    @abc.abstractmethod
    def search_field(self, mailbox_id: int, uids: list[int] | None, field: str, needle: str) -> set[int]: ...

    @abc.abstractmethod
    def sort_data(self, mailbox_id: int) -> dict[int, tuple]: ...

    @abc.abstractmethod
    def save_dates(self, mailbox_id: int, uids: list[int] | None = None) -> dict[int, float | None]: ...

    @abc.abstractmethod
    def thread_data(self, mailbox_id: int) -> dict[int, tuple]: ...
    @abc.abstractmethod
    def urlauth_key(self, mailbox_id: int) -> bytes | None: ...
    @abc.abstractmethod
    def signing_key(self, mailbox_id: int) -> bytes: ...
    @abc.abstractmethod
    def reset_urlauth_keys(self, user_id: int, mailbox_id: int | None = None) -> None: ...
    @abc.abstractmethod
    def vanished_since(self, mailbox_id: int, modseq: int) -> list[int] | None: ...
    @abc.abstractmethod
    def search_body(self, mailbox_id: int, uids: list[int] | None, needle: str) -> set[int]: ...
    @abc.abstractmethod
    def read_blob(self, key: str, start: int = 0, end: int | None = None) -> bytes: ...
