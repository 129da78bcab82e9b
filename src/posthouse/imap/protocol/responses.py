"""Sans-IO IMAP response reader (the client's direction): bytes in, responses out.

Feed it whatever the socket gave and call next_response() until it returns
None. A response is assembled from its lines and literals ({n} and ~{n}) the
same way the server's CommandReader assembles a command, and tokenized with
the same tokenizer, so there is one codec for both directions. Status text
(after OK/NO/BAD/BYE/PREAUTH and "+") is free text and is split by hand.

Anything malformed raises ResponseError (a ParseError): the caller decides
whether the connection is still usable (it usually is not).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from . import mutf7
from .framing import Framing
from .tokenizer import tokenize
from .tokens import Atom, ParenList, ParseError, String

_LITERAL_AT_END = re.compile(rb"(~?)\{(\d{1,20})\+?\}$")
_STATUS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_NUMBER = re.compile(r"\d{1,20}")


class ResponseError(ParseError):
    """The server sent something that is not an IMAP response."""


# ---------------------------------------------------------------- the values

@dataclass(slots=True)
class Continuation:
    """"+ text": the server waits for a literal or a SASL reply."""
    text: bytes


@dataclass(slots=True)
class StatusResponse:
    """OK/NO/BAD/BYE/PREAUTH, tagged (tag set) or untagged (tag None)."""
    tag: str | None
    status: str                 # upper-case
    code: str | None            # "UIDVALIDITY", "CAPABILITY", "UNAVAILABLE" ...
    code_args: list             # tokens after the code's name (Atom/String/ParenList)
    text: str

    def code_number(self, index: int = 0) -> int | None:
        """The index-th argument of the code as a number ([UIDNEXT 5] -> 5)."""
        if index < len(self.code_args):
            return as_number(self.code_args[index])
        return None


@dataclass(slots=True)
class Fetch:
    seq: int
    attrs: dict             # upper-case name -> value; BODY[...] sections keep their section

    @property
    def uid(self) -> int | None:
        return self.attrs.get("UID")


@dataclass(slots=True)
class Exists:
    count: int


@dataclass(slots=True)
class Recent:
    count: int


@dataclass(slots=True)
class Expunge:
    seq: int


@dataclass(slots=True)
class Vanished:
    earlier: bool
    uids: "UidSet"


@dataclass(slots=True)
class Search:
    numbers: list[int]
    modseq: int | None = None


@dataclass(slots=True)
class ESearch:
    tag: str | None
    uid: bool
    all: "UidSet | None" = None
    min: int | None = None
    max: int | None = None
    count: int | None = None
    modseq: int | None = None
    partial: "list[int] | None" = None     # PARTIAL's window (RFC 5267), in the order sent (a SORT's)


@dataclass(slots=True)
class Status:
    mailbox: str
    items: dict[str, int]


@dataclass(slots=True)
class ListEntry:
    attributes: frozenset[str]      # as sent ("\\HasNoChildren", "\\Sent")
    delimiter: str | None
    name: str                       # decoded (modified UTF-7 -> text where valid)
    raw_name: bytes


@dataclass(slots=True)
class Capability:
    names: frozenset[str]


@dataclass(slots=True)
class Enabled:
    names: frozenset[str]


@dataclass(slots=True)
class Flags:
    flags: tuple[str, ...]


@dataclass(slots=True)
class Data:
    """Any other untagged data ("* NAMESPACE ...", "* ID ..."): the tokens."""
    name: str
    number: int | None
    tokens: list = field(default_factory=list)


class UidSet:
    """A sequence set as ranges (1:5,9 -> [(1, 5), (9, 9)]), never expanded
    unless asked: "1:4294967295" is a valid answer."""
    __slots__ = ("ranges",)

    def __init__(self, ranges: list[tuple[int, int]]):
        self.ranges = ranges

    @classmethod
    def parse(cls, text: str) -> "UidSet":
        ranges = []
        for part in text.split(","):
            a, sep, b = part.partition(":")
            if not _NUMBER.fullmatch(a) or (sep and not _NUMBER.fullmatch(b)):
                raise ResponseError(f"bad sequence set {text[:40]!r}")
            lo, hi = int(a), int(b) if sep else int(a)
            ranges.append((min(lo, hi), max(lo, hi)))
        return cls(ranges)

    def __contains__(self, n: int) -> bool:
        return any(lo <= n <= hi for lo, hi in self.ranges)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __iter__(self):
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    def __eq__(self, other):
        return isinstance(other, UidSet) and list(self) == list(other)

    def __repr__(self):
        return f"UidSet({self.ranges!r})"


def ordered_set(text: str) -> list[int]:
    """A sequence set in the order sent, 5:3 descending (a SORT's answer keeps
    its order; UidSet does not). Bounded: garbage or a huge range is an error."""
    out: list[int] = []
    for part in text.split(","):
        a, sep, b = part.partition(":")
        if not _NUMBER.fullmatch(a) or (sep and not _NUMBER.fullmatch(b)):
            raise ResponseError(f"bad sequence set {text[:40]!r}")
        lo, hi = int(a), int(b) if sep else int(a)
        if abs(hi - lo) + len(out) > 10_000_000:
            raise ResponseError("sequence set too large")
        out.extend(range(lo, hi + 1) if lo <= hi else range(lo, hi - 1, -1))
    return out


# ---------------------------------------------------------------- the reader

class ResponseReader(Framing):
    def __init__(self, max_line: int = 1 << 20, max_literal: int = 256 * 1024 * 1024):
        super().__init__()
        self.max_line = max_line
        self.max_literal = max_literal

    @property
    def mid_response(self) -> bool:
        return bool(self._buf or self._parts) or self._literal is not None

    def next_response(self):
        """The next complete response, or None until more bytes are fed."""
        while True:
            if self._literal is not None:
                if not self._fill_literal():
                    return None
                continue
            line = self._next_line()
            if line is None:
                if len(self._buf) + self._text_len > self.max_line:
                    self._reset()
                    raise ResponseError("response line too long")
                return None
            self._text_len += len(line)
            if self._text_len > self.max_line:
                self._reset()
                raise ResponseError("response line too long")
            m = _LITERAL_AT_END.search(line) if line.endswith(b"}") and not self._is_status(line) else None
            if m is None:
                self._parts.append(line)
                parts = self._parts
                self._parts, self._text_len = [], 0
                try:
                    return parse_response(parts)
                except ResponseError:
                    raise
                except ParseError as e:
                    raise ResponseError(str(e)) from None
            size = int(m.group(2))
            if size > self.max_literal:
                self._reset()
                raise ResponseError(f"literal of {size} octets is over the limit")
            self._parts.append(line[:m.start()])
            self._start_literal(size, bool(m.group(1)))

    def _is_status(self, line: bytes) -> bool:
        """A status line's text may end in "{5}" without being a literal."""
        if self._parts:
            return False
        words = line.split(b" ", 2)
        if words[0] == b"+":
            return True
        return len(words) > 1 and words[1].upper() in (b"OK", b"NO", b"BAD", b"BYE", b"PREAUTH")

    def _reset(self):
        self._parts, self._text_len, self._literal = [], 0, None
        self._buf.clear()


