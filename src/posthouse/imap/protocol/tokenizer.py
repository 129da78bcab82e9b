"""Turn an assembled command (text segments and literals) into tokens.

The reader hands over each command once it is complete, as alternating text
segments and literal payloads, so nothing is ever re-parsed when a literal
arrives: each text segment is scanned exactly once.
"""
from __future__ import annotations

import re

from .tokens import Atom, Command, ParenList, ParseError, String

_ATOM_STOP = frozenset(b' ()"{\r\n')
# Text without any of these is atoms and parentheses only (most commands):
# a regex splits it, instead of a scan a byte at a time. The result is the same.
_NEEDS_SCAN = re.compile(rb'["\[{\x00-\x1f\x7f]')
_PLAIN_TOKEN = re.compile(rb'[()]|[^ ()]+')
# A tag: ASTRING-CHARs but "+" (RFC 9051): printable ASCII but ( ) { % * " \ +.
_TAG_CHARS = "!#$&'\\x2c-\\x5b\\x5d-\\x7a|}~"
_TAG_BYTES = re.compile(rb"[" + _TAG_CHARS.encode() + rb"]+")
_TAG_TEXT = re.compile("[" + _TAG_CHARS + "]+")
# Parenthesized lists nest this deep at most. No command needs more than a few
# levels; the bound keeps every handler that walks a list (SEARCH keys, FETCH
# items, NOTIFY groups...) far from Python's recursion limit.
MAX_LIST_DEPTH = 64


class Literal:
    """A literal payload as read from the wire."""
    __slots__ = ("data", "binary")

    def __init__(self, data: bytes, binary: bool = False):
        self.data = data
        self.binary = binary


def _scan_bracket(text: bytes, i: int) -> int:
    """Return the index just past the ']' that closes the '[' at text[i]."""
    depth = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == 0x22:  # quoted string inside e.g. HEADER.FIELDS ("a")
            i = _scan_quoted(text, i)[1]
            continue
        if c == 0x5B:
            depth += 1
        elif c == 0x5D:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ParseError("unterminated [")


def _scan_quoted(text: bytes, i: int) -> tuple[bytes, int]:
    """Parse a quoted string starting at text[i] == '"'; return (value, end)."""
    out = bytearray()
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == 0x5C:  # backslash
            if i + 1 >= n or text[i + 1] not in (0x22, 0x5C):
                raise ParseError("invalid escape in quoted string")
            out.append(text[i + 1])
            i += 2
            continue
        if c == 0x22:
            return bytes(out), i + 1
        if c == 0 or c in (0x0D, 0x0A):
            raise ParseError("invalid character in quoted string")
        out.append(c)
        i += 1
    raise ParseError("unterminated quoted string")


def tokenize(parts: list, fast: bool = True) -> list:
    """Tokenize text segments (bytes) and Literal payloads into a token list.
    fast=False scans every text segment byte by byte (the reference)."""
    stack: list[list] = [[]]
    for part in parts:
        if isinstance(part, Literal):
            stack[-1].append(String(part.data, is_literal=True, literal8=part.binary))
        elif fast and _NEEDS_SCAN.search(part) is None:
            _split_plain(part, stack)
        else:
            _scan(part, stack)
    if len(stack) != 1:
        raise ParseError("unbalanced (")
    return stack[0]


def _open_list(stack: list[list]) -> None:
    if len(stack) > MAX_LIST_DEPTH:
        raise ParseError("Parenthesized lists nested too deeply")
    stack.append([])


def _split_plain(text: bytes, stack: list[list]) -> None:
    for word in _PLAIN_TOKEN.findall(text):
        if word == b"(":
            _open_list(stack)
        elif word == b")":
            if len(stack) == 1:
                raise ParseError("unbalanced )")
            items = stack.pop()
            stack[-1].append(ParenList(items))
        else:
            try:
                stack[-1].append(Atom(word.decode("utf-8")))
            except UnicodeDecodeError:
                raise ParseError("invalid UTF-8 in atom") from None


def _scan(text: bytes, stack: list[list]) -> None:
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == 0x20:
            i += 1
        elif c == 0x28:  # (
            _open_list(stack)
            i += 1
        elif c == 0x29:  # )
            if len(stack) == 1:
                raise ParseError("unbalanced )")
            items = stack.pop()
            stack[-1].append(ParenList(items))
            i += 1
        elif c == 0x22:
            value, i = _scan_quoted(text, i)
            stack[-1].append(String(value))
        elif c == 0x7B:  # { in the middle of a line is never valid
            raise ParseError("unexpected {")
        elif c < 0x20 or c == 0x7F:
            raise ParseError("control character in command")
        else:
            start = i
            while i < n and text[i] not in _ATOM_STOP:
                if text[i] == 0x5B:  # BODY[...] keeps its brackets
                    try:
                        i = _scan_bracket(text, i)
                    except ParseError:
                        i += 1      # a lone '[' is an atom char (a mailbox name may have one)
                elif text[i] < 0x20 or text[i] == 0x7F:
                    raise ParseError("control character in command")
                else:
                    i += 1
            try:
                word = text[start:i].decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError("invalid UTF-8 in atom") from None
            stack[-1].append(Atom(word))


def split_tag(first_text: bytes) -> str | None:
    """The tag of a (possibly partial) command line, for error replies."""
    word = first_text.split(b" ", 1)[0]
    return word.decode("ascii") if _TAG_BYTES.fullmatch(word) else None


def build_command(parts: list) -> Command:
    tokens = tokenize(parts)
    if not tokens or not isinstance(tokens[0], Atom):
        raise ParseError("missing tag")
    tag = tokens[0].value
    if not _TAG_TEXT.fullmatch(tag):
        raise ParseError("invalid tag")
    if len(tokens) < 2 or not isinstance(tokens[1], Atom):
        raise ParseError("missing command")
    name = tokens[1].upper
    args = tokens[2:]
    uid = False
    if name == "UID":
        if not args or not isinstance(args[0], Atom):
            raise ParseError("UID needs a command")
        name, args, uid = args[0].upper, args[1:], True
    return Command(tag, name, args, uid)
