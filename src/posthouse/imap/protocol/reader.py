"""Sans-IO IMAP command reader: bytes in, events out.

Feed it whatever the socket gave; call next_event() until it returns None.
Literals ({n}, {n+}, ~{n}) are collected as they stream in; a synchronizing
literal yields NeedContinuation so the caller can send "+ ..." first. Sizes
are checked before a literal is read, so an oversized APPEND costs nothing:
each literal against max_literal, and all of one command's together against
max_command_literals (what one command may make the server hold). The
transport lowers these limits before login (see imap/server.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .framing import Framing
from .tokenizer import Literal, build_command, split_tag
from .tokens import Command, ParseError

_LITERAL_AT_END = re.compile(rb"(~?)\{(\d{1,20})(\+?)\}$")


@dataclass(slots=True)
class NeedContinuation:
    """A synchronizing literal was announced; send a continuation request."""
    size: int


@dataclass(slots=True)
class BadCommand:
    tag: str | None
    reason: str


@dataclass(slots=True)
class LiteralTooBig:
    """A synchronizing literal over the limit: refused, command discarded."""
    tag: str | None
    size: int


@dataclass(slots=True)
class Fatal:
    """The stream cannot be resynchronized; say BYE and close. With a tag
    (a non-synchronizing literal over the limit, RFC 7888 4): the command is
    answered BAD [TOOBIG] first."""
    reason: str
    tag: str | None = None


@dataclass(slots=True)
class RawLine:
    """A line read in raw mode (IDLE's DONE, an AUTHENTICATE response)."""
    line: bytes


class CommandReader(Framing):
    def __init__(self, max_line: int = 65536, max_literal: int = 64 * 1024 * 1024,
                 max_literals_per_command: int = 1000, max_command_literals: int | None = None):
        super().__init__()
        self.max_line = max_line
        self.max_literal = max_literal
        self.max_literals = max_literals_per_command
        # Bytes of all literals of one command together (None: max_literal).
        self.max_command_literals = max_literal if max_command_literals is None else max_command_literals
        self._literal_total = 0         # of the command so far
        self.raw_mode = False           # next complete line comes back as RawLine
        self.closed = False

    @property
    def pending_bytes(self) -> int:
        """Bytes fed and not yet taken into a command."""
        return len(self._buf)

    @property
    def in_literal(self) -> bool:
        return self._literal is not None

    @property
    def mid_command(self) -> bool:
        """Part of a command (a line, or a literal) is here and the rest is not."""
        return bool(self._buf or self._parts) or self._literal is not None

    def next_event(self):
        if self.closed:
            return None
        while True:
            if self._literal is not None:
                if not self._fill_literal():
                    return None
                continue
            line = self._next_line()
            if line is None:
                if len(self._buf) > self.max_line:
                    self.closed = True
                    return Fatal("Line too long")
                return None
            if self.raw_mode:
                self.raw_mode = False
                if len(line) > self.max_line:
                    self.closed = True
                    return Fatal("Line too long")
                return RawLine(line)
            self._text_len += len(line)
            if self._text_len > self.max_line:
                return self._abort(Fatal("Line too long"), fatal=True)
            m = _LITERAL_AT_END.search(line) if line.endswith(b"}") else None
            if m is None:
                self._parts.append(line)
                return self._finish()
            size = int(m.group(2))
            nonsync = bool(m.group(3))
            self._parts.append(line[: m.start()])
            tag = split_tag(self._parts[0]) if self._parts else None
            if size > self.max_literal or self._literal_total + size > self.max_command_literals:
                if nonsync:
                    # Its bytes are on their way and can't be told from commands: close.
                    return self._abort(Fatal("Literal too big", tag), fatal=True)
                return self._abort(LiteralTooBig(tag, size))
            if sum(isinstance(p, Literal) for p in self._parts) >= self.max_literals:
                return self._abort(Fatal("Too many literals"), fatal=True)
            self._literal_total += size
            self._start_literal(size, bool(m.group(1)))
            if not nonsync:
                return NeedContinuation(size)

    def _finish(self):
        parts, self._parts, self._text_len, self._literal_total = self._parts, [], 0, 0
        try:
            return build_command(parts)
        except ParseError as e:
            first = parts[0] if parts and isinstance(parts[0], bytes) else b""
            return BadCommand(split_tag(first), str(e))

    def _abort(self, event, fatal: bool = False):
        self._parts, self._text_len, self._literal_total = [], 0, 0
        if fatal:
            self.closed = True
        return event


__all__ = ["CommandReader", "Command", "NeedContinuation", "BadCommand",
           "LiteralTooBig", "Fatal", "RawLine"]
