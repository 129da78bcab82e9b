"""What a reader of a mail source (mbox, Maildir) hands the importer."""
from __future__ import annotations

from dataclasses import dataclass


class SourceError(Exception):
    """A source that can't be read as mail; the message says which and why."""


@dataclass(slots=True)
class SourceMessage:
    folder: str                 # the mailbox it goes to, "/"-separated ("INBOX", "Lists/python")
    raw: bytes                  # the message as stored (From_ line and status headers taken off)
    flags: frozenset
    internaldate: float
    origin: str                 # where it was read (file, and offset or name): for error messages