# ---------------------------------------------------------------- parsing

def parse_response(parts: list):
    """A response from its text segments and literals."""
    first = parts[0]
    if first.startswith(b"+"):
        if len(parts) != 1:
            raise ResponseError("continuation with a literal")
        return Continuation(first[2:] if first.startswith(b"+ ") else first[1:])
    tag, sep, rest = first.partition(b" ")
    if not sep or not tag:
        raise ResponseError("response without tag")
    try:
        tag_text = tag.decode("ascii")
    except UnicodeDecodeError:
        raise ResponseError("non-ASCII tag") from None
    word, _, after = rest.partition(b" ")
    upper = word.upper()
    if upper.decode("ascii", "replace") in _STATUS and len(parts) == 1:
        return _status(None if tag_text == "*" else tag_text, upper.decode(), after)
    if tag_text != "*":
        raise ResponseError(f"tagged response without a status: {first[:60]!r}")
    parts = [rest] + parts[1:]
    tokens = tokenize(parts)
    if not tokens or not isinstance(tokens[0], Atom):
        raise ResponseError("untagged response without a name")
    number = None
    if _NUMBER.fullmatch(tokens[0].value):
        number = int(tokens[0].value)
        tokens = tokens[1:]
        if not tokens or not isinstance(tokens[0], Atom):
            raise ResponseError("untagged response without a name")
    name = tokens[0].upper
    args = tokens[1:]
    parser = _NUMBERED.get(name) if number is not None else _NAMED.get(name)
    if parser is None:
        return Data(name, number, args)
    return parser(number, args) if number is not None else parser(args)


