"""NOTIFY SET [STATUS] (filter events) ... and NOTIFY NONE (RFC 5465)."""
from __future__ import annotations

from ..args import ArgReader
from ..errors import bad, no
from ..notifier import MESSAGE_EVENTS, EventGroup, Notifier
from ..protocol.tokens import Atom, ParenList
from .fetch import parse_items

_FILTERS = {"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"}
_SUPPORTED = ["MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange"]
_KNOWN = {e.upper() for e in _SUPPORTED} | {"ANNOTATIONCHANGE", "MAILBOXMETADATACHANGE", "SERVERMETADATACHANGE"}


async def notify(session, cmd):
    args = session.args(cmd)
    verb = args.atom("SET or NONE").upper()
    if verb == "NONE":
        args.end()
        _stop(session)
        return "NOTIFY completed"
    if verb != "SET":
        raise bad("NOTIFY takes SET or NONE")
    send_status = False
    if isinstance(args.peek(), Atom) and args.peek().upper == "STATUS":
        args.next()
        send_status = True
    groups = []
    while args.more():
        groups.append(_event_group(session, args.plist("event group")))
    if not groups:
        raise bad("NOTIFY SET needs event groups")
    unsupported = sorted({e for g in groups for e in g.events} - {e.upper() for e in _SUPPORTED})
    if unsupported:
        raise no(f"Unsupported event {unsupported[0]}", "BADEVENT (" + " ".join(_SUPPORTED) + ")")
    _stop(session)
    session.notifier = Notifier(session, groups)
    await session.notifier.start(send_status)
    return "NOTIFY completed"


def _stop(session) -> None:
    if session.notifier is not None:
        session.notifier.stop()
        session.notifier = None


def _event_group(session, items: list) -> EventGroup:
    if len(items) < 2 or not isinstance(items[0], Atom) or items[0].upper not in _FILTERS:
        raise bad("Invalid NOTIFY filter")
    kind = items[0].upper
    rest = items[1:]
    names: list[str] = []
    if kind in ("SUBTREE", "MAILBOXES"):
        listed = rest.pop(0)
        tokens = listed.items if isinstance(listed, ParenList) else [listed]
        reader = ArgReader(tokens, session.utf8)
        while reader.more():
            names.append(reader.mailbox())
        if not names:
            raise bad(f"{kind} needs mailboxes")
    if len(rest) != 1:
        raise bad("Invalid NOTIFY event group")
    group = EventGroup(kind, names, set())
    spec = rest[0]
    if isinstance(spec, Atom) and spec.upper == "NONE":
        return group
    if not isinstance(spec, ParenList) or not spec.items:
        raise bad("Invalid NOTIFY events")
    tokens = list(spec.items)
    while tokens:
        tok = tokens.pop(0)
        if not isinstance(tok, Atom) or tok.upper not in _KNOWN or tok.upper in group.events:
            raise bad("Invalid NOTIFY event")
        group.events.add(tok.upper)
        if tok.upper == "MESSAGENEW" and tokens and isinstance(tokens[0], ParenList):
            if not group.selected:
                raise bad("MessageNew fetch attributes are for the selected mailbox only")
            items = parse_items(ArgReader([tokens.pop(0)], session.utf8))
            for item in items:
                item.peek = True     # a notification never marks mail \Seen
            group.fetch_items = items
    # RFC 5465 5: flag changes only make sense with the arrivals and expunges.
    if "FLAGCHANGE" in group.events and not {"MESSAGENEW", "MESSAGEEXPUNGE"} <= group.events:
        raise bad("FlagChange needs MessageNew and MessageExpunge")
    if group.events & MESSAGE_EVENTS and not {"MESSAGENEW", "MESSAGEEXPUNGE"} <= group.events:
        raise bad("MessageNew and MessageExpunge go together")
    return group
