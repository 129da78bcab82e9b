"""ManageSieve's wire format (RFC 5804 4): atoms, quoted strings and
non-synchronizing literals ({n+}) from the client; quoted strings or
literals back."""
from __future__ import annotations

import asyncio


class ProtocolError(ValueError):
    """A malformed command; the text is safe to send back."""


class LineTooLong(Exception):
    """A line or literal past the limits: the session ends (its bytes can't be skipped safely)."""


MAX_LINE = 8 * 1024


async def read_command(reader: asyncio.StreamReader, max_literal: int, first: bytes = b"") -> list | None:
    """The next command as a list of tokens (atoms upper-cased as str, strings
    as str); None at EOF. Literals are read in place as the line continues.
    first: its first byte, already read (see net.Clock)."""
    tokens: list = []
    while True:
        try:
            line = first if first == b"\n" else first + await reader.readuntil(b"\n")
            first = b""
        except asyncio.LimitOverrunError:
            raise LineTooLong() from None
        except asyncio.IncompleteReadError:
            return None
        if len(line) > MAX_LINE:
            raise LineTooLong()
        line = line.rstrip(b"\r\n")
        literal = _literal_size(line)
        if literal is None:
            tokens += tokenize(line)
            return tokens
        head, size = literal
        tokens += tokenize(head)
        if size > max_literal:
            raise LineTooLong()
        try:
            data = await reader.readexactly(size)
        except asyncio.IncompleteReadError:
            return None
        tokens.append(_text(data))


def _literal_size(line: bytes):
    """(what precedes it, size) if the line ends with {n+} or {n}."""
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{")
    if start < 0:
        return None
    inner = line[start + 1:-1].rstrip(b"+")
    if not inner.isdigit() or len(inner) > 12:
        raise ProtocolError("Bad literal")
    return line[:start], int(inner)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("Strings must be UTF-8") from None


def tokenize(line: bytes) -> list:
    out: list = []
    i, n = 0, len(line)
    while i < n:
        c = line[i:i + 1]
        if c == b" ":
            i += 1
        elif c == b'"':
            buf = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise ProtocolError("Unterminated string")
                ch = line[i:i + 1]
                if ch == b"\\" and i + 1 < n:
                    buf += line[i + 1:i + 2]
                    i += 2
                elif ch == b'"':
                    i += 1
                    break
                else:
                    buf += ch
                    i += 1
            out.append(_text(bytes(buf)))
        else:
            end = line.find(b" ", i)
            end = n if end < 0 else end
            atom = line[i:end]
            if not atom.replace(b"-", b"").replace(b"_", b"").isalnum():
                raise ProtocolError("Bad atom")
            out.append(Atom(atom.decode("ascii").upper()))
            i = end
    return out


class Atom(str):
    """A bare word (a command name), told apart from a string argument."""


def quoted(text: str) -> bytes:
    """A string as the server sends it: quoted if it can be, else a literal."""
    data = text.encode("utf-8")
    if len(data) < 1024 and b"\r" not in data and b"\n" not in data:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data