def _status(tag, status, after: bytes) -> StatusResponse:
    code, code_args, text = None, [], after
    if after.startswith(b"["):
        end = _code_end(after)
        inner = after[1:end]
        text = after[end + 1:].lstrip(b" ")
        name, _, args = inner.partition(b" ")
        try:
            code = name.decode("ascii").upper()
        except UnicodeDecodeError:
            raise ResponseError("non-ASCII response code") from None
        if args:
            try:
                code_args = tokenize([args])
            except ParseError:
                code_args = [Atom(args.decode("utf-8", "replace"))]     # unknown free-form code text
    return StatusResponse(tag, status, code, code_args, text.decode("utf-8", "replace"))


def _code_end(text: bytes) -> int:
    depth = 0
    for i, c in enumerate(text):
        if c == 0x5B:
            depth += 1
        elif c == 0x5D:
            depth -= 1
            if depth == 0:
                return i
    raise ResponseError("unterminated response code")


def as_number(token) -> int:
    if isinstance(token, Atom) and _NUMBER.fullmatch(token.value):
        return int(token.value)
    if isinstance(token, String) and _NUMBER.fullmatch(token.text()):
        return int(token.text())
    raise ResponseError(f"expected a number, got {_show(token)}")


def as_text(token) -> str | None:
    """An astring/nstring as text; NIL -> None."""
    if isinstance(token, String):
        return token.text()
    if isinstance(token, Atom):
        return None if token.upper == "NIL" else token.value
    raise ResponseError(f"expected a string, got {_show(token)}")


def as_bytes(token) -> bytes | None:
    if isinstance(token, String):
        return token.value
    if isinstance(token, Atom):
        return None if token.upper == "NIL" else token.value.encode()
    raise ResponseError(f"expected a string, got {_show(token)}")


def as_list(token) -> list:
    if isinstance(token, ParenList):
        return token.items
    raise ResponseError(f"expected a list, got {_show(token)}")


def _show(token) -> str:
    return repr(token)[:60]


def _one(args, what):
    if len(args) < 1:
        raise ResponseError(f"{what} without a value")
    return args[0]


# Untagged responses with a number before the name.
def _fetch(seq, args):
    return Fetch(seq, parse_fetch_attrs(as_list(_one(args, "FETCH"))))


_NUMBERED = {
    "EXISTS": lambda n, a: Exists(n),
    "RECENT": lambda n, a: Recent(n),
    "EXPUNGE": lambda n, a: Expunge(n),
    "FETCH": _fetch,
}


def _capability(args):
    return Capability(frozenset(t.upper for t in args if isinstance(t, Atom)))


def _enabled(args):
    return Enabled(frozenset(t.upper for t in args if isinstance(t, Atom)))


def _flags(args):
    return Flags(tuple(_atom_text(t) for t in as_list(_one(args, "FLAGS"))))


def _vanished(args):
    earlier = False
    if args and isinstance(args[0], ParenList):
        earlier = any(isinstance(t, Atom) and t.upper == "EARLIER" for t in args[0].items)
        args = args[1:]
    return Vanished(earlier, UidSet.parse(_atom_text(_one(args, "VANISHED"))))


def _search(args):
    numbers, modseq = [], None
    for t in args:
        if isinstance(t, ParenList):        # (MODSEQ n)
            items = t.items
            if len(items) == 2 and isinstance(items[0], Atom) and items[0].upper == "MODSEQ":
                modseq = as_number(items[1])
            continue
        numbers.append(as_number(t))
    return Search(numbers, modseq)


def _esearch(args):
    out = ESearch(None, False)
    if args and isinstance(args[0], ParenList):      # (TAG "A1")
        items = args[0].items
        if len(items) == 2 and isinstance(items[0], Atom) and items[0].upper == "TAG":
            out.tag = as_text(items[1])
        args = args[1:]
    if args and isinstance(args[0], Atom) and args[0].upper == "UID":
        out.uid = True
        args = args[1:]
    i = 0
    while i + 1 < len(args):
        key = _atom_text(args[i]).upper()
        value = args[i + 1]
        if key == "ALL":
            out.all = UidSet.parse(_atom_text(value))
        elif key in ("MIN", "MAX", "COUNT", "MODSEQ"):
            setattr(out, key.lower(), as_number(value))
        elif key == "PARTIAL" and isinstance(value, ParenList) and len(value.items) == 2:
            window = value.items[1]
            out.partial = [] if isinstance(window, Atom) and window.upper == "NIL" else \
                ordered_set(_atom_text(window))
        i += 2
    return out


def _status_data(args):
    if len(args) < 2:
        raise ResponseError("STATUS without mailbox and items")
    name = _mailbox_name(args[0])[0]
    items = as_list(args[1])
    values = {}
    for i in range(0, len(items) - 1, 2):
        values[_atom_text(items[i]).upper()] = as_number(items[i + 1])
    return Status(name, values)


