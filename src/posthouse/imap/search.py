"""SEARCH programs: parse the keys once, then evaluate them over a view.

Flag, size, date, sequence and UID keys are answered from the shared
in-memory index; header and text keys go to the store once per key for all
candidate messages, not once per message.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from itertools import compress

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
# Keys answered by the store (one call per key for all messages), not from memory.
_STORE_KEYS = {"field", "body", "text", "header", "sentbefore", "senton", "sentsince"}
# RFC 8514: the save date is kept by the store, not in the in-memory index.
_SAVED_KEYS = {"SAVEDBEFORE": "before", "SAVEDON": "on", "SAVEDSINCE": "since"}
_STORE_KEYS = _STORE_KEYS | {"saved" + op for op in _SAVED_KEYS.values()}
# How deep search keys may nest (parenthesized lists, and NOT/OR inside one
# another): parsing and evaluating recurse once per level, so an unbounded
# depth would reach Python's recursion limit. Runs of OR (or of NOT) are read
# in a loop and count as one level, so a long OR chain is never refused.
MAX_SEARCH_DEPTH = 64


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


def parse_key(args: ArgReader, depth: int = 0):
    if depth > MAX_SEARCH_DEPTH:
        raise ParseError("Search keys nested too deeply")
    tok = args.next("search key")
    if isinstance(tok, ParenList):
        sub = ArgReader(tok.items, args.utf8_names)
        keys = [parse_key(sub, depth + 1)]
        while sub.more():
            keys.append(parse_key(sub, depth + 1))
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
    if key in _SAVED_KEYS:
        return ("saved" + _SAVED_KEYS[key], parse_date(_string(args)))
    if key == "SAVEDATESUPPORTED":
        return ("all",)     # every mailbox here keeps save dates
    if key in _ADDRESS_KEYS:
        return ("field", _ADDRESS_KEYS[key], _string(args))
    if key == "HEADER":
        return ("header", _string(args).lower(), _string(args))
    if key in ("BODY", "TEXT"):
        return (key.lower(), _string(args))
    if key == "NOT":
        return _parse_not(args, depth)
    if key == "OR":
        return _parse_or(args, depth)
    if key == "UID":
        return ("uidset", parse_sequence_set(args.atom("UID set")))
    if key == "MODSEQ":
        return _modseq_key(args)
    if key[:1].isdigit() or key[:1] in "*$":
        return ("seqset", parse_sequence_set(tok.value))
    raise ParseError(f"Unknown search key {tok.value}")


def _next_is(args: ArgReader, word: str) -> bool:
    tok = args.peek()
    return isinstance(tok, Atom) and tok.upper == word


def _parse_not(args: ArgReader, depth: int):
    """NOT key, after its NOT is read; a run of NOTs is counted, not recursed
    into: an even number cancels out."""
    negate = True
    while _next_is(args, "NOT"):
        args.next()
        negate = not negate
    inner = parse_key(args, depth + 1)
    return ("not", inner) if negate else inner


def _parse_or(args: ArgReader, depth: int):
    """OR key1 key2, after its OR is read, as one ("or", k1, k2, ...) node: an
    operand that is itself an OR adds its two operands to this one (OR is
    associative), so OR chains nested either way are read in a loop."""
    operands, owed = [], 2
    while owed:
        if _next_is(args, "OR"):
            args.next()
            owed += 1       # this operand is two operands
        else:
            operands.append(parse_key(args, depth + 1))
            owed -= 1
    return ("or", *operands)


_ENTRY_TYPES = {"PRIV", "SHARED", "ALL"}


def _modseq_key(args: ArgReader):
    """MODSEQ [entry-name entry-type] n (RFC 7162 3.1.5): messages changed at or
    after n. MODSEQs are kept per message, so the entry (one flag's own MODSEQ)
    only narrows what the client asks about, never what we can answer."""
    tok = args.peek()
    if isinstance(tok, String):
        name = _string(args)
        if not name.lower().startswith("/flags/") or len(name) == 7:
            raise ParseError("Invalid MODSEQ entry name")
        if args.atom("entry type").upper() not in _ENTRY_TYPES:
            raise ParseError("Invalid MODSEQ entry type")
    text = args.atom("mod-sequence")
    if not text.isdigit() or len(text) > 20 or int(text) >= 2**63:
        raise ParseError("Invalid mod-sequence")
    return ("modseq", int(text))


def uses_modseq(program) -> bool:
    return any(n[0] == "modseq" for n in _walk(program))


def uses_positions(program) -> bool:
    """Whether the program names messages by sequence number (or the saved '$'),
    so that an expunge can change what it matches beyond the expunged ones."""
    return any(n[0] == "seqset" for n in _walk(program))


def parse_program(args: ArgReader):
    keys = [parse_key(args)]
    while args.more():
        keys.append(parse_key(args))
    return ("and", keys) if len(keys) > 1 else keys[0]


def _walk(node):
    """Every node of a program (in no particular order), without recursion."""
    todo = [node]
    while todo:
        node = todo.pop()
        yield node
        kind = node[0]
        if kind == "and":
            todo.extend(node[1])
        elif kind == "not":
            todo.append(node[1])
        elif kind == "or":
            todo.extend(node[1:])


def _utc_date(ts):
    return datetime.fromtimestamp(ts, timezone.utc).date()


class Evaluator:
    def __init__(self, session, program):
        self.session = session
        self.view = session.view
        self.program = program
        self.store_sets: dict[int, set[int]] = {}   # id(node) -> matching UIDs
        self.saved = set(session.saved_search)      # '$' (SEARCHRES)

    async def run(self) -> list[int]:
        """The matching messages' sequence numbers, ascending (view.uids[seq - 1]
        is the UID)."""
        view = self.view
        uids = view.uids
        expunged = view.expunged
        program = self.program
        if program[0] == "all":
            if not expunged:
                return list(range(1, len(uids) + 1))
            return [i for i, u in enumerate(uids, 1) if u not in expunged]
        if program[0] == "flag" and program[1] == "\\seen":
            # The commonest search of all (UNSEEN): the shared index keeps that set.
            unseen = view.shared.unseen
            if program[2]:
                return [i for i, u in enumerate(uids, 1) if u not in unseen and u not in expunged]
            # compress() walks the flags in C: three times the pace of a Python loop.
            return list(compress(range(1, len(uids) + 1), map(unseen.__contains__, uids)))
        if any(n[0] in _STORE_KEYS for n in _walk(program)):
            candidates = [u for u in uids if u not in expunged] if expunged else uids.tolist()
            await self._prefetch(candidates)
        keys = program[1] if program[0] == "and" else [program]
        narrowing = sorted((self.store_sets[id(k)] for k in keys if id(k) in self.store_sets), key=len)
        if narrowing:
            # A text or header key ANDed in: its (few) hits are the only candidates.
            hits = set(narrowing[0]).intersection(*narrowing[1:])
            rest = self._compile(("and", [k for k in keys if id(k) not in self.store_sets]))
            seqs = sorted(s for s in map(view.seq_of, hits) if s is not None)
            return [s for s in seqs if uids[s - 1] not in expunged and rest(uids[s - 1], s)]
        match = self._compile(program)
        if not expunged:
            return [i for i, u in enumerate(uids, 1) if match(u, i)]
        return [i for i, u in enumerate(uids, 1) if u not in expunged and match(u, i)]

    async def matching(self, candidates) -> set[int]:
        """Which of these UIDs (in the view, not expunged) match: what a search
        kept up to date (RFC 5267 UPDATE) asks after a change."""
        view = self.view
        live = [u for u in candidates if u not in view.expunged and view.seq_of(u) is not None]
        if not live:
            return set()
        if any(n[0] in _STORE_KEYS for n in _walk(self.program)):
            await self._prefetch(live)
        match = self._compile(self.program)
        seq_of = view.seq_of
        return {u for u in live if match(u, seq_of(u))}

    def _compile(self, node):
        """The search key as a test of (uid, sequence number), built once: the
        dispatch on key kinds happens here, not once per message."""
        kind = node[0]
        view = self.view
        if kind == "and":
            tests = [self._compile(k) for k in node[1]]
            if not tests:
                return lambda uid, seq: True
            if len(tests) == 1:
                return tests[0]
            return lambda uid, seq: all(t(uid, seq) for t in tests)
        if kind == "all":
            return lambda uid, seq: True
        if kind == "flag":
            flag, present = node[1], node[2]
            flags_of = view.flags
            verdict: dict = {}      # flag set -> answer: a big mailbox has few distinct sets

            def flag_test(uid, seq):
                flags = flags_of(uid)
                hit = verdict.get(flags)
                if hit is None:
                    hit = verdict[flags] = any(f.lower() == flag for f in flags) == present
                return hit
            return flag_test
        if kind == "recent":
            return lambda uid, seq: uid in view.recent
        if kind == "new":
            return lambda uid, seq: uid in view.recent and "\\Seen" not in view.flags(uid)
        if kind == "old":
            return lambda uid, seq: uid not in view.recent
        if kind in ("larger", "smaller"):
            limit, larger, entry = node[1], kind == "larger", view.entry

            def size_test(uid, seq):
                e = entry(uid)
                return e is not None and (e.size > limit if larger else e.size < limit)
            return size_test
        if kind == "modseq":
            since, entry = node[1], view.entry

            def modseq_test(uid, seq):
                e = entry(uid)
                return e is not None and e.modseq >= since
            return modseq_test
        if kind in ("before", "on", "since"):
            ref = node[1]
            return lambda uid, seq: _date_cmp(kind, self._idate(uid), ref)
        if kind == "not":
            inner = self._compile(node[1])
            return lambda uid, seq: not inner(uid, seq)
        if kind == "or":
            tests = [self._compile(k) for k in node[1:]]
            if len(tests) == 2:
                a, b = tests
                return lambda uid, seq: a(uid, seq) or b(uid, seq)
            return lambda uid, seq: any(t(uid, seq) for t in tests)
        if kind in ("seqset", "uidset"):
            seqset = node[1]
            if seqset.saved:
                saved = self.saved
                return lambda uid, seq: uid in saved
            uids = view.uids
            if kind == "seqset":
                spans = list(seqset.resolve(len(uids)))
                return lambda uid, seq: any(lo <= seq <= hi for lo, hi in spans)
            spans = list(seqset.resolve(uids[-1] if uids else 0))
            return lambda uid, seq: any(lo <= uid <= hi for lo, hi in spans)
        hits = self.store_sets.get(id(node), frozenset())
        return lambda uid, seq: uid in hits

    async def _prefetch(self, uids):
        service = self.session.ctx.service
        mailbox_id = self.view.shared.id
        nodes = list(_walk(self.program))
        fields = None
        if any(n[0] in ("sentbefore", "senton", "sentsince") for n in nodes):
            fields = await service.call("sort_data", mailbox_id)   # uid -> (sent, idate, size, keys)
        headers = None
        if any(n[0] in ("header", "text") for n in nodes):
            headers = await self._header_blocks(uids)
        saved = None
        if any(n[0].startswith("saved") for n in nodes):
            saved = await service.call("save_dates", mailbox_id)   # uid -> save date or None
        for n in nodes:
            kind = n[0]
            if kind == "field":
                # The whole mailbox (uids=None): results outside the view are never looked at.
                self.store_sets[id(n)] = await service.call("search_field", mailbox_id, None, n[1], n[2])
            elif kind in ("sentbefore", "senton", "sentsince"):
                self.store_sets[id(n)] = {u for u, f in fields.items() if _date_cmp(kind[4:], _sent_day(f), n[1])}
            elif kind.startswith("saved"):
                # A message saved before save dates were kept is taken at its internal
                # date, as RFC 8514 does for a mailbox without them.
                self.store_sets[id(n)] = {u for u, when in saved.items()
                                          if _date_cmp(kind[5:], self._saved_day(u, when), n[1])}
            elif kind == "body":
                self.store_sets[id(n)] = await service.call("search_body", mailbox_id, None, n[1])
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

    def _saved_day(self, uid, when):
        return _utc_date(when) if when is not None else self._idate(uid)

    def _idate(self, uid):
        e = self.view.entry(uid)
        return _utc_date(e.internaldate) if e else None


def _sent_day(sort_row):
    """The Date: header's own calendar date (older stores: its UTC date); the
    internal date's where there is no usable Date: (RFC 9051 6.4.4)."""
    sent, internaldate, _size, keys = sort_row
    day = keys.get("sentday")
    if day:
        return date.fromisoformat(day)
    return _utc_date(sent if sent is not None else internaldate)


def _date_cmp(op, value, ref) -> bool:
    if value is None:
        return False
    if op == "before":
        return value < ref
    if op == "on":
        return value == ref
    return value >= ref
