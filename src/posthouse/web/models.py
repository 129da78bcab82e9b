"""The API's shapes (pydantic): what it answers (described in the OpenAPI
document) and what it takes. Input strings are checked once here: no NUL, no
lone surrogates, bounded lengths, no line breaks where a header is made."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_ID = 2**63 - 1      # what an SQL BIGINT holds: larger ids are refused, not overflowed


def _clean(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (a lone surrogate)") from None
    return value


def _one_line(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must be one line (no CR or LF)")
    return value


def _address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value) or "<" in value or ">" in value:
        raise ValueError(f"not an email address: {value!r}")
    return value


Line = Annotated[str, StringConstraints(max_length=1000), AfterValidator(_clean), AfterValidator(_one_line)]
Text = Annotated[str, StringConstraints(max_length=100_000), AfterValidator(_clean)]
Address = Annotated[str, StringConstraints(min_length=3, max_length=320), AfterValidator(_clean),
                    AfterValidator(_one_line), AfterValidator(_address)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_clean), AfterValidator(_one_line)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
When = datetime | str       # the CRM gives ISO 8601 text or datetimes; both are ISO 8601 in JSON

Kind = Literal["bounce", "complaint", "auto-reply", "unsubscribe", "reply", "other"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Error(_Out):
    error: str


class EmailAddress(_Out):
    address: str
    bouncing: bool = False
    bounce_reason: str | None = None


class CompanyRef(_Out):
    id: int
    name: str


class Contact(_Out):
    id: int
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    emails: list[EmailAddress] = []
    phone: str | None = None
    company: CompanyRef | None = None
    title: str | None = None
    tags: list[str] = []
    notes: str | None = None
    opted_out: bool = False
    created_at: When | None = None
    last_contacted: When | None = None


class Company(_Out):
    id: int
    name: str
    domains: list[str] = []


class Participant(_Out):
    role: str
    name: str | None = None
    address: str | None = None


class AttachmentInfo(_Out):
    name: str | None = None
    content_type: str | None = None
    size: int | None = None


class Thread(_Out):
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] | str | None = None


class Place(_Out):
    """Where a copy of the message is on a mail server (IMAP identity)."""
    account_id: int
    folder: str
    uidvalidity: int
    uid: int
    message_id: str | None = None
    emailid: str | None = None
    gone: bool = False


class Activity(_Out):
    id: int
    contact_id: int | None = None
    direction: Literal["received", "sent"] | str
    date: When | None = None
    subject: str | None = None
    participants: list[Participant] = []
    snippet: str | None = None
    text: str | None = None     # only at the account's privacy level "full"
    attachments: list[AttachmentInfo] = []
    thread: Thread | None = None
    kind: str | None = None
    places: list[Place] = []    # only the places in the caller's own accounts


class Account(_Out):
    """A mailbox the tracker follows. Never its password or tokens."""
    id: int
    owner: str
    kind: str
    imap_host: str | None = None
    imap_port: int | None = None
    imap_tls: str | None = None
    login: str | None = None
    auth: str | None = None
    oauth_provider: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_tls: str | None = None
    tls_pin: str | None = None      # the pinned certificate's SHA-256 (public, not a secret)
    since: date | str | None = None
    privacy: str | None = None
    addresses: list[str] = []
    state: str
    state_reason: str | None = None
    status: dict[str, Any] | None = None     # the tracker's progress (folders, messages done, last error)


class Document(_Out):
    id: int
    contact_id: int | None = None
    filename: str
    content_type: str | None = None
    size: int | None = None
    sha256: str | None = None
    created_at: When | None = None
    text_excerpt: str | None = None     # the start of its extracted text


class DocumentHit(_Out):
    """A document whose text has every word searched for."""
    id: int
    contact_id: int | None = None
    filename: str
    snippet: str | None = None          # the text around the first match


class PrivateEntry(_Out):
    entry: str                  # an address or a domain
    owner: str | None = None    # None: the whole server's list


class SendResult(_Out):
    message_id: str | None = None
    appended: dict[str, Any] | None = None      # {folder, uidvalidity, uid} when filed in Sent
    refused: dict[str, str] = {}                # recipients refused while the others were accepted
    sent_note: str | None = None                # why no copy was filed in Sent (the mail was sent)


# -- input -----------------------------------------------------------------------------

class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")       # a misspelt field is an error, not silently dropped


class ContactIn(_In):
    name: Line | None = None
    first_name: Line | None = None
    last_name: Line | None = None
    emails: list[Address] = Field(default=[], max_length=100)
    phone: Line | None = None
    company: Line | None = Field(default=None, description="the company's name (made if new)")
    title: Line | None = None
    tags: list[Tag] = Field(default=[], max_length=100)
    notes: Text | None = None


class ContactPatch(_In):
    name: Line | None = None
    first_name: Line | None = None
    last_name: Line | None = None
    phone: Line | None = None
    company: Line | None = None
    title: Line | None = None
    tags: list[Tag] = Field(default=[], max_length=100)      # (only the fields given are changed)
    notes: Text | None = None
    opted_out: bool = False
    add_emails: list[Address] = Field(default=[], max_length=100)
    remove_emails: list[Address] = Field(default=[], max_length=100)


class MergeIn(_In):
    other_id: Id = Field(description="the contact merged into this one (and then gone)")


class CompanyIn(_In):
    name: Line = Field(min_length=1)
    domains: list[Line] = Field(default=[], max_length=100)


class AttachmentIn(_In):
    filename: Line = Field(min_length=1)
    content_type: Line = "application/octet-stream"
    content_base64: str = Field(max_length=40 * 1024 * 1024)


class SendIn(_In):
    account_id: Id
    to: list[Address] = Field(min_length=1, max_length=500)
    cc: list[Address] = Field(default=[], max_length=500)
    bcc: list[Address] = Field(default=[], max_length=500)
    subject: Line = ""
    text: Text | None = None
    html: Annotated[str, StringConstraints(max_length=10_000_000), AfterValidator(_clean)] | None = None
    in_reply_to: Line | None = None
    references: list[Line] = Field(default=[], max_length=500)
    from_address: Address | None = Field(default=None, description="one of the account's addresses "
                                                                   "(default: its first)")
    attachments: list[AttachmentIn] = Field(default=[], max_length=100)


class PrivateIn(_In):
    entry: Annotated[str, StringConstraints(min_length=1, max_length=320), AfterValidator(_clean),
                     AfterValidator(_one_line)] = Field(description="an address (ann@corp.example) or a domain "
                                                                    "(corp.example)")