def _list(args):
    if len(args) < 3:
        raise ResponseError("LIST with too few fields")
    attributes = frozenset(_atom_text(t) for t in as_list(args[0]))
    delimiter = as_text(args[1])
    name, raw = _mailbox_name(args[2])
    return ListEntry(attributes, delimiter, name, raw)


def _mailbox_name(token) -> tuple[str, bytes]:
    raw = as_bytes(token)
    if raw is None:
        raise ResponseError("NIL mailbox name")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape"), raw
    if text.upper() == "INBOX":
        return "INBOX", raw
    try:
        return mutf7.decode(text), raw
    except mutf7.MUTF7Error:
        return text, raw        # a UTF-8 name (UTF8=ACCEPT / IMAP4rev2)


def _atom_text(token) -> str:
    if isinstance(token, Atom):
        return token.value
    if isinstance(token, String):
        return token.text()
    raise ResponseError(f"expected an atom, got {_show(token)}")


_NAMED = {
    "CAPABILITY": _capability,
    "ENABLED": _enabled,
    "FLAGS": _flags,
    "VANISHED": _vanished,
    "SEARCH": _search,
    "ESEARCH": _esearch,
    "STATUS": _status_data,
    "LIST": _list,
    "LSUB": _list,
}


# ---------------------------------------------------------------- FETCH items

_SECTION = re.compile(r"^((?:BODY|BINARY|BINARY\.SIZE)(?:\.PEEK)?\[[^\]]*\])(?:<(\d+)>)?$", re.I)


def parse_fetch_attrs(items: list) -> dict:
    """FETCH's attribute list as a dict: UID, RFC822.SIZE, MODSEQ -> int;
    FLAGS -> tuple of str; INTERNALDATE -> aware datetime; BODY[...] and
    RFC822* -> bytes or None; EMAILID/THREADID -> str; BODYSTRUCTURE,
    ENVELOPE and anything else -> the tokens."""
    attrs: dict = {}
    if len(items) % 2:
        raise ResponseError("FETCH attribute without a value")
    for i in range(0, len(items), 2):
        key_token, value = items[i], items[i + 1]
        if not isinstance(key_token, Atom):
            raise ResponseError(f"FETCH attribute name is not an atom: {_show(key_token)}")
        key = key_token.value
        upper = key.upper()
        if upper in ("UID", "RFC822.SIZE", "X-GM-MSGID", "X-GM-THRID"):
            attrs[upper] = as_number(value)
        elif upper == "MODSEQ":
            attrs[upper] = as_number(_one(as_list(value), "MODSEQ"))
        elif upper == "FLAGS":
            attrs[upper] = tuple(_atom_text(t) for t in as_list(value))
        elif upper == "INTERNALDATE":
            attrs[upper] = parse_internaldate(as_text(value) or "")
        elif upper in ("EMAILID", "THREADID"):
            inner = value.items if isinstance(value, ParenList) else [value]
            attrs[upper] = as_text(inner[0]) if inner else None
        elif upper in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
            attrs[upper] = as_bytes(value)
        elif upper in ("BODYSTRUCTURE", "BODY", "ENVELOPE"):
            attrs[upper] = value
        else:
            m = _SECTION.match(key)
            if m:
                name = m.group(1)
                head, _, section = name.partition("[")
                head = head.upper().replace(".PEEK", "")
                section = section[:-1]
                if head == "BINARY.SIZE":
                    attrs[f"{head}[{section}]"] = as_number(value)
                else:
                    attrs[f"{head}[{section.upper()}]"] = as_bytes(value)
            else:
                attrs[upper] = value
    return attrs


_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)}
_DATE = re.compile(r"^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$")


def parse_internaldate(text: str) -> datetime:
    """ "17-Jul-1996 02:44:25 -0700" as an aware datetime."""
    from datetime import timedelta, timezone
    m = _DATE.match(text)
    month = _MONTHS.get(m.group(2).upper()) if m else None
    if not m or not month:
        raise ResponseError(f"bad INTERNALDATE {text[:40]!r}")
    offset = timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
    tz = timezone(-offset if m.group(7) == "-" else offset)
    try:
        return datetime(int(m.group(3)), month, int(m.group(1)), int(m.group(4)),
                        int(m.group(5)), int(m.group(6)), tzinfo=tz)
    except ValueError:
        raise ResponseError(f"bad INTERNALDATE {text[:40]!r}") from None
