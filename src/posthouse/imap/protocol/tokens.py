"""The values a parsed IMAP command is made of.

The tokenizer turns a command line (with its literals already read) into a flat
list of these; command handlers then read them with an ArgReader.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Atom:
    """A bare word: NIL, 1:*, \\Seen, BODY.PEEK[HEADER.FIELDS (A B)]<0.10> ..."""
    value: str

    @property
    def upper(self) -> str:
        return self.value.upper()


@dataclass(frozen=True, slots=True)
class String:
    """A quoted string or a literal. `literal8` marks a ~{n} binary literal."""
    value: bytes
    is_literal: bool = False
    literal8: bool = False

    def text(self) -> str:
        return self.value.decode("utf-8", "surrogateescape")


@dataclass(slots=True)
class ParenList:
    items: list = field(default_factory=list)


Token = Atom | String | ParenList


class ParseError(Exception):
    """The command is malformed; the message is the reason sent with BAD."""


@dataclass(slots=True)
class Command:
    tag: str
    name: str          # upper-cased command name, e.g. "FETCH"
    args: list         # tokens after the name
    uid: bool = False  # "UID FETCH" and friends
