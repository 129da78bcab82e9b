"""Reading a command's arguments, with IMAP's grammar rules."""
from __future__ import annotations

import re
from datetime import datetime, timezone, timedelta

from .protocol import mutf7
from .protocol.tokens import Atom, ParenList, ParseError, String


class SequenceSet:
    """A parsed sequence-set; '*' is resolved against the largest number in use."""
    __slots__ = ("ranges", "saved")

    def __init__(self, ranges: list[tuple[int | None, int | None]], saved: bool = False):
        self.ranges = ranges   # None stands for '*'
        self.saved = saved     # '$' (SEARCHRES)

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        out = []
        for lo, hi in self.ranges:
            lo = largest if lo is None else lo
            hi = largest if hi is None else hi
            if lo > hi:
                lo, hi = hi, lo
            out.append((lo, hi))
        return out

    def contains_star(self) -> bool:
        return any(lo is None or hi is None for lo, hi in self.ranges)


_SEQ_RE = re.compile(r"^(\d+|\*)(?::(\d+|\*))?$")


def parse_sequence_set(text: str) -> SequenceSet:
    if text == "$":
        return SequenceSet([], saved=True)
    ranges = []
    for piece in text.split(","):
        m = _SEQ_RE.match(piece)
        if not m:
            raise ParseError("Invalid sequence set")
        lo = None if m.group(1) == "*" else int(m.group(1))
        hi = lo if m.group(2) is None else (None if m.group(2) == "*" else int(m.group(2)))
        if (lo is not None and not 0 < lo < 2**32) or (hi is not None and not 0 < hi < 2**32):
            raise ParseError("Invalid sequence number")
        ranges.append((lo, hi))
    return SequenceSet(ranges)


def format_uid_set(uids) -> str:
    """Compact a sorted iterable of numbers into 1:3,5,7:9."""
    spans: list[list[int]] = []
    for n in uids:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return format_spans(spans)


def format_spans(spans) -> str:
    """Ascending (first, last) ranges as a set: 1:3,5,7:9."""
    return ",".join(f"{lo}" if lo == hi else f"{lo}:{hi}" for lo, hi in spans)


_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_DATETIME_RE = re.compile(r"^\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$")
_DATE_RE = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$")


def parse_datetime(text: str) -> float:
    m = _DATETIME_RE.match(text)
    if not m or m.group(2).lower() not in _MONTHS:
        raise ParseError("Invalid date-time")
    day, mon, year, hh, mm, ss, sign, tzh, tzm = m.groups()
    offset = timedelta(hours=int(tzh), minutes=int(tzm)) * (-1 if sign == "-" else 1)
    try:
        dt = datetime(int(year), _MONTHS[mon.lower()], int(day), int(hh), int(mm), int(ss),
                      tzinfo=timezone(offset))
    except ValueError:
        raise ParseError("Invalid date-time") from None
    return dt.timestamp()


def parse_date(text: str):
    m = _DATE_RE.match(text)
    if not m or m.group(2).lower() not in _MONTHS:
        raise ParseError("Invalid date")
    try:
        return datetime(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1))).date()
    except ValueError:
        raise ParseError("Invalid date") from None


def format_datetime(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%d-") + ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                 "Nov", "Dec"][dt.month - 1] + dt.strftime("-%Y %H:%M:%S +0000")


class ArgReader:
    def __init__(self, tokens: list, utf8_names: bool = False):
        self.tokens = tokens
        self.pos = 0
        self.utf8_names = utf8_names

    def more(self) -> bool:
        return self.pos < len(self.tokens)

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self, what: str = "argument"):
        if self.pos >= len(self.tokens):
            raise ParseError(f"Missing {what}")
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def end(self) -> None:
        if self.pos != len(self.tokens):
            raise ParseError("Unexpected extra arguments")

    def atom(self, what: str = "argument") -> str:
        tok = self.next(what)
        if not isinstance(tok, Atom):
            raise ParseError(f"Expected {what}")
        return tok.value

    def astring(self, what: str = "argument") -> str:
        tok = self.next(what)
        if isinstance(tok, Atom):
            return tok.value
        if isinstance(tok, String):
            return tok.text()
        raise ParseError(f"Expected {what}")

    def astring_bytes(self, what: str = "argument") -> bytes:
        tok = self.next(what)
        if isinstance(tok, Atom):
            return tok.value.encode()
        if isinstance(tok, String):
            return tok.value
        raise ParseError(f"Expected {what}")

    def plist(self, what: str = "list") -> list:
        tok = self.next(what)
        if not isinstance(tok, ParenList):
            raise ParseError(f"Expected {what}")
        return tok.items

    def number(self, what: str = "number") -> int:
        text = self.atom(what)
        if not text.isdigit() or len(text) > 20:
            raise ParseError(f"Invalid {what}")
        return int(text)

    def sequence_set(self) -> SequenceSet:
        return parse_sequence_set(self.atom("sequence set"))

    def mailbox(self) -> str:
        return decode_mailbox_name(self.astring("mailbox name"), self.utf8_names)


def decode_mailbox_name(name: str, utf8: bool) -> str:
    """Wire name -> stored name: mUTF-7 for rev1, INBOX case-folded, checked."""
    if not utf8:
        try:
            name = mutf7.decode(name)
        except mutf7.MUTF7Error as e:
            # Well-formed IMAP, just a name no mailbox can have: NO, as for any
            # other name that doesn't exist (Dovecot answers the same).
            from .errors import no
            raise no(f"Invalid mailbox name: {e}", "CANNOT") from None
    if name.upper() == "INBOX":
        name = "INBOX"
    elif name[:6].upper() == "INBOX/":
        name = "INBOX" + name[5:]
    return name


def check_mailbox_name(name: str) -> str | None:
    """Why a name cannot be created, or None if it can."""
    if not name:
        return "Empty mailbox name"
    if len(name) > 255:
        return "Mailbox name too long"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "Control characters in mailbox name"
    if "*" in name or "%" in name:
        return "Wildcards in mailbox name"
    parts = name.split("/")
    if any(p == "" for p in parts):
        return "Empty hierarchy level in mailbox name"
    if len(parts) > 16:
        return "Mailbox hierarchy too deep"
    if parts[0][:1] in _OTHER_NAMESPACE_MARKS or parts[0].casefold() in _OTHER_NAMESPACE_NAMES:
        return f"A name under {parts[0]!r} would look like other users' or shared mailboxes"
    return None


# Our NAMESPACE is (("" "/")) NIL NIL: every name is the user's own. Names that
# clients read as other users' or shared mailboxes (the prefixes other servers
# give those namespaces: "#shared/", "~alice/", "Other Users/", "Shared
# Folders/") would pass a user's own folders off as someone else's: refused.
_OTHER_NAMESPACE_MARKS = ("#", "~")
_OTHER_NAMESPACE_NAMES = {"other users", "shared folders", "public folders"}


def encode_mailbox_name(name: str, utf8: bool) -> str:
    return name if utf8 else mutf7.encode(name)
