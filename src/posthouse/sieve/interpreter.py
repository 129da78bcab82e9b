"""Running a Sieve script (RFC 5228) against one message for one recipient.

The result is what to do, not the doing: the mailboxes to file into (with
their flags), whether to discard, and a vacation reply to consider. The
deliverer carries it out. Tests read the message's header fields (decoded),
the envelope and the size; actions follow RFC 5228's implicit keep: unless
something files the message elsewhere or discards it, it is kept in INBOX.

Core actions: keep, fileinto, redirect, discard. Extensions: envelope,
imap4flags (RFC 5232), vacation (RFC 5230), copy (RFC 3894), mailbox
(RFC 5490: :create, mailboxexists).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..mime.address import parse_address_list
from ..mime.headers import decode_words, raw_text, split_fields
from .script import Node

MAX_ACTIONS = 64        # fileinto and the like per run: a runaway script stops here
MAX_REDIRECTS = 5       # per message and recipient (RFC 5228 4.2 asks for a limit)
INBOX = "INBOX"


class SieveRuntimeError(Exception):
    """A script failed while running: the message is kept in INBOX instead."""


@dataclass
class MessageFacts:
    """What tests look at: header fields (lower-cased names, values in order),
    the envelope, the size."""
    fields: list[tuple[str, str]]
    size: int
    mail_from: str
    rcpt_to: str
    mailboxes: set[str] = field(default_factory=set)    # the recipient's, for mailboxexists

    @classmethod
    def from_message(cls, raw: bytes, header_size: int, mail_from: str, rcpt_to: str) -> MessageFacts:
        pairs = [(name, decode_words(raw_text(value)).strip()) for name, value in split_fields(raw[:header_size])]
        return cls(pairs, len(raw), mail_from or "", rcpt_to or "")

    def header(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.fields if n == name]


@dataclass
class FileInto:
    mailbox: str
    flags: frozenset
    create: bool = False


@dataclass
class Vacation:
    reason: str
    days: int
    subject: str | None
    from_: str | None
    addresses: list[str]
    handle: str


@dataclass
class Outcome:
    deliveries: list[FileInto] = field(default_factory=list)
    vacation: Vacation | None = None
    discarded: bool = False
    redirects: list[str] = field(default_factory=list)


class _Stop(Exception):
    pass


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# -- comparators and match types (RFC 5228 2.7) -------------------------------------
def _fold(comparator: str, text: str) -> str:
    if comparator == "i;octet":
        return text
    if comparator == "i;ascii-casemap":
        return text.translate(_ASCII_LOWER)
    raise SieveRuntimeError(f"Unsupported comparator {comparator}")


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _glob(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _matches(node: Node, values: list[str], keys: list[str]) -> bool:
    comparator = node.tags.get(":comparator", "i;ascii-casemap")
    if not isinstance(comparator, str):
        comparator = "i;ascii-casemap"
    folded_keys = [_fold(comparator, k) for k in keys]
    for value in values:
        v = _fold(comparator, value)
        for k in folded_keys:
            if ":contains" in node.tags:
                if k in v:
                    return True
            elif ":matches" in node.tags:
                if _glob(k).fullmatch(v):
                    return True
            elif v == k:                # :is, the default
                return True
    return False


def _address_parts(node: Node, addresses: list[str]) -> list[str]:
    """The part of each address the test compares (:all, :localpart, :domain)."""
    out = []
    for address in addresses:
        local, at, domain = address.rpartition("@")
        if not at:
            local, domain = address, ""
        if ":localpart" in node.tags:
            out.append(local)
        elif ":domain" in node.tags:
            out.append(domain)
        else:
            out.append(address)
    return out


def _header_addresses(facts: MessageFacts, names: list[str]) -> list[str]:
    found = []
    for name in names:
        for value in facts.header(name):
            for name_, _adl, mailbox, host in parse_address_list(value):
                if mailbox is not None and host is not None:
                    found.append(f"{mailbox}@{host}")
    return found


# -- the run ------------------------------------------------------------------------
class Run:
    def __init__(self, facts: MessageFacts):
        self.facts = facts
        self.flags: set[str] = set()        # imap4flags' internal variable
        self.outcome = Outcome()
        self.kept = False                   # an explicit keep
        self.cancel_implicit_keep = False
        self.actions = 0

    def execute(self, nodes) -> Outcome:
        try:
            self._block(nodes)
        except _Stop:
            pass
        if not self.cancel_implicit_keep and not self.kept:
            self._file(INBOX, frozenset(self.flags))
        return self.outcome

    def _block(self, nodes) -> None:
        last_if = None      # whether the last if/elsif in this block ran a branch
        for node in nodes:
            name = node.name
            if name == "if":
                last_if = self._test(node.tests[0])
                if last_if:
                    self._block(node.children)
            elif name == "elsif":
                if last_if is None:
                    raise SieveRuntimeError("elsif without if")
                if not last_if:
                    last_if = self._test(node.tests[0])
                    if last_if:
                        self._block(node.children)
            elif name == "else":
                if last_if is None:
                    raise SieveRuntimeError("else without if")
                if not last_if:
                    self._block(node.children)
                last_if = None
            else:
                last_if = None
                self._action(node)

    # -- tests --------------------------------------------------------------------
    def _test(self, node: Node) -> bool:
        name, facts = node.name, self.facts
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self._test(node.tests[0])
        if name == "allof":
            return all(self._test(t) for t in node.tests)
        if name == "anyof":
            return any(self._test(t) for t in node.tests)
        if name == "exists":
            return all(facts.header(h) for h in _as_list(node.args.get("header-names")))
        if name == "size":
            limit = node.args.get("limit", 0)
            return facts.size > limit if ":over" in node.tags else facts.size < limit
        if name == "header":
            values = [v for h in _as_list(node.args.get("header-names")) for v in facts.header(h)]
            return _matches(node, values, _as_list(node.args.get("key-list")))
        if name == "address":
            addresses = _header_addresses(facts, _as_list(node.args.get("header-list")))
            return _matches(node, _address_parts(node, addresses), _as_list(node.args.get("key-list")))
        if name == "envelope":
            addresses = []
            for part in _as_list(node.args.get("header-list")):
                part = part.lower()
                if part == "from":
                    addresses.append(facts.mail_from)
                elif part == "to":
                    addresses.append(facts.rcpt_to)
            return _matches(node, _address_parts(node, addresses), _as_list(node.args.get("key-list")))
        if name == "hasflag":
            variables = _as_list(node.args.get("list-of-flags") or node.args.get("key-list"))
            return _matches(node, sorted(self.flags), variables)
        if name == "mailboxexists":
            return all(m in facts.mailboxes for m in _as_list(node.args.get("mailbox-names")))
        raise SieveRuntimeError(f"Unsupported test {name}")

    # -- actions ------------------------------------------------------------------
    def _count(self) -> None:
        self.actions += 1
        if self.actions > MAX_ACTIONS:
            raise SieveRuntimeError("Too many actions")

    def _flags_of(self, node: Node) -> frozenset:
        if ":flags" in node.tags:
            return frozenset(_split_flags(_as_list(node.tags[":flags"])))
        return frozenset(self.flags)

    def _file(self, mailbox: str, flags: frozenset, create: bool = False) -> None:
        for d in self.outcome.deliveries:
            if d.mailbox == mailbox:        # the same mailbox twice: once (RFC 5228 4.2)
                d.flags = d.flags | flags
                return
        self.outcome.deliveries.append(FileInto(mailbox, flags, create))

    def _action(self, node: Node) -> None:
        name = node.name
        if name == "require":
            return
        if name == "stop":
            raise _Stop()
        if name == "keep":
            self._count()
            self.kept = True
            self._file(INBOX, self._flags_of(node))
        elif name == "redirect":
            self._count()
            address = str(node.args.get("address") or "").strip()
            local, at, domain = address.rpartition("@")
            if not (local and at and domain) or any(c in address for c in " <>\r\n,"):
                raise SieveRuntimeError(f"redirect to an invalid address: {address!r}")
            if address.lower() not in (a.lower() for a in self.outcome.redirects):
                if len(self.outcome.redirects) >= MAX_REDIRECTS:
                    raise SieveRuntimeError("Too many redirects")
                self.outcome.redirects.append(address)
            if ":copy" not in node.tags:
                self.cancel_implicit_keep = True
        elif name == "discard":
            self.cancel_implicit_keep = True
            self.outcome.discarded = True
        elif name == "fileinto":
            self._count()
            mailbox = node.args.get("mailbox") or INBOX
            self._file(mailbox, self._flags_of(node), bool(node.tags.get(":create")))
            if ":copy" not in node.tags:
                self.cancel_implicit_keep = True
        elif name in ("setflag", "addflag", "removeflag"):
            flags = set(_split_flags(_as_list(node.args.get("list-of-flags"))))
            if name == "setflag":
                self.flags = flags
            elif name == "addflag":
                self.flags |= flags
            else:
                self.flags = {f for f in self.flags if f.lower() not in {x.lower() for x in flags}}
        elif name == "vacation":
            if self.outcome.vacation is None:
                tags = node.tags
                reason = node.args.get("reason", "")
                self.outcome.vacation = Vacation(
                    reason=reason, days=max(1, int(tags.get(":days", 7))) if ":days" in tags else 7,
                    subject=tags.get(":subject") if isinstance(tags.get(":subject"), str) else None,
                    from_=tags.get(":from") if isinstance(tags.get(":from"), str) else None,
                    addresses=[a for a in _as_list(tags.get(":addresses")) if isinstance(a, str)],
                    handle=str(tags.get(":handle")) if ":handle" in tags else reason[:200])
        else:
            raise SieveRuntimeError(f"Unsupported action {name}")


def _split_flags(values: list[str]) -> list[str]:
    """Each string may hold several space-separated flags (RFC 5232 3)."""
    return [f for v in values for f in str(v).split() if f]


def evaluate(nodes, facts: MessageFacts) -> Outcome:
    """What the script says to do with this message (SieveRuntimeError if it fails)."""
    return Run(facts).execute(nodes)
