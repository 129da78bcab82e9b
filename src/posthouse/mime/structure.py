"""The MIME part tree of a message, with byte offsets into the raw message.

Built once when a message arrives; FETCH BODY[section] and BINARY then read
byte ranges of the stored blob without parsing MIME again.
"""
from __future__ import annotations

from .headers import HeaderBlock, header_end, raw_text, read_quoted

MAX_DEPTH = 64
MAX_PARTS = 5000


class Part:
    __slots__ = ("hstart", "bstart", "end", "mtype", "stype", "params", "headers",
                 "children", "message", "lines")

    def __init__(self, hstart: int, bstart: int, end: int):
        self.hstart = hstart
        self.bstart = bstart
        self.end = end
        self.mtype = "text"
        self.stype = "plain"
        self.params: list[tuple[str, str]] = []
        self.headers: HeaderBlock | None = None
        self.children: list[Part] | None = None   # multipart
        self.message: Part | None = None          # message/rfc822: the embedded message
        self.lines = 0

    @property
    def encoding(self) -> str:
        enc = self.headers.text("content-transfer-encoding") if self.headers else None
        return (enc or "7bit").strip().lower()

    def to_json(self) -> dict:
        d = {"h": self.hstart, "b": self.bstart, "e": self.end,
             "t": f"{self.mtype}/{self.stype}", "x": self.encoding}
        if self.children is not None:
            d["c"] = [c.to_json() for c in self.children]
        if self.message is not None:
            d["m"] = self.message.to_json()
        return d


def parse_content_type(value: str | None, default: tuple[str, str]):
    """('type', 'subtype', [(name, value), ...]) with raw parameter values."""
    if not value:
        return default[0], default[1], []
    head, _, rest = value.partition(";")
    mtype, slash, stype = head.strip().partition("/")
    mtype, stype = mtype.strip(), stype.strip()
    if not slash or not mtype or not stype or any(c in mtype + stype for c in ' \t"()<>@,:\\[]?='):
        mtype, stype = default
    return mtype, stype, parse_params(rest)


def parse_params(text: str) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t;":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        name = text[i:eq].strip()
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            value, i = read_quoted(text, i)
            semi = text.find(";", i)
            i = n if semi < 0 else semi
        else:
            semi = text.find(";", i)
            semi = n if semi < 0 else semi
            value = text[i:semi].strip()
            i = semi
        if name and not any(c in name for c in ' \t"'):
            params.append((name, value))
    return params


def _count_lines(raw: bytes, start: int, end: int) -> int:
    if end <= start:
        return 0
    lines = raw.count(b"\n", start, end)
    if raw[end - 1:end] != b"\n":
        lines += 1
    return lines


class _Budget:
    def __init__(self):
        self.parts = 0


def parse_part(raw: bytes, hstart: int, end: int, default=("text", "plain"),
               depth: int = 0, budget: _Budget | None = None) -> Part:
    """Parse the entity at raw[hstart:end] (header block then body)."""
    budget = budget or _Budget()
    budget.parts += 1
    bstart = header_end(raw, hstart, end)
    part = Part(hstart, bstart, end)
    part.headers = HeaderBlock(raw[hstart:bstart])
    ctype = part.headers.first("content-type")
    part.mtype, part.stype, part.params = parse_content_type(
        None if ctype is None else raw_text(ctype), default)
    mt = part.mtype.lower()
    st = part.stype.lower()
    too_deep = depth >= MAX_DEPTH or budget.parts >= MAX_PARTS
    if mt == "multipart" and not too_deep:
        boundary = next((v for k, v in part.params if k.lower() == "boundary"), None)
        if boundary:
            child_default = ("message", "rfc822") if st == "digest" else ("text", "plain")
            part.children = [parse_part(raw, s, e, child_default, depth + 1, budget)
                             for s, e in _split_multipart(raw, bstart, end, boundary.encode("utf-8", "replace"))]
        if not part.children:
            # A multipart without usable parts: one empty text/plain child, as
            # clients expect a multipart to have at least one.
            empty = Part(bstart, bstart, bstart)
            empty.headers = HeaderBlock(b"")
            part.children = [empty]
    elif mt == "message" and st in ("rfc822", "global") and not too_deep:
        part.message = parse_part(raw, bstart, end, ("text", "plain"), depth + 1, budget)
        part.lines = _count_lines(raw, bstart, end)
    elif mt == "text" or mt == "message":
        part.lines = _count_lines(raw, bstart, end)
    return part


def _split_multipart(raw: bytes, start: int, end: int, boundary: bytes):
    """(start, end) of each body part between the delimiters of a multipart."""
    delim = b"--" + boundary
    spans = []
    pos = start
    part_start = None
    while True:
        i = raw.find(delim, pos, end)
        if i < 0:
            break
        at_line_start = i == start or raw[i - 1:i] == b"\n"
        after = i + len(delim)
        if not at_line_start:
            pos = after
            continue
        is_close = raw[after:after + 2] == b"--"
        rest_end = raw.find(b"\n", after, end)
        rest = raw[after + (2 if is_close else 0): end if rest_end < 0 else rest_end]
        if rest.strip(b" \t\r"):
            pos = after  # "--boundaryX": a longer boundary, not ours
            continue
        if part_start is not None:
            # The CRLF before the delimiter belongs to the delimiter.
            stop = i
            if stop > part_start and raw[stop - 1:stop] == b"\n":
                stop -= 1
                if stop > part_start and raw[stop - 1:stop] == b"\r":
                    stop -= 1
            spans.append((part_start, max(part_start, stop)))
        if is_close:
            return spans
        part_start = end if rest_end < 0 else rest_end + 1
        pos = part_start
        if len(spans) >= MAX_PARTS:
            return spans
    if part_start is not None:
        spans.append((part_start, end))   # no closing delimiter: runs to the end
    return spans


def resolve(root: Part, numbers: list[int]) -> Part | None:
    """The part a section number like 1.2.3 names, or None."""
    node = root
    for i, n in enumerate(numbers):
        if i > 0:
            if node.message is not None:
                node = node.message      # into the embedded message
            elif node.children is None:
                return None              # a leaf has no sub-parts
        if node.children is not None:
            if not 1 <= n <= len(node.children):
                return None
            node = node.children[n - 1]
        elif n != 1:
            return None                  # part 1 of a single-part message is its body
    return node
