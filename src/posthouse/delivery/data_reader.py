"""The message after DATA (RFC 5321 4.1.1.4), read in bulk.

aiosmtpd reads it a line at a time, a few microseconds of Python per line:
2 ms of the event loop for a 50 KB message. Here the stream is read up to the
terminating CRLF.CRLF in large pieces and the per-line work (the length
limit, removing the dot stuffing of 4.5.2) is done on the whole message by
bytes methods. The replies are aiosmtpd's: a line longer than the line limit
or a message over the size limit is refused once the data has ended.

The terminator is searched for as LF "." CRLF, so the stream must still
hold the LF before it: where a piece ends a line (and at the start of the
data) the next read goes only up to the first CR, which is either the "."
line's or leaves the line's LF in the stream.
"""
from __future__ import annotations

import asyncio

TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH = "552 Error: Too much mail data"

_TERMINATOR_TAIL = b"\n.\r\n"       # the CR before it is checked on our side


class ConnectionLost(Exception):
    """The client went away before the end of the data."""


async def read_message(reader: asyncio.StreamReader, line_limit: int,
                       size_limit: int | None) -> tuple[bytes | None, str | None]:
    """(the message, None), or (None, the refusal) once the data has ended.

    line_limit: the longest line allowed, CRLF included. size_limit: the most
    data bytes (as sent, dot stuffing included; None or 0: no limit). Past
    the size limit nothing more is kept, so a huge message costs no memory.
    """
    pieces: list[bytes] = []
    total = 0               # data bytes read (the terminator's ".\r\n" not counted)
    # Past the size limit only what is needed to name the refusal is kept:
    # whether a too long line came first.
    keep = size_limit + line_limit + 2 if size_limit else None
    last = b""              # the last byte read
    at_line_start = True
    while True:
        if at_line_start:
            piece, found = await _read_until(reader, b"\r")
            if found and piece == b".\r":
                following = await _read_exactly(reader, 1)
                if following == b"\n":
                    break                       # "." alone on a line: the end
                piece += following
        else:
            piece, found = await _read_until(reader, _TERMINATOR_TAIL)
            if found and (piece[-5:-4] if len(piece) >= 5 else last) == b"\r":
                piece = piece[:-3]              # CRLF "." CRLF: the end (the CRLF is the last line's)
                if keep is None or total <= keep:
                    pieces.append(piece)
                total += len(piece)
                break
        # Where a piece ends a line, the next may be the "." alone.
        at_line_start = piece.endswith(b"\r\n")
        last = piece[-1:]
        if keep is None or total <= keep:
            pieces.append(piece)
        total += len(piece)
    data = b"".join(pieces)
    refusal = _refusal(data, line_limit, size_limit, bool(size_limit) and total > size_limit)
    if refusal:
        return None, refusal
    # Dot stuffing (4.5.2): a line's leading "." was doubled by the sender.
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n"), None


def _refusal(data: bytes, line_limit: int, size_limit: int | None, over: bool) -> str | None:
    """aiosmtpd's answer: a too long line or the size limit passed, whichever
    it met first (data: all of it, or, when over, a little past the limit)."""
    if len(data) + 2 <= line_limit:
        return TOO_MUCH if over else None       # no line can be too long: no need to split
    lines = data.split(b"\r\n")
    if max(map(len, lines)) + 2 <= line_limit:
        return TOO_MUCH if over else None
    if not over:
        return TOO_LONG
    # Both (rare: only an oversized message gets here). aiosmtpd sees a line
    # longer than its reader's limit as soon as it reads it, and a little
    # shorter one after counting it.
    offset = 0
    for line in lines:
        length = len(line) + 2
        if offset > size_limit:
            break
        if length > line_limit:
            seen_at = offset if length > line_limit + 2 else offset + length
            return TOO_LONG if seen_at <= size_limit else TOO_MUCH
        offset += length
    return TOO_MUCH


async def _read_until(reader: asyncio.StreamReader, separator: bytes) -> tuple[bytes, bool]:
    """Up to and including separator (True), or, where it isn't within the
    reader's limit, as much as may be taken without cutting it (False)."""
    try:
        return await reader.readuntil(separator), True
    except asyncio.LimitOverrunError as e:
        return await _read_exactly(reader, e.consumed), False
    except asyncio.IncompleteReadError as e:
        raise ConnectionLost() from e


async def _read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    try:
        return await reader.readexactly(n)
    except asyncio.IncompleteReadError as e:
        raise ConnectionLost() from e
