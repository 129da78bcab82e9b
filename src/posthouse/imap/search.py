"""SEARCH programs: parse the keys once, then evaluate them over a view.

Flag, size, date, sequence and UID keys are answered from the shared
in-memory index; header and text keys go to the store once per key for all
candidate messages, not once per message.
"""
from __future__ import annotations

from datetime import datetime, timezone

from ..mime.headers import HeaderBlock, decode_words, raw_text
from .args import ArgReader, parse_date, parse_sequence_set
from .protocol.tokens import Atom, ParenList, ParseError, String

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True), "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False), "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False), "UNSEEN": ("\\Seen", False),
}
_ADDRESS_KEYS = {"FROM": "from_", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject"}
_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}


def _string(args: ArgReader) -> str:
    tok = args.next("search string")
    if isinstance(tok, Atom):
        return tok.value
    if isinstance(tok, String):
        try:
            return tok.value.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("Search string is not valid UTF-8") from None
    raise ParseError("Expected a search string")


def parse_key(args: ArgReader):
    tok = args.next("search key")
    if isinstance(tok, ParenList):
        sub = ArgReader(tok.items, args.utf8_names)
        keys = [parse_key(sub)]
        while sub.more():
            keys.append(parse_key(sub))
        return ("and", keys)
    if not isinstance(tok, Atom):
        raise ParseError("Invalid search key")
    key = tok.upper
    if key == "ALL":
        return ("all",)
    if key in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[key]
        return ("flag", flag.lower(), present)
    if key in ("KEYWORD", "UNKEYWORD"):
        return ("flag", args.atom("keyword").lower(), key == "KEYWORD")
    if key in ("NEW", "OLD", "RECENT"):
        return (key.lower(),)
    if key in ("LARGER", "SMALLER"):
        return (key.lower(), args.number("size"))
    if key in _DATE_KEYS:
        return (key.lower(), parse_date(_string(args)))
    if key in _ADDRESS_KEYS:
        return ("field", _ADDRESS_KEYS[key], _string(args))
    if key == "HEADER":
        return ("header", _string(args).lower(), _string(args))
    if key in ("BODY", "TEXT"):
        return (key.lower(), _string(args))
    if key == "NOT":
        return ("not", parse_key(args))
    if key == "OR":
        return ("or", parse_key(args), parse_key(args))
    if key == "UID":
        return ("uidset", parse_sequence_set(args.atom("UID set")))
    if key[:1].isdigit() or key[:1] in "*$":
        return ("seqset", parse_sequence_set(tok.value))
    raise ParseError(f"Unknown search key {tok.value}")


def parse_program(args: ArgReader):
    keys = [parse_key(args)]
    while args.more():
        keys.append(parse_key(args))
    return ("and", keys) if len(keys) > 1 else keys[0]


def _walk(node):
    yield node
    if node[0] == "and":
        for k in node[1]:
            yield from _walk(k)
    elif node[0] == "not":
        yield from _walk(node[1])
    elif node[0] == "or":
        yield from _walk(node[1])
        yield from _walk(node[2])


def _utc_date(ts):
    return datetime.fromtimestamp(ts, timezone.utc).date()


