"""SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB,
NAMESPACE, STATUS."""
from __future__ import annotations

import dataclasses
import re

from ...store.api import MailboxListChanged
from ...store.wake_counters import BEHIND
from ..args import check_mailbox_name
from ..errors import bad, no
from ..protocol.tokens import Atom, ParenList, ParseError, String
from .resync import parse_select_params, qresync_select

DELIM = "/"


def _user_id(session) -> int:
    return session.user.id


def _announce(session, kind: str, name: str, old: str | None = None, mailbox_id: int | None = None) -> None:
    """Tell the user's other sessions (NOTIFY's MailboxName, SubscriptionChange)."""
    event = MailboxListChanged(_user_id(session), kind, name, old, origin=session, mailbox_id=mailbox_id)
    session.ctx.service.hub.publish([event])
    session.ctx.service.relay("events", [dataclasses.replace(event, origin=None)])    # other workers' sessions


# -- SELECT / EXAMINE ---------------------------------------------------------

async def _open(session, cmd, readonly: bool):
    args = session.args(cmd)
    name = args.mailbox()
    params = parse_select_params(session, args.plist("select parameters") if args.more() else [])
    args.end()
    had_mailbox = session.view is not None
    session.unselect()   # a failed SELECT still leaves no mailbox selected
    if had_mailbox and (session.rev2 or session.qresync):
        session.untagged("OK [CLOSED] Previous mailbox closed.")
    if params.condstore or params.qresync:
        session.enable_condstore()   # no mailbox now: HIGHESTMODSEQ comes below
    user_id = _user_id(session)
    registry = session.ctx.registry
    known = registry.by_name(user_id, name)
    if known is not None:
        mailbox_id = known.id
    else:
        mailbox_id = (await session.ctx.service.call("get_mailbox", user_id, name)).id
    if params.qresync is not None:
        # The client may know changes this server has not heard of yet (made on
        # another node): read them before its state is compared with them.
        shared = registry.open.get(mailbox_id)
        if shared is not None and shared.loaded.is_set() and shared.synced < params.qresync.modseq:
            shared.catch_up()
            await shared.caught_up()
    # Other workers' write-behind STOREs there: in what we read and say below.
    await session.ctx.service.others_done(BEHIND, mailbox_id)
    view = await session.select(mailbox_id, name, readonly)
    if known is None:
        registry.remember_name(view.shared, user_id, name)
    if view.shared.behind:
        await session.writes_stored()   # the flags and MODSEQs said below include them
        view.start_from_now()
    shared = view.shared
    info = shared.info
    rev2 = session.rev2
    out = [shared.flags_responses(readonly), b"* %d EXISTS\r\n" % view.exists]
    if not rev2:
        out.append(b"* %d RECENT\r\n" % len(view.recent))
        first_unseen = view.first_unseen()
        if first_unseen:
            out.append(b"* OK [UNSEEN %d] First unseen.\r\n" % first_unseen)
    out.append(b"* OK [UIDVALIDITY %d] UIDs valid\r\n* OK [UIDNEXT %d] Predicted next UID\r\n"
               % (info.uidvalidity, info.uidnext))
    if session.condstore:
        out.append(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % info.highestmodseq)
    if rev2:
        out.append(b"* LIST () \"/\" " + session.wire_name(name) + b"\r\n")
    session.conn.write(b"".join(out))
    if params.qresync is not None:
        await qresync_select(session, params.qresync)
    code = "READ-ONLY" if readonly else "READ-WRITE"
    return code, ("EXAMINE" if readonly else "SELECT") + " completed"


async def select(session, cmd):
    return await _open(session, cmd, readonly=False)


async def examine(session, cmd):
    return await _open(session, cmd, readonly=True)


# -- CREATE / DELETE / RENAME --------------------------------------------------

async def create(session, cmd):
    args = session.args(cmd)
    name = args.mailbox()
    special = None
    if args.more():   # CREATE-SPECIAL-USE: CREATE name (USE (\Sent))
        opts = args.plist("create parameters")
        if len(opts) == 2 and isinstance(opts[0], Atom) and opts[0].upper == "USE" and isinstance(opts[1], ParenList):
            if not all(isinstance(t, Atom) for t in opts[1].items):
                raise bad("Special-use attributes are atoms")
            uses = [t.value for t in opts[1].items]
            if len(uses) != 1 or uses[0].lower() not in _SPECIAL_USES:
                raise no("Unsupported special-use attribute", "USEATTR")
            special = _SPECIAL_USES[uses[0].lower()]
        elif opts:
            raise bad("Unsupported CREATE parameter")
    args.end()
    name = name.rstrip(DELIM) if name != DELIM else name
    why = check_mailbox_name(name)
    if why:
        raise no(why, "CANNOT")
    if name == "INBOX":
        raise no("INBOX always exists", "ALREADYEXISTS")
    info = await session.ctx.service.call("create_mailbox", _user_id(session), name, special)
    _announce(session, "created", name, mailbox_id=info.id)


