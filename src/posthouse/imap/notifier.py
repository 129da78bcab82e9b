"""NOTIFY (RFC 5465) at work: what a session follows once NOTIFY SET is given,
and how the news reaches the client.

Mailboxes other than the selected one are told about with STATUS (MESSAGES
UIDNEXT UIDVALIDITY, and HIGHESTMODSEQ where flag changes are asked for);
mailbox names and subscriptions with LIST. The selected mailbox keeps the
usual EXISTS/EXPUNGE/FETCH updates, plus a FETCH of each new message when
MessageNew names fetch attributes.

News goes out at the end of every command, during IDLE, and between
commands as it happens. If too much piles up the client is told
NOTIFICATIONOVERFLOW and notifications stop, as if NOTIFY NONE.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ..store.api import FlagsChanged, MailboxChanged, MailboxGone, MailboxListChanged, MessageAdded, MessagesExpunged

log = logging.getLogger("posthouse.imap")

# News waiting to be sent beyond which notifications are given up (RFC 5465 5.8).
MAX_PENDING = 1000

MESSAGE_EVENTS = {"MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE"}


@dataclass
class EventGroup:
    filter: str                  # SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE, MAILBOXES
    names: list[str]             # SUBTREE and MAILBOXES
    events: set[str]             # upper-cased event names; empty for NONE
    fetch_items: list | None = None   # MessageNew (fetch-att ...), selected filters only

    @property
    def selected(self) -> bool:
        return self.filter in ("SELECTED", "SELECTED-DELAYED")

    def matches(self, name: str, subscribed: set[str]) -> bool:
        """Whether this (non-selected) filter covers the mailbox."""
        f = self.filter
        if f == "PERSONAL":
            return True
        if f == "INBOXES":
            return name == "INBOX"     # the only mailbox mail is delivered to without a Sieve fileinto
        if f == "SUBSCRIBED":
            return name in subscribed
        if f == "MAILBOXES":
            return name in self.names
        if f == "SUBTREE":
            return any(name == n or name.startswith(n + "/") for n in self.names)
        return False


class Notifier:
    def __init__(self, session, groups: list[EventGroup]):
        self.session = session
        self.groups = groups
        self.followed: dict[int, tuple[str, EventGroup]] = {}   # mailbox id -> (name, its group)
        # The highest MODSEQ of each followed mailbox known to this session's
        # news: another node's changes (MailboxChanged) below it are old news.
        self.modseqs: dict[int, int] = {}
        self.pending_status: dict[int, None] = {}                # mailbox ids, in order of change
        self.pending_lines: list[bytes] = []
        self.subscribed: set[str] = set()
        self._resolving = self._again = False
        self._fresh: set[int] = set()        # followed since the current pass read the list
        self.user_key = ("user", session.user.id)
        self._task: asyncio.Task | None = None
        self.stopped = False

    # -- which groups apply ------------------------------------------------------
    @property
    def selected_group(self) -> EventGroup | None:
        return next((g for g in self.groups if g.selected), None)

    def _name_events(self) -> set[str]:
        out = set()
        for g in self.groups:
            if not g.selected:
                out |= g.events & {"MAILBOXNAME", "SUBSCRIPTIONCHANGE"}
        return out

    # -- following ---------------------------------------------------------------
    async def start(self, send_status: bool) -> None:
        hub = self.session.ctx.service.hub
        hub.follow(self.user_key, self._on_user_event)
        await self._resolve()
        if send_status:
            for mailbox_id, (name, group) in self.followed.items():
                if group.events & {"MESSAGENEW", "MESSAGEEXPUNGE"} and not self._is_selected(mailbox_id):
                    await self._send_status(mailbox_id, name, group)

    def stop(self) -> None:
        self.stopped = True
        hub = self.session.ctx.service.hub
        hub.unfollow(self.user_key, self._on_user_event)
        for mailbox_id in self.followed:
            hub.unfollow(mailbox_id, self._on_mailbox_event)
        self.followed.clear()
        self.modseqs.clear()
        self.pending_status.clear()
        self.pending_lines.clear()

    async def _resolve(self) -> None:
        """Follow the mailboxes the filters cover now (the list changes as
        mailboxes come and go). One pass at a time; a change during a pass
        asks for another, and what was followed meanwhile is kept."""
        if self._resolving:
            self._again = True
            return
        self._resolving = True
        try:
            while not self.stopped:
                self._again, self._fresh = False, set()
                await self._resolve_once()
                if not self._again:
                    break
        finally:
            self._resolving = False

    async def _resolve_once(self) -> None:
        service = self.session.ctx.service
        user_id = self.session.user.id
        mailboxes = await service.call("list_mailboxes", user_id)
        self.subscribed = set(await service.call("subscriptions", user_id))
        if self.stopped:
            return
        wanted = {}
        for info in mailboxes:
            group = self._group_for(info.name)
            if group is not None:
                wanted[info.id] = (info.name, group)
                self.modseqs[info.id] = max(self.modseqs.get(info.id, 0), info.highestmodseq)
        for mailbox_id in self._fresh & set(self.followed):
            wanted[mailbox_id] = self.followed[mailbox_id]     # newer than the list just read
        for mailbox_id in set(self.followed) - set(wanted):
            service.hub.unfollow(mailbox_id, self._on_mailbox_event)
        for mailbox_id in set(wanted) - set(self.followed):
            service.hub.follow(mailbox_id, self._on_mailbox_event)
        self.followed = wanted
        for mailbox_id in set(self.modseqs) - set(wanted):
            del self.modseqs[mailbox_id]

    def _follow_new(self, mailbox_id: int, name: str) -> None:
        """A mailbox just made: followed now, so its first message is not missed
        while the list of mailboxes is read again."""
        group = self._group_for(name)
        hub = self.session.ctx.service.hub
        # The id may be a deleted mailbox's, still followed under its old name.
        if mailbox_id in self.followed:
            del self.followed[mailbox_id]
            hub.unfollow(mailbox_id, self._on_mailbox_event)
        if self._resolving:
            self._again = True
        if group is not None:
            self.modseqs[mailbox_id] = 1    # (a new mailbox's)
            self._fresh.add(mailbox_id)
            self.followed[mailbox_id] = (name, group)
            hub.follow(mailbox_id, self._on_mailbox_event)

    def _group_for(self, name: str) -> EventGroup | None:
        """The first non-selected group covering the mailbox, if it asks for message events."""
        group = next((g for g in self.groups if not g.selected and g.matches(name, self.subscribed)), None)
        return group if group is not None and group.events & MESSAGE_EVENTS else None

    def _is_selected(self, mailbox_id: int) -> bool:
        view = self.session.view
        return view is not None and view.shared.id == mailbox_id

    # -- events --------------------------------------------------------------------
    def _on_mailbox_event(self, event) -> None:
        followed = self.followed.get(event.mailbox_id)
        if followed is None or self._is_selected(event.mailbox_id):
            return
        events = followed[1].events
        if isinstance(event, MailboxGone):
            self._soon(self._resolve())
            return
        modseq = event.entry.modseq if isinstance(event, MessageAdded) else getattr(event, "modseq", 0)
        known = self.modseqs.get(event.mailbox_id, 0)
        if modseq > known:
            self.modseqs[event.mailbox_id] = modseq
        if isinstance(event, MailboxChanged):       # another node's changes, of these kinds
            if modseq <= known:
                return      # told already (or from before this session followed it)
            kinds = event.kinds if event.kinds not in ("", "?") else "afx"
            wanted = any(kind in kinds for kind, name in (("a", "MESSAGENEW"), ("x", "MESSAGEEXPUNGE"),
                                                          ("f", "FLAGCHANGE")) if name in events)
        else:
            wanted = (isinstance(event, MessageAdded) and "MESSAGENEW" in events
                      or isinstance(event, MessagesExpunged) and "MESSAGEEXPUNGE" in events
                      or isinstance(event, FlagsChanged) and "FLAGCHANGE" in events)
        if wanted:
            self.pending_status[event.mailbox_id] = None
            self._kick()

    def _on_user_event(self, event) -> None:
        if not isinstance(event, MailboxListChanged):
            return
        if event.kind == "subscribed":
            self.subscribed.add(event.name)
        elif event.kind == "unsubscribed":
            self.subscribed.discard(event.name)
        if event.kind == "created" and event.mailbox_id is not None:
            self._follow_new(event.mailbox_id, event.name)
        else:
            self._soon(self._resolve())
        if event.origin is self.session:
            return      # the client made the change; it knows
        wanted = self._name_events()
        session = self.session
        name = session.wire_name(event.name)
        if event.kind in ("created", "deleted", "renamed") and "MAILBOXNAME" in wanted:
            if event.kind == "created":
                line = b'LIST () "/" ' + name
            elif event.kind == "deleted":
                line = b'LIST (\\NonExistent) "/" ' + name
            else:
                line = b'LIST () "/" ' + name + b' ("OLDNAME" (' + session.wire_name(event.old_name) + b"))"
            self._queue_line(line)
        elif event.kind in ("subscribed", "unsubscribed") and "SUBSCRIPTIONCHANGE" in wanted:
            attrs = b"(\\Subscribed)" if event.kind == "subscribed" else b"()"
            self._queue_line(b"LIST " + attrs + b' "/" ' + name)

    def _queue_line(self, line: bytes) -> None:
        self.pending_lines.append(line)
        self._kick()

    def _soon(self, coro) -> None:
        asyncio.ensure_future(coro).add_done_callback(_log_failure)

    # -- delivery --------------------------------------------------------------------
    def _kick(self) -> None:
        if len(self.pending_lines) + len(self.pending_status) > MAX_PENDING:
            self._overflow()
            return
        session = self.session
        if session.idle_kick is not None:
            session.idle_kick()
        elif not session.busy and self._task is None:
            self._task = asyncio.ensure_future(self._deliver_between_commands())

    async def _deliver_between_commands(self) -> None:
        try:
            await asyncio.sleep(0)     # gather what else happens in this turn
            if not self.session.busy and not self.stopped:
                await self.deliver(between_commands=True)
                await self.session.conn.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._task = None

    def _overflow(self) -> None:
        session = self.session
        self.stop()
        session.notifier = None
        if not session.busy or session.idle_kick is not None:
            session.untagged("OK [NOTIFICATIONOVERFLOW] Too many notifications; NOTIFY is off")
        else:
            session.pending_overflow = True

    async def deliver(self, between_commands: bool = False) -> None:
        """Write out the news. Every line is whole when written; between
        commands, whatever a command that begins meanwhile would cut into is
        left for that command's end."""
        session = self.session
        while self.pending_lines:
            session.untagged(self.pending_lines.pop(0))
        while self.pending_status and not self.stopped:
            mailbox_id = next(iter(self.pending_status))
            del self.pending_status[mailbox_id]
            followed = self.followed.get(mailbox_id)
            if followed is None or self._is_selected(mailbox_id):
                continue
            line = await self._status_line(mailbox_id, *followed)
            if line is None:
                continue
            if between_commands and session.busy:
                self.pending_status[mailbox_id] = None
                return
            session.untagged(line)

    async def _send_status(self, mailbox_id: int, name: str, group: EventGroup) -> None:
        line = await self._status_line(mailbox_id, name, group)
        if line is not None:
            self.session.untagged(line)

    async def _status_line(self, mailbox_id: int, name: str, group: EventGroup) -> bytes | None:
        items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
        if "FLAGCHANGE" in group.events:
            items.append("HIGHESTMODSEQ")
        counts = self.session.ctx.registry.counts(mailbox_id, items)
        if counts is None:
            try:
                counts = await self.session.ctx.service.call("mailbox_counts", mailbox_id)
            except Exception:
                return None     # deleted meanwhile: MailboxName tells of that
        body = " ".join(f"{i} {counts[i]}" for i in items)
        return b"STATUS " + self.session.wire_name(name) + f" ({body})".encode()


def _log_failure(task: asyncio.Task) -> None:
    """A background re-read of the mailbox list that failed: said in the log,
    not lost (the session keeps following what it followed before)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("NOTIFY: re-reading the mailbox list failed", exc_info=task.exception())
