"""Submission's check of who a message says it is from: the From: and
Sender: header fields, against the addresses the logged-in user may use
(the envelope's MAIL FROM is checked by the same rule at MAIL).

A message must have exactly one From: field with exactly one address, and
at most one Sender: with one address (RFC 5322 3.6.2 allows several From:
authors with a Sender:, which a mail client's user has no need of; refused
here so the check can't be dodged). Then each address must be the user's:
under the "refuse" policy (the default) the message is refused, under
"rewrite" the field is replaced by one with the user's own address and the
same display name; nothing else in the message changes.
"""
from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.utils import formataddr

_FIELD = re.compile(rb"(?im)^(from|sender)[ \t]*:")


@dataclass
class Field:
    name: str            # "From" or "Sender", as checked (case folded)
    start: int           # the field's offset in the message, name included
    end: int             # just past its last line's line ending
    value: str           # unfolded, as text


class FromRefused(Exception):
    """The reply that refuses the message."""

    def __init__(self, reply: str):
        super().__init__(reply)
        self.reply = reply


def header_end(content: bytes) -> int:
    """Where the header ends (the blank line, or the end of a body-less message)."""
    if content.startswith((b"\r\n", b"\n")):
        return 0                # no header at all: a "From:" below is the body's
    ends = [i for i in (content.find(b"\r\n\r\n"), content.find(b"\n\n")) if i >= 0]
    if not ends:
        return len(content)
    at = min(ends)
    return at + (2 if content.startswith(b"\r\n", at) else 1)


def fields(content: bytes) -> list[Field]:
    """The From: and Sender: fields of the message's header, in order."""
    head = content[:header_end(content)]
    found = []
    for match in _FIELD.finditer(head):      # at a line's start: a folded line starts with a blank
        end = match.end()
        while True:                           # the field runs on over folded lines
            newline = head.find(b"\n", end)
            end = len(head) if newline < 0 else newline + 1
            if end >= len(head) or head[end:end + 1] not in (b" ", b"\t"):
                break
        raw = head[match.end():end]
        value = re.sub(rb"\r?\n(?=[ \t])", b"", raw).strip().decode("utf-8", "surrogateescape")
        found.append(Field(match.group(1).decode().capitalize(), match.start(), end, value))
    return found


def one_address(field: Field) -> tuple[str, str]:
    """(display name, address) of a field that must name exactly one mailbox."""
    try:
        field.value.encode("utf-8")        # bytes that are not UTF-8 are no address
        parsed = email.policy.default.header_factory(field.name, field.value)
        addresses = parsed.addresses
    except (HeaderParseError, ValueError, IndexError, TypeError):     # UnicodeError is a ValueError
        addresses, parsed = (), None
    if parsed is not None and any(type(d).__name__ in _FATAL_DEFECTS for d in parsed.defects):
        addresses = ()
    if len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
        if len(addresses) > 1:
            raise FromRefused(f"550 5.6.0 The {field.name}: field names {len(addresses)} addresses; "
                              "send with one, your own")
        shown = field.value[:100].encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        shown = "".join(c if c.isprintable() else "?" for c in shown)     # it goes into the reply line
        raise FromRefused(f"550 5.6.0 The {field.name}: field is not an address that can be read: \"{shown}\"")
    return addresses[0].display_name, addresses[0].addr_spec


# What the email package notes but still reads an address from; these mean
# it guessed, and a guess is not checked.
_FATAL_DEFECTS = {"InvalidHeaderDefect", "HeaderMissingRequiredValue", "ObsoleteHeaderDefect",
                  "NonPrintableDefect", "UndecodableBytesDefect"}


def check(content: bytes, owns, own_address: str, policy: str) -> bytes:
    """The message as it may be sent (rewritten under "rewrite"), or FromRefused.
    owns(address) says whether the user may send as address; own_address is
    the one a rewritten field gets."""
    found = fields(content)
    froms = [f for f in found if f.name == "From"]
    senders = [f for f in found if f.name == "Sender"]
    if not froms:
        raise FromRefused("550 5.6.0 The message has no From: field; a message must say who it is from")
    for name, many in (("From", froms), ("Sender", senders)):
        if len(many) > 1:
            raise FromRefused(f"550 5.6.0 The message has {len(many)} {name}: fields; one is allowed")
    replaced: list[tuple[Field, str]] = []
    for field in froms + senders:
        display, address = one_address(field)
        if owns(address):
            continue
        if policy != "rewrite":
            raise FromRefused(f"550 5.7.1 {field.name}: <{address}> is not one of your addresses; "
                              f"send as your own (<{own_address}>)")
        newline = "\r\n" if content[field.start:field.end].endswith(b"\r\n") else "\n"
        replaced.append((field, f"{field.name}: {formataddr((display, own_address), 'utf-8')}{newline}"))
    for field, line in sorted(replaced, key=lambda r: r[0].start, reverse=True):
        content = content[:field.start] + line.encode() + content[field.end:]
    return content
