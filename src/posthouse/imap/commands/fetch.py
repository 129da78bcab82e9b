"""FETCH: every data item of RFC 9051 and RFC 3501, and BINARY (RFC 3516)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...mime.decode import UnknownEncoding, decode_transfer
from ...mime.sections import resolve, section_range, filter_header_fields
from ...store.api import DiskFull
from ..args import format_datetime
from ..errors import bad, no
from ..protocol.tokens import Atom, ParenList, ParseError
from ..protocol.writer import literal
from .resync import parse_fetch_modifiers, send_vanished_earlier

_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
_SIMPLE = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE",
           "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ", "SAVEDATE"}
# Items answered from the shared in-memory index, without the store.
_INDEX_ONLY = {"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"}
_SECTION_ATT = re.compile(r"^(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK|BINARY\.SIZE)\[(.*)\](?:<(\d+)(?:\.(\d+))?>)?$",
                          re.DOTALL | re.IGNORECASE)
_SECTION = re.compile(r"^((?:[1-9]\d*\.)*[1-9]\d*)?(?:\.?(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?"
                      r"(?:\s*\(([^()]*)\))?$", re.DOTALL | re.IGNORECASE)


@dataclass
class Item:
    name: str                  # UID, FLAGS, BODY[], BINARY.SIZE[] ...
    numbers: list | None = None
    keyword: str | None = None
    fields: list | None = None
    partial: tuple | None = None
    peek: bool = True

    @property
    def needs_data(self) -> bool:
        return self.name not in _INDEX_ONLY

    @property
    def needs_bytes(self) -> bool:
        return self.needs_data and self.name not in ("ENVELOPE", "BODYSTRUCTURE", "SAVEDATE") and not (
            self.name == "BODY" and self.numbers is None)


@dataclass
class BlobSpan:
    """A range of a big message, sent from its file in chunks instead of read whole."""
    key: str
    start: int
    end: int


# Ranges at least this big are streamed from the blob file.
_STREAM_FROM = 256 * 1024


def _parse_item(text: str) -> Item:
    upper = text.upper()
    if upper in _SIMPLE:
        return Item(upper, peek=upper not in ("RFC822", "RFC822.TEXT"))
    m = _SECTION_ATT.match(text)
    if not m:
        raise ParseError(f"Unknown FETCH item {text}")
    kind, spec, start, length = m.group(1).upper(), m.group(2), m.group(3), m.group(4)
    sm = _SECTION.match(spec)
    if not sm:
        raise ParseError("Invalid section " + spec)
    numbers = [int(n) for n in sm.group(1).split(".")] if sm.group(1) else []
    keyword = sm.group(2).upper() if sm.group(2) else None
    fields = None
    if keyword in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        if sm.group(3) is None:
            raise ParseError("HEADER.FIELDS needs a field list")
        fields = [f.strip('"') for f in sm.group(3).split()]
        if not fields:
            raise ParseError("Empty header field list")
    elif sm.group(3) is not None:
        raise ParseError("Unexpected field list")
    if keyword == "MIME" and not numbers:
        raise ParseError("MIME needs a part number")
    if kind.startswith("BINARY") and keyword is not None:
        raise ParseError("BINARY takes part numbers only")
    if kind == "BINARY.SIZE" and start is not None:
        raise ParseError("BINARY.SIZE takes no partial range")
    partial = None
    if start is not None:
        if length is None:
            raise ParseError("Partial needs a length")
        partial = (int(start), int(length))
    base = {"BODY.PEEK": "BODY", "BINARY.PEEK": "BINARY"}.get(kind, kind)
    peek = kind in ("BODY.PEEK", "BINARY.PEEK", "BINARY.SIZE")
    return Item(base, numbers, keyword, fields, partial, peek)


def parse_section(section: str) -> Item:
    """A section as IMAP URLs give it ("1.2", "HEADER.FIELDS (FROM)")."""
    return _parse_item(f"BODY.PEEK[{section}]")


def parse_items(args) -> list[Item]:
    tok = args.next("fetch items")
    if isinstance(tok, Atom):
        macro = _MACROS.get(tok.upper)
        texts = macro if macro is not None else [tok.value]
    elif isinstance(tok, ParenList):
        if not tok.items:
            raise ParseError("Empty FETCH item list")
        texts = []
        for t in tok.items:
            if not isinstance(t, Atom):
                raise ParseError("Invalid FETCH item")
            texts.append(t.value)
    else:
        raise ParseError("Invalid FETCH items")
    return [_parse_item(t) for t in texts]


def _section_label(item: Item) -> str:
    spec = ".".join(str(n) for n in item.numbers or [])
    if item.keyword:
        spec = f"{spec}.{item.keyword}" if spec else item.keyword
    if item.fields is not None:
        spec += " (" + " ".join(f.upper() for f in item.fields) + ")"
    label = f"{item.name}[{spec}]"
    if item.partial is not None and item.name != "BINARY.SIZE":
        label += f"<{item.partial[0]}>"
    return label


async def fetch(session, cmd):
    args = session.args(cmd)
    seqset = args.sequence_set()
    items = parse_items(args)
    mods = parse_fetch_modifiers(session, cmd, args.plist("fetch modifiers") if args.more() else [])
    args.end()
    view = session.view
    try:
        positions = view.positions(seqset, cmd.uid, session.saved_search)
    except IndexError:
        raise bad("Invalid message sequence number") from None
    if cmd.uid and not any(i.name == "UID" for i in items):
        items.insert(0, Item("UID"))
    if mods.changed_since is not None or any(i.name == "MODSEQ" for i in items):
        await session.start_condstore()
    if mods.changed_since is not None:
        if not any(i.name == "MODSEQ" for i in items):
            items.append(Item("MODSEQ"))
        if mods.vanished:
            await send_vanished_earlier(session, mods.changed_since, seqset)
        since, entries, uids = mods.changed_since, view.shared.entries, view.uids
        positions = [i for i in positions if (e := entries.get(uids[i])) is not None and e.modseq > since]
    return await fetch_messages(session, positions, items)


async def fetch_messages(session, positions, items: list[Item]):
    """FETCH responses for the messages at these view positions; the tagged
    response's (code, text). Also what NOTIFY's MessageNew (fetch-att) sends."""
    view = session.view
    all_uids = view.uids
    if not any(i.needs_data for i in items):
        await _fetch_from_index(session, positions, items)
        return "FETCH completed"
    # (sequence number, UID) of each message, in order; expunged-but-not-yet-announced ones stay.
    targets = [(i + 1, all_uids[i]) for i in positions]
    service = session.ctx.service
    mailbox_id = view.shared.id
    marked: set[int] = set()
    if not view.readonly and any(not i.peek for i in items):
        unseen = view.shared.unseen
        to_mark = [u for _s, u in targets if u in unseen]
        if to_mark:
            try:
                events, _ = await service.change("store_flags", mailbox_id, to_mark, "add", frozenset({"\\Seen"}))
            except DiskFull:
                events = []     # no room to note \Seen: the message is read all the same
            marked = {e.uid for e in events}
            view.flag_changes.difference_update(marked)
    needs_bytes = any(i.needs_bytes for i in items)
    step = 50 if needs_bytes else 500
    missing = False
    conn = session.conn
    for start in range(0, len(targets), step):
        batch = targets[start:start + step]
        data = await service.call("message_data", mailbox_id, [u for _s, u in batch], needs_bytes)
        saved = (await service.call("save_dates", mailbox_id, [u for _s, u in batch])
                 if any(i.name == "SAVEDATE" for i in items) else {})
        for seq, uid in batch:
            msg = data.get(uid)
            if msg is None:
                missing = True
                continue
            try:
                out = await _render(session, uid, msg, items, marked, saved)
            except FileNotFoundError:
                missing = True
                continue
            if not any(isinstance(part, tuple) for part in out):
                conn.write(b"* %d FETCH (" % seq + b" ".join(out) + b")\r\n")
            else:
                await _write_streamed(session, b"* %d FETCH (" % seq, out)
        await conn.drain()
    if missing:
        return "EXPUNGEISSUED", "Some of the requested messages no longer exist"
    return "FETCH completed"


# Lines rendered between waits for the socket: the client reads while we render.
_INDEX_CHUNK = 2000


async def _fetch_from_index(session, positions, items) -> None:
    """UID, FLAGS, INTERNALDATE, RFC822.SIZE (none of which sets \\Seen): all
    from memory, the flag list rendered once per distinct set of flags (a big
    mailbox has few), and the socket drained every few thousand lines so the
    client reads while we render."""
    view = session.view
    uids = view.uids
    names = [i.name for i in items]
    flag_text = _flag_renderer(session, view)
    if names == ["UID", "FLAGS"] or names == ["FLAGS", "UID"]:
        # The resync every client does on a big mailbox: the tightest loop we have.
        line = b"* %d FETCH (UID %d %s)\r\n" if names[0] == "UID" else b"* %d FETCH (%s UID %d)\r\n"
        uid_first = names[0] == "UID"
        for start in range(0, len(positions), _INDEX_CHUNK):
            lines = []
            for i in positions[start:start + _INDEX_CHUNK]:
                uid = uids[i]
                if uid_first:
                    lines.append(line % (i + 1, uid, flag_text(uid)))
                else:
                    lines.append(line % (i + 1, flag_text(uid), uid))
            session.conn.write(b"".join(lines))
            await session.conn.drain()
        return
    for start in range(0, len(positions), _INDEX_CHUNK):
        for i in positions[start:start + _INDEX_CHUNK]:
            uid = uids[i]
            entry = view.entry(uid)
            out = []
            for name in names:
                if name == "UID":
                    out.append(b"UID %d" % uid)
                elif name == "FLAGS":
                    out.append(flag_text(uid))
                elif name == "INTERNALDATE":
                    out.append(f'INTERNALDATE "{format_datetime(entry.internaldate if entry else 0)}"'.encode())
                elif name == "MODSEQ":
                    out.append(b"MODSEQ (%d)" % session.modseq_of(uid))
                else:
                    out.append(b"RFC822.SIZE %d" % (entry.size if entry else 0))
            session.conn.write(b"* %d FETCH (" % (i + 1) + b" ".join(out) + b")\r\n")
        await session.conn.drain()


def _flag_renderer(session, view):
    """uid -> b"FLAGS (...)", cached per distinct flag set (and \\Recent)."""
    entries = view.shared.entries
    expunged = view.expunged
    recent = view.recent if not session.rev2 else ()
    rendered: dict = {}
    empty = frozenset()

    def flag_text(uid) -> bytes:
        e = entries.get(uid)
        flags = e.flags if e is not None else expunged.get(uid, empty)
        key = (flags, True) if uid in recent else flags
        text = rendered.get(key)
        if text is None:
            text = rendered[key] = b"FLAGS " + session.format_flags(uid).encode()
        return text
    return flag_text


async def _render(session, uid, msg, items, marked, saved=None) -> list[bytes]:
    view = session.view
    entry = view.entry(uid)
    out: list[bytes] = []
    flags_sent = uid_sent = modseq_sent = False
    for item in items:
        name = item.name
        if name == "UID":
            out.append(b"UID %d" % uid)
            uid_sent = True
        elif name == "MODSEQ":
            out.append(b"MODSEQ (%d)" % session.modseq_of(uid))
            modseq_sent = True
        elif name == "FLAGS":
            out.append(b"FLAGS " + session.format_flags(uid).encode())
            flags_sent = True
        elif name == "INTERNALDATE":
            idate = entry.internaldate if entry else msg.internaldate if msg else 0
            out.append(f'INTERNALDATE "{format_datetime(idate)}"'.encode())
        elif name == "RFC822.SIZE":
            out.append(b"RFC822.SIZE %d" % (entry.size if entry else msg.size))
        elif name == "SAVEDATE":
            # RFC 8514: NIL for a message stored before save dates were kept.
            when = (saved or {}).get(uid)
            out.append(b"SAVEDATE NIL" if when is None else f'SAVEDATE "{format_datetime(when)}"'.encode())
        elif name == "ENVELOPE":
            out.append(b"ENVELOPE " + msg.envelope)
        elif name == "BODY" and item.numbers is None:
            out.append(b"BODY " + msg.body)
        elif name == "BODYSTRUCTURE":
            out.append(b"BODYSTRUCTURE " + msg.bodystructure)
        elif name == "RFC822":
            out.append(await _literal_of_range(session, msg, b"RFC822 ", 0, msg.size))
        elif name == "RFC822.HEADER":
            out.append(b"RFC822.HEADER " + literal(await _read(session, msg, 0, msg.header_size)))
        elif name == "RFC822.TEXT":
            out.append(await _literal_of_range(session, msg, b"RFC822.TEXT ", msg.header_size, msg.size))
        elif name == "BODY":
            out.append(await _body_section(session, msg, item, _section_label(item).encode() + b" "))
        else:
            out.append(await _binary(session, msg, item))
    if uid in marked:
        # \Seen was set by this FETCH: the new flags, and with CONDSTORE the
        # UID and MODSEQ as for any other flag change (RFC 7162 3.1).
        if not flags_sent:
            out.append(b"FLAGS " + session.format_flags(uid).encode())
        if session.condstore:
            if not uid_sent:
                out.append(b"UID %d" % uid)
            if not modseq_sent:
                out.append(b"MODSEQ (%d)" % session.modseq_of(uid))
    return out


async def _write_streamed(session, head: bytes, out: list) -> None:
    """A FETCH response with big literals sent from their files chunk by chunk,
    so memory stays flat whatever the message size."""
    conn = session.conn
    conn.write(head)
    for i, part in enumerate(out):
        if i:
            conn.write(b" ")
        if isinstance(part, tuple):
            prefix, span = part
            conn.write(prefix)
            await session.ctx.service.stream_blob(span.key, span.start, span.end, conn)
        else:
            conn.write(part)
    conn.write(b")\r\n")


async def _read(session, msg, start, end) -> bytes:
    """Bytes of a range of the message, from the database row or the blob file."""
    if msg.inline is not None:
        return msg.inline[start:end]
    return await session.ctx.service.read_blob(msg.blob_key, start, end)


async def _literal_of_range(session, msg, label: bytes, start: int, end: int):
    """label + a literal of the range: in memory if small, else streamed."""
    if msg.inline is None and end - start >= _STREAM_FROM:
        return (label + b"{%d}\r\n" % (end - start), BlobSpan(msg.blob_key, start, end))
    return label + literal(await _read(session, msg, start, end))


def _apply_partial(data: bytes, partial) -> bytes:
    if partial is None:
        return data
    start, length = partial
    return data[start:start + length]


async def _body_section(session, msg, item, label: bytes):
    span = section_range(msg.parts, item.numbers, item.keyword)
    if span is None:
        # A section the message lacks (1.TEXT of a non-message part, 3.HEADER of
        # two parts): an empty string, as Dovecot and James give; clients that
        # read a body section as a string choke on NIL.
        return label + b'""'
    start, end = span
    if item.fields is not None:
        block = await _read(session, msg, start, end)
        data = filter_header_fields(block, item.fields, item.keyword.endswith(".NOT"))
        return label + literal(_apply_partial(data, item.partial))
    if item.partial is not None:
        p_start, p_len = item.partial
        start, end = min(end, start + p_start), min(end, start + p_start + p_len)
    return await _literal_of_range(session, msg, label, start, end)


async def _binary(session, msg, item) -> bytes:
    label = _section_label(item).encode()
    if not item.numbers:
        data = await _read(session, msg, 0, msg.size)
    else:
        node = resolve(msg.parts, item.numbers)
        if node is None:
            return label + b" NIL"
        if "c" in node:
            raise no("BINARY can't decode a multipart", "UNKNOWN-CTE")
        raw = await _read(session, msg, node["b"], node["e"])
        try:
            data = decode_transfer(raw, node.get("x", "7bit"))
        except UnknownEncoding:
            raise no("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE") from None
    if item.name == "BINARY.SIZE":
        return label + b" %d" % len(data)
    data = _apply_partial(data, item.partial)
    return label + b" " + literal(data, binary=b"\x00" in data)
