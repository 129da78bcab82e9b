"""Reading mbox files (RFC 4155): the From_ separator lines, mboxrd/mboxo
quoting of body lines that start with "From ", and the status headers
mail readers keep in mbox (Status, X-Status, X-Keywords) turned into flags.

The file is mapped, not read: a 100k-message mbox of gigabytes costs no
memory beyond the message at hand. A message ends where a line starting
with "From " follows an empty line (or the file ends); writers quote such
body lines (">From "), and one level of ">" is taken off again (mboxrd: any
number of ">" before "From "; for mboxo files, which quote only "From ",
this is the same).
"""
from __future__ import annotations

import calendar
import mmap
import os
import re
from typing import Iterator

from .source import SourceError, SourceMessage

_QUOTED = re.compile(rb"^>(>*From )", re.M)
# The date ending a From_ line: asctime ("Thu Nov 24 18:22:48 1986"), some
# writers adding a zone before the year or after it.
_FROM_DATE = re.compile(
    rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) +(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2})"
    rb" +(\d{1,2}):(\d\d)(?::(\d\d))?(?: +([+-]\d{4}|[A-Z]{1,5}))? +(\d{4})(?: +([+-]\d{4}))?\s*$")
_MONTHS = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), 1)}
# Status: R read, O old (not \Recent). X-Status: A answered, F flagged, T draft, D deleted.
_STATUS_FLAGS = {b"R": "\\Seen"}
_XSTATUS_FLAGS = {b"A": "\\Answered", b"F": "\\Flagged", b"T": "\\Draft", b"D": "\\Deleted"}
_STATUS_HEADERS = (b"status", b"x-status", b"x-keywords")


def from_line_date(line: bytes) -> float | None:
    """The time a From_ line gives (UTC when it names no zone), or None."""
    m = _FROM_DATE.search(line)
    if m is None:
        return None
    mon, day, hh, mm, ss, zone1, year, zone2 = m.groups()
    try:
        t = calendar.timegm((int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss or 0), 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    zone = zone2 or zone1
    if zone and zone[:1] in b"+-":
        offset = int(zone[1:3]) * 3600 + int(zone[3:5]) * 60
        t -= offset if zone[:1] == b"+" else -offset
    return float(t)


def take_status(raw: bytes) -> tuple[bytes, frozenset]:
    """The message without its Status/X-Status/X-Keywords headers, and the
    flags they gave. (They are the mail reader's bookkeeping, not the message's.)"""
    end = raw.find(b"\n\n")
    crlf_end = raw.find(b"\r\n\r\n")
    if crlf_end != -1 and (end == -1 or crlf_end < end):
        end = crlf_end
    head = raw if end == -1 else raw[:end + 1]
    if b"tatus:" not in head and b"eywords:" not in head and b"TATUS:" not in head:
        return raw, frozenset()
    flags: set[str] = set()
    kept = []
    skipping = False
    for line in head.splitlines(keepends=True):
        if skipping and line[:1] in (b" ", b"\t"):
            continue        # a folded continuation of a header taken off
        name, colon, value = line.partition(b":")
        skipping = bool(colon) and name.strip().lower() in _STATUS_HEADERS
        if not skipping:
            kept.append(line)
            continue
        key = name.strip().lower()
        value = value.strip()
        if key == b"status":
            flags.update(_STATUS_FLAGS[bytes([c])] for c in value if bytes([c]) in _STATUS_FLAGS)
        elif key == b"x-status":
            flags.update(_XSTATUS_FLAGS[bytes([c])] for c in value if bytes([c]) in _XSTATUS_FLAGS)
        else:   # X-Keywords: keywords, separated by spaces or commas
            for word in re.split(rb"[\s,]+", value):
                if word and re.fullmatch(rb"[!#-'*+\-.0-9;<-Z^-z|~]+", word):
                    flags.add(word.decode("ascii"))
    rest = b"" if end == -1 else raw[end + 1:]
    return b"".join(kept) + rest, frozenset(flags)


def looks_like_mbox(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(5) == b"From "


def _next_separator(data, pos: int, size: int) -> tuple[int, int]:
    """After pos, the next separator: "From " at a line start after an empty
    line. Returns (where the message before it ends, where the From_ line
    starts); (size, size) if there is none."""
    while True:
        pos = data.find(b"\nFrom ", pos)
        if pos == -1:
            return size, size
        if data[pos - 1:pos] == b"\n":             # "...\n" "\n" "From "
            return pos, pos + 1
        if data[pos - 2:pos] == b"\n\r":           # "...\r\n" "\r\n" "From "
            return pos - 1, pos + 1
        pos += 1


def read_mbox(path: str, folder: str) -> Iterator[SourceMessage | SourceError]:
    """The messages of the mbox file at path, to go to folder. An empty file
    has none; a file that doesn't start with a From_ line is no mbox (SourceError
    raised). A part that is no message (empty, truncated) is a SourceError yielded."""
    try:
        size = os.path.getsize(path)
        if size == 0:
            return
        fallback_date = os.path.getmtime(path)
        with open(path, "rb") as f:
            if f.read(5) != b"From ":
                raise SourceError(f"{path}: not an mbox file (it doesn't start with a \"From \" line)")
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise SourceError(f"{path}: {e.strerror or e}") from None
    try:
        start = 0
        while start < size:
            line_end = data.find(b"\n", start)
            if line_end == -1:      # a From_ line and nothing after: a truncated file
                yield SourceError(f"{path}: truncated at byte {start}: a \"From \" line with no message after it")
                return
            from_line = data[start:line_end]
            body_start = line_end + 1
            end, next_start = _next_separator(data, line_end, size)
            raw = data[body_start:end]     # (the empty line before a separator is the mbox's)
            if end == size:     # the last message: the file's closing empty line is the mbox's too
                if raw.endswith(b"\r\n\r\n"):
                    raw = raw[:-2]
                elif raw.endswith(b"\n\n"):
                    raw = raw[:-1]
            if b">From " in raw:
                raw = _QUOTED.sub(rb"\1", raw)
            raw, flags = take_status(raw)
            start, this_start = next_start, start
            if not raw.strip():
                yield SourceError(f"{path}: the message at byte {this_start} is empty; left out")
                continue
            date = from_line_date(from_line)
            yield SourceMessage(folder, raw, flags, date if date is not None else fallback_date,
                                f"{path} at byte {this_start}")
    finally:
        data.close()