class Evaluator:
    def __init__(self, session, program):
        self.session = session
        self.view = session.view
        self.program = program
        self.store_sets: dict[int, set[int]] = {}   # id(node) -> matching UIDs
        self.saved = set(session.saved_search)      # '$' (SEARCHRES)
        self._lowered: dict[frozenset, frozenset] = {}   # flag set -> lower-cased, computed once

    async def run(self) -> list[int]:
        view = self.view
        candidates = [u for u in view.uids if not view.is_expunged(u)] if view.expunged else list(view.uids)
        await self._prefetch(candidates)
        program = self.program
        if program[0] == "flag":
            # The commonest search (UNSEEN, FLAGGED...): one test per message, nothing more.
            flag, present = program[1], program[2]
            return [u for u in candidates if (flag in self._lowered_flags(u)) == present]
        if not any(n[0] == "seqset" for n in _walk(program)):
            return [u for u in candidates if self._match(program, u, 0)]
        seq_of = {u: i + 1 for i, u in enumerate(view.uids)}
        return [u for u in candidates if self._match(program, u, seq_of[u])]

    def _lowered_flags(self, uid) -> frozenset:
        flags = self.view.flags(uid)
        lowered = self._lowered.get(flags)
        if lowered is None:
            lowered = self._lowered[flags] = frozenset(f.lower() for f in flags)
        return lowered

    async def _prefetch(self, uids):
        service = self.session.ctx.service
        mailbox_id = self.view.shared.id
        nodes = list(_walk(self.program))
        fields = None
        if any(n[0] in ("sentbefore", "senton", "sentsince") for n in nodes):
            fields = await service.call("search_fields", mailbox_id, uids)
        headers = None
        if any(n[0] in ("header", "text") for n in nodes):
            headers = await self._header_blocks(uids)
        for n in nodes:
            kind = n[0]
            if kind == "field":
                self.store_sets[id(n)] = await service.call("search_field", mailbox_id, uids, n[1], n[2])
            elif kind in ("sentbefore", "senton", "sentsince"):
                self.store_sets[id(n)] = {u for u, f in fields.items() if _date_cmp(
                    kind[4:], _utc_date(f.sent_date) if f.sent_date is not None else self._idate(u), n[1])}
            elif kind == "body":
                self.store_sets[id(n)] = await service.call("search_body", mailbox_id, uids, n[1])
            elif kind == "text":
                body = await service.call("search_body", mailbox_id, uids, n[1])
                needle = n[1].casefold()
                self.store_sets[id(n)] = body | {u for u, h in headers.items() if needle in h[1]}
            elif kind == "header":
                name, needle = n[1], n[2].casefold()
                hits = set()
                for u, (block, _text) in headers.items():
                    for key, value in block.fields:
                        if key == name and needle in decode_words(raw_text(value)).casefold():
                            hits.add(u)
                            break
                self.store_sets[id(n)] = hits

    async def _header_blocks(self, uids):
        service = self.session.ctx.service
        out = {}
        for i in range(0, len(uids), 500):
            data = await service.call("message_data", self.view.shared.id, uids[i:i + 500], True)
            for uid, msg in data.items():
                try:
                    block = (msg.inline[:msg.header_size] if msg.inline is not None
                             else await service.read_blob(msg.blob_key, 0, msg.header_size))
                except FileNotFoundError:
                    continue
                text = decode_words(raw_text(block)).casefold()
                out[uid] = (HeaderBlock(block), text)
        return out

    def _idate(self, uid):
        e = self.view.entry(uid)
        return _utc_date(e.internaldate) if e else None

    def _match(self, node, uid, seq) -> bool:
        kind = node[0]
        view = self.view
        if kind == "and":
            return all(self._match(k, uid, seq) for k in node[1])
        if kind == "all":
            return True
        if kind == "flag":
            return (node[1] in self._lowered_flags(uid)) == node[2]
        if kind == "recent":
            return uid in view.recent
        if kind == "new":
            return uid in view.recent and "\\Seen" not in view.flags(uid)
        if kind == "old":
            return uid not in view.recent
        if kind in ("larger", "smaller"):
            e = view.entry(uid)
            if e is None:
                return False
            return e.size > node[1] if kind == "larger" else e.size < node[1]
        if kind in ("before", "on", "since"):
            d = self._idate(uid)
            return d is not None and _date_cmp(kind, d, node[1])
        if kind == "not":
            return not self._match(node[1], uid, seq)
        if kind == "or":
            return self._match(node[1], uid, seq) or self._match(node[2], uid, seq)
        if kind == "seqset":
            return self._in_set(node[1], seq, len(view.uids), uid)
        if kind == "uidset":
            return self._in_set(node[1], uid, view.uids[-1] if view.uids else 0, uid)
        return uid in self.store_sets.get(id(node), ())

    def _in_set(self, seqset, n, largest, uid) -> bool:
        if seqset.saved:
            return uid in self.saved
        return any(lo <= n <= hi for lo, hi in seqset.resolve(largest))


def _date_cmp(op, value, ref) -> bool:
    if value is None:
        return False
    if op == "before":
        return value < ref
    if op == "on":
        return value == ref
    return value >= ref