_SPECIAL_USES = {x.lower(): x for x in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")}


async def delete(session, cmd):
    args = session.args(cmd)
    name = args.mailbox()
    args.end()
    if name == "INBOX":
        raise no("INBOX can't be deleted", "CANNOT")
    if session.view is not None and session.mailbox_name == name:
        session.unselect()   # deleting the selected mailbox deselects it
    await session.ctx.service.change("delete_mailbox", _user_id(session), name)
    _announce(session, "deleted", name)


async def rename(session, cmd):
    args = session.args(cmd)
    old = args.mailbox()
    new = args.mailbox()
    args.end()
    why = check_mailbox_name(new)
    if why:
        raise no(why, "CANNOT")
    if new == "INBOX":
        raise no("Can't rename to INBOX", "ALREADYEXISTS")
    await session.ctx.service.change("rename_mailbox", _user_id(session), old, new)
    _announce(session, "renamed", new, old)


# -- SUBSCRIBE ----------------------------------------------------------------

async def subscribe(session, cmd):
    args = session.args(cmd)
    name = args.mailbox()
    args.end()
    await session.ctx.service.call("get_mailbox", _user_id(session), name)
    await session.ctx.service.call("set_subscribed", _user_id(session), name, True)
    _announce(session, "subscribed", name)


async def unsubscribe(session, cmd):
    args = session.args(cmd)
    name = args.mailbox()
    args.end()
    await session.ctx.service.call("set_subscribed", _user_id(session), name, False)
    _announce(session, "unsubscribed", name)


# -- LIST / LSUB ----------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern:
    if pattern[:5].upper() == "INBOX" and (len(pattern) == 5 or pattern[5] in "/*%"):
        pattern = "INBOX" + pattern[5:]
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _pattern_texts(tok, session) -> list[str]:
    if isinstance(tok, ParenList):
        return [_one_pattern(t, session) for t in tok.items]
    return [_one_pattern(tok, session)]


def _one_pattern(tok, session) -> str:
    if isinstance(tok, Atom):
        text = tok.value
    elif isinstance(tok, String):
        text = tok.text()
    else:
        raise ParseError("Invalid mailbox pattern")
    if not session.utf8:
        try:
            from ..protocol import mutf7
            text = mutf7.decode(text)
        except ValueError:
            pass
    return text


async def list_command(session, cmd):
    args = session.args(cmd)
    selection: set[str] = set()
    tok = args.next("reference")
    if isinstance(tok, ParenList):       # LIST-EXTENDED selection options
        for opt in tok.items:
            if not isinstance(opt, Atom):
                raise bad("Invalid selection option")
            selection.add(opt.upper)
        unknown = selection - {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
        if unknown:
            raise bad("Unknown selection option " + sorted(unknown)[0])
        if selection == {"RECURSIVEMATCH"} or selection == {"RECURSIVEMATCH", "REMOTE"}:
            raise bad("RECURSIVEMATCH needs another selection option")
        tok = args.next("reference")
    if not isinstance(tok, (Atom, String)):
        raise bad("Invalid reference")
    reference = tok.value if isinstance(tok, Atom) else tok.text()
    patterns = _pattern_texts(args.next("mailbox pattern"), session)
    returns: set[str] = set()
    status_items: list[str] | None = None
    if args.more():
        if args.atom("RETURN").upper() != "RETURN":
            raise bad("Expected RETURN")
        for opt in _iter_return(args.plist("return options")):
            if isinstance(opt, tuple):
                status_items = opt[1]
            else:
                returns.add(opt)
    args.end()
    if status_items and "HIGHESTMODSEQ" in status_items:
        session.enable_condstore()
    extended = bool(selection) or bool(returns) or status_items is not None or len(patterns) > 1
    if len(patterns) == 1 and patterns[0] == "" and not selection:
        session.untagged('LIST (\\Noselect) "/" ""')
        return "LIST completed"
    await _list(session, reference, patterns, selection, returns, status_items, extended)
    return "LIST completed"


def _iter_return(items):
    it = iter(items)
    for opt in it:
        if not isinstance(opt, Atom):
            raise bad("Invalid return option")
        name = opt.upper
        if name == "STATUS":
            lst = next(it, None)
            if not isinstance(lst, ParenList):
                raise bad("STATUS return option needs a list")
            yield ("STATUS", [_status_item(t) for t in lst.items])
        elif name in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
            yield name
        else:
            raise bad("Unknown return option " + opt.value)


async def _list(session, reference, patterns, selection, returns, status_items, extended):
    service = session.ctx.service
    uid = _user_id(session)
    boxes = await service.call("list_mailboxes", uid, True)
    subs = await service.call("subscriptions", uid) if (
        "SUBSCRIBED" in selection or "SUBSCRIBED" in returns) else set()
    by_name = {b.name: b for b in boxes}
    names = set(by_name)
    regexes = [_pattern_regex(reference + p) for p in patterns]

    def matches(name):
        return any(r.match(name) for r in regexes)

    def has_children(name):
        prefix = name + DELIM
        return any(n.startswith(prefix) for n in names)

    rows = []   # (name, attrs, childinfo)
    if "SUBSCRIBED" in selection:
        candidates = sorted(subs | (names if "RECURSIVEMATCH" in selection else set()))
        for name in candidates:
            attrs = []
            childinfo = False
            if name in subs:
                if not matches(name):
                    continue
                attrs.append("\\Subscribed")
                if name not in by_name:
                    attrs.append("\\NonExistent")
            else:
                # RECURSIVEMATCH: a parent listed for a subscribed descendant the
                # patterns don't list themselves (one that is listed needs no hint).
                prefix = name + DELIM
                if not matches(name) or not any(s.startswith(prefix) and not matches(s) for s in subs):
                    continue
                childinfo = True
            rows.append((name, attrs, childinfo))
    else:
        for name in sorted(names):
            if matches(name):
                attrs = ["\\Subscribed"] if ("SUBSCRIBED" in returns and name in subs) else []
                rows.append((name, attrs, False))
    for name, attrs, childinfo in rows:
        info = by_name.get(name)
        if info is not None:
            attrs.insert(0, "\\HasChildren" if has_children(name) else "\\HasNoChildren")
            if info.noselect:       # a deleted mailbox's name, kept for its children
                attrs.insert(0, "\\Noselect")
            if info.special_use and ("SPECIAL-USE" in selection or "SPECIAL-USE" in returns or not extended):
                attrs.append(info.special_use)
        if "SPECIAL-USE" in selection and (info is None or not info.special_use):
            continue
        line = f"LIST ({' '.join(attrs)}) \"/\" ".encode() + session.wire_name(name)
        if childinfo:
            line += b' ("CHILDINFO" ("SUBSCRIBED"))'
        session.untagged(line)
        if status_items is not None and info is not None and not info.noselect:
            await _send_status(session, info.id, name, status_items)


async def lsub(session, cmd):
    args = session.args(cmd)
    tok = args.next("reference")
    reference = tok.value if isinstance(tok, Atom) else tok.text() if isinstance(tok, String) else None
    if reference is None:
        raise bad("Invalid reference")
    patterns = _pattern_texts(args.next("mailbox pattern"), session)
    args.end()
    uid = _user_id(session)
    subs = await session.ctx.service.call("subscriptions", uid)
    boxes = {b.name for b in await session.ctx.service.call("list_mailboxes", uid)}
    regexes = [_pattern_regex(reference + p) for p in patterns]
    percent = [_pattern_regex(reference + p) for p in patterns if "%" in p]
    found: dict[str, str] = {}
    for name in subs:
        if any(r.match(name) for r in regexes):
            found[name] = "" if name in boxes else "\\Noselect"
            continue
        # RFC 3501 6.3.9: a "%" that stops above a subscribed mailbox shows the
        # unsubscribed parent in its place, as \Noselect.
        parts = name.split("/")
        for depth in range(len(parts) - 1, 0, -1):
            parent = "/".join(parts[:depth])
            if parent not in subs and any(r.match(parent) for r in percent):
                found.setdefault(parent, "\\Noselect")
    for name in sorted(found):
        session.untagged(f"LSUB ({found[name]}) \"/\" ".encode() + session.wire_name(name))


async def namespace(session, cmd):
    session.args(cmd).end()
    session.untagged('NAMESPACE (("" "/")) NIL NIL')


# -- STATUS ---------------------------------------------------------------------

# DELETED and DELETED-STORAGE: RFC 9208 4.2 (QUOTA=RES-MESSAGE, QUOTA=RES-STORAGE).
_STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "DELETED-STORAGE", "SIZE",
                 "RECENT", "HIGHESTMODSEQ")


def _status_item(tok) -> str:
    if not isinstance(tok, Atom) or tok.upper not in _STATUS_ITEMS:
        raise bad("Unknown STATUS item")
    return tok.upper


async def _send_status(session, mailbox_id, name, items):
    # Other workers' write-behind STOREs there (\Seen for UNSEEN, a MODSEQ) count.
    service = session.ctx.service
    if service.pending_watch is not None:
        await service.others_done(BEHIND, mailbox_id)
    counts = session.ctx.registry.counts(mailbox_id, items)
    if counts is None:
        counts = await session.ctx.service.call("mailbox_counts", mailbox_id)
    body = " ".join(f"{i} {counts[i]}" for i in items)
    session.untagged(b"STATUS " + session.wire_name(name) + f" ({body})".encode())


async def status(session, cmd):
    args = session.args(cmd)
    name = args.mailbox()
    items = [_status_item(t) for t in args.plist("status items")]
    args.end()
    if not items:
        raise bad("STATUS needs items")
    if "HIGHESTMODSEQ" in items:
        session.enable_condstore()
    info = await session.ctx.service.call("get_mailbox", _user_id(session), name)
    await _send_status(session, info.id, name, items)
