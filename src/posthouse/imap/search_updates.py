"""Searches kept up to date (CONTEXT=SEARCH and CONTEXT=SORT, RFC 5267 4):
SEARCH/SORT RETURN (UPDATE ...) leaves a context behind, and as the mailbox
changes the client is told with ESEARCH ADDTO and REMOVEFROM (or the new MIN,
MAX and COUNT, when those were all it asked for), until CANCELUPDATE or the
mailbox is closed.

Only the messages that changed are looked at again: the view keeps the UIDs
whose flags changed or that arrived while a context is open. A search that
names messages by sequence number is looked at whole after an expunge, since
the numbers move.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .args import format_uid_set
from .errors import bad
from .protocol.tokens import Atom, String
from .search import Evaluator, uses_positions

# Contexts one session may keep; more are refused with NOUPDATE (RFC 5267 4.2).
MAX_CONTEXTS = 32


@dataclass
class SearchContext:
    tag: str
    uid: bool                          # UID SEARCH/SORT: UIDs in updates, else sequence numbers
    program: tuple
    results: list                      # MIN MAX COUNT ALL, as asked
    criteria: list | None              # SORT's; None for a SEARCH
    order: list[int]                   # the matching UIDs: mailbox order, or sort order
    summary: str | None = None         # MIN/MAX/COUNT as last told
    whole: bool = False                # look at every message next time (numbers moved)
    members: set[int] = field(default_factory=set)

    def __post_init__(self):
        self.members = set(self.order)

    @property
    def diffs(self) -> bool:
        """ADDTO/REMOVEFROM (the result itself), else new MIN/MAX/COUNT values."""
        return "ALL" in self.results or not self.results


def start_updates(session, cmd, program, returns, uids: list[int], criteria=None) -> None:
    contexts = session.search_contexts
    if cmd.tag not in contexts and len(contexts) >= MAX_CONTEXTS:
        session.untagged(f'NO [NOUPDATE "{cmd.tag}"] Too many searches kept up to date')
        return
    ctx = SearchContext(cmd.tag, cmd.uid, program, list(returns.results), criteria, list(uids))
    if not ctx.diffs:
        ctx.summary = _summary(session, ctx)
    contexts[cmd.tag] = ctx
    session.view.track_changes = True


async def cancelupdate(session, cmd):
    args = session.args(cmd)
    tags = []
    while args.more():
        tok = args.next("search tag")
        if not isinstance(tok, (Atom, String)):
            raise bad("CANCELUPDATE takes quoted tags")
        tags.append(tok.value if isinstance(tok, Atom) else tok.text())
    if not tags:
        raise bad("CANCELUPDATE needs a tag")
    unknown = [t for t in tags if t not in session.search_contexts]
    if unknown:
        raise bad(f"No search is kept up to date for tag {unknown[0]}")
    for tag in tags:
        del session.search_contexts[tag]
    if not session.search_contexts and session.view is not None:
        session.view.track_changes = False
        session.view.changed_uids.clear()


def before_expunge(session, gone) -> None:
    """REMOVEFROM for expunged results, numbered as they were: called just before
    the EXPUNGE (or VANISHED) responses go out."""
    view = session.view
    for ctx in session.search_contexts.values():
        if uses_positions(ctx.program):
            ctx.whole = True
        lost = [u for u in ctx.order if u in gone]
        if not lost:
            continue
        lost_set = set(lost)
        new_order = [u for u in ctx.order if u not in lost_set]
        if ctx.diffs:
            _send_removed(session, ctx, lost_set, view.seq_of)
        # (A new MIN/MAX/COUNT goes out from refresh(), in the numbers after the expunge.)
        ctx.order = new_order
        ctx.members.difference_update(lost_set)


async def refresh(session) -> None:
    """Look again at the messages that changed, for every kept search."""
    view = session.view
    changed, view.changed_uids = view.changed_uids, set()
    for ctx in list(session.search_contexts.values()):
        candidates = list(view.uids) if ctx.whole else [u for u in changed if u not in view.expunged]
        ctx.whole = False
        added = dropped = set()
        if candidates:
            hits = await Evaluator(session, ctx.program).matching(candidates)
            considered = {u for u in candidates if u not in view.expunged}
            added = hits - ctx.members
            dropped = (considered & ctx.members) - hits
        if not added and not dropped:
            if not ctx.diffs:
                _send_summary(session, ctx, view.seq_of)   # numbers may have moved
            continue
        members = (ctx.members - dropped) | added
        if ctx.criteria is None:
            new_order = sorted(members)
        else:
            from .commands.sort import sort_matches
            new_order = await sort_matches(session, ctx.criteria, sorted(members))
            members = set(new_order)
        seq_of = view.seq_of
        if ctx.diffs:
            if dropped:
                _send_removed(session, ctx, dropped, seq_of)
            ctx.order, ctx.members = new_order, members
            if added:
                _send_added(session, ctx, added, seq_of)
        else:
            ctx.order, ctx.members = new_order, members
            _send_summary(session, ctx, seq_of)


def _number(ctx, seq_of):
    return (lambda uid: uid) if ctx.uid else seq_of


def _head(ctx) -> str:
    return f'ESEARCH (TAG "{ctx.tag}")' + (" UID" if ctx.uid else "")


def _send_removed(session, ctx, lost: set, seq_of) -> None:
    number = _number(ctx, seq_of)
    if ctx.criteria is None:
        # A SEARCH result is a set: position 0 (RFC 5267 4.3).
        text = "0 " + format_uid_set(sorted(number(u) for u in lost))
    else:
        # Positions from the last, so each stays right whichever goes first.
        pairs = [(i + 1, u) for i, u in enumerate(ctx.order) if u in lost]
        text = " ".join(f"{pos} {number(u)}" for pos, u in reversed(pairs))
    session.untagged(f"{_head(ctx)} REMOVEFROM ({text})")


def _send_added(session, ctx, added: set, seq_of) -> None:
    number = _number(ctx, seq_of)
    if ctx.criteria is None:
        text = "0 " + format_uid_set(sorted(number(u) for u in added))
    else:
        # Each at its place in the new order, in ascending order of places.
        text = " ".join(f"{i + 1} {number(u)}" for i, u in enumerate(ctx.order) if u in added)
    session.untagged(f"{_head(ctx)} ADDTO ({text})")


def _summary(session, ctx, seq_of=None) -> str:
    number = _number(ctx, seq_of or session.view.seq_of)
    numbers = [number(u) for u in ctx.order]
    parts = []
    if numbers:
        sorted_order = ctx.criteria is not None
        if "MIN" in ctx.results:
            parts.append(f"MIN {numbers[0] if sorted_order else min(numbers)}")
        if "MAX" in ctx.results:
            parts.append(f"MAX {numbers[-1] if sorted_order else max(numbers)}")
    if "COUNT" in ctx.results:
        parts.append(f"COUNT {len(numbers)}")
    return " ".join(parts)


def _send_summary(session, ctx, seq_of) -> None:
    summary = _summary(session, ctx, seq_of)
    if summary != ctx.summary:
        ctx.summary = summary
        session.untagged(f"{_head(ctx)} {summary}".rstrip())
