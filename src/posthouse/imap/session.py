"""One IMAP connection's state machine: not authenticated -> authenticated ->
selected -> logout, its selected view, and the untagged updates it owes."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from time import perf_counter

from ..store.api import StoreError
from ..store.process import StoreProcessDied
from ..store.wake_counters import ARRIVALS, BEHIND
from .args import ArgReader, encode_mailbox_name, format_uid_set
from .capabilities import capabilities
from . import search_updates
from .errors import CommandError
from .mailbox_index import SelectedView
from .protocol.tokens import Command, ParseError
from .protocol.writer import astring

log = logging.getLogger("posthouse.imap")

NOT_AUTH, AUTH, SELECTED, LOGOUT = "not-authenticated", "authenticated", "selected", "logout"

# Returned by a handler that has already sent its own tagged response.
ANSWERED = object()


@dataclass
class CommandSpec:
    handler: object
    states: tuple
    # Whether EXPUNGE responses may be sent while this command runs (RFC 9051 7.5.1):
    # never during FETCH, STORE or SEARCH by sequence number.
    expunge_ok: bool = True
    uid_ok: bool = False


_COMMANDS: dict | None = None


def _commands() -> dict:
    """The command table (imported on first use: the commands import this module)."""
    global _COMMANDS
    if _COMMANDS is None:
        from .commands import COMMANDS
        _COMMANDS = COMMANDS
    return _COMMANDS


class Session:
    def __init__(self, conn, ctx):
        self.conn = conn
        self.ctx = ctx            # ServerContext: config, service, registry, authenticator
        self.state = NOT_AUTH
        self.user = None
        self.view: SelectedView | None = None
        self.mailbox_name: str | None = None
        self.enabled: set[str] = set()
        # RFC 7162: once a CONDSTORE enabling command has been seen, untagged FETCH
        # responses carry UID and MODSEQ; QRESYNC (ENABLEd) adds VANISHED.
        self.condstore = False
        self.qresync = False
        self.saved_search: list[int] = []
        self.search_contexts: dict = {}      # tag -> context.SearchContext (RFC 5267 UPDATE)
        self.notifier = None                 # NOTIFY SET in force (notifier.Notifier)
        self.busy = False                    # a command is running (its responses must not be cut into)
        self.idle_kick = None                # while in IDLE: call to push news at once
        self.pending_overflow = False
        self.auth_failures = 0
        self.bye_after: str | None = None   # say BYE and close once this command is answered
        deliverer = getattr(ctx, "deliverer", None)
        self.arrivals = getattr(deliverer, "arrivals", None)    # delivery.arrivals.Arrivals
        self.command_timer = getattr(ctx, "command_timer", None)   # admin/metrics.py: (name, seconds)

    # -- modes ----------------------------------------------------------------
    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        return self.rev2 or "UTF8=ACCEPT" in self.enabled

    def args(self, cmd: Command) -> ArgReader:
        return ArgReader(cmd.args, utf8_names=self.utf8)

    def wire_name(self, name: str) -> bytes:
        return astring(encode_mailbox_name(name, self.utf8), self.utf8)

    def capability_list(self) -> list[str]:
        return capabilities(self)

    def enable_condstore(self) -> None:
        """A CONDSTORE enabling command (RFC 7162 3.1): from now on MODSEQs are
        reported; with a mailbox selected, its HIGHESTMODSEQ is said at once."""
        if self.condstore:
            return
        self.condstore = True
        if self.view is not None:
            self.untagged(f"OK [HIGHESTMODSEQ {self.view.shared.info.highestmodseq}] Highest")

    async def start_condstore(self) -> None:
        """enable_condstore(), once this session's write-behind STOREs are in
        the store: the MODSEQs it tells from now on are theirs."""
        if not self.condstore:
            await self.writes_stored()
            self.enable_condstore()

    async def writes_stored(self, besides_own: bool = False) -> None:
        """Wait for the selected mailbox's write-behind STOREs under way (see
        write_behind.py); besides_own: not this session's own."""
        view = self.view
        if view is not None and view.shared.behind:
            await view.shared.stored(view if besides_own else None)

    def modseq_of(self, uid: int) -> int:
        entry = self.view.entry(uid)
        # An expunge not yet announced: its last MODSEQ is gone with it; the mailbox's is no lower.
        return entry.modseq if entry is not None else self.view.shared.info.highestmodseq

    # -- output -----------------------------------------------------------------
    def untagged(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.conn.write(b"* " + data + b"\r\n")

    def tagged(self, tag: str, status: str, text: str, code: str | None = None) -> None:
        code_part = f"[{code}] " if code else ""
        self.conn.write(f"{tag} {status} {code_part}{text}\r\n".encode("utf-8", "replace"))

    def greeting(self) -> None:
        caps = " ".join(self.capability_list())
        self.untagged(f"OK [CAPABILITY {caps}] Posthouse ready.")

    # -- dispatch ---------------------------------------------------------------
    async def handle(self, cmd: Command) -> None:
        self.busy = True
        started = perf_counter() if self.command_timer is not None else 0.0
        try:
            await self._handle(cmd)
        finally:
            self.busy = False
            if self.command_timer is not None:
                self.command_timer(cmd.name, perf_counter() - started)
        if self.bye_after is not None:
            self.untagged("BYE " + self.bye_after)
            await self.close()
            self.conn.close()

    async def _handle(self, cmd: Command) -> None:
        spec = _commands().get(cmd.name)
        if spec is None or (cmd.uid and not spec.uid_ok):
            self.tagged(cmd.tag, "BAD", f"Unknown command {cmd.name}")
            return
        if self.state not in spec.states:
            self.tagged(cmd.tag, "BAD", f"{cmd.name} not allowed in the {self.state} state")
            return
        expunge_ok = spec.expunge_ok or cmd.uid
        # Several workers: what the others committed before this command came
        # is applied first, and what they told their clients is done: STOREs
        # of the selected mailbox, mail for this user (counted before reading
        # the socket: what was finished then was sent then).
        service = self.ctx.service
        behind = arriving = None
        if service.pending_watch is not None:
            if self.view is not None:
                behind = service.others_pending(BEHIND, self.view.shared.id)
            if self.user is not None:
                arriving = service.others_pending(ARRIVALS, self.user.id)
        service.take_remote()
        if behind:
            await service.others_done(BEHIND, self.view.shared.id, behind)
        if self.arrivals is not None and self.arrivals.pending and self.user is not None:
            # Mail answered "250" to its sender is there for the command that comes after,
            await self.arrivals.settled(self.user.id)
        if arriving:
            # and so is mail another worker answered so.
            await service.others_done(ARRIVALS, self.user.id, arriving)
        if self.view is not None and not self.view.shared.loaded.is_set():
            # The index is reading the store again (changes were lost): this command sees what it reads.
            await self.view.shared.caught_up()
        if self.view is not None and self.view.shared.behind:
            # Other sessions' STOREs whose clients were told OK: this command sees them.
            await self.writes_stored(besides_own=True)
        try:
            result = await spec.handler(self, cmd)
        except ParseError as e:
            await self.flush_updates(expunge_ok)
            self.tagged(cmd.tag, "BAD", str(e) or "Syntax error")
            return
        except CommandError as e:
            await self.flush_updates(expunge_ok)
            self.tagged(cmd.tag, e.status, e.text, e.code)
            return
        except StoreError as e:
            await self.flush_updates(expunge_ok)
            self.tagged(cmd.tag, "NO", str(e), e.code)
            return
        except (ConnectionError, OSError):
            raise
        except StoreProcessDied as e:
            # Whether the change was made can't be known: the client is told to look and retry.
            log.warning("command %s: %s", cmd.name, e)
            await self.flush_updates(expunge_ok)
            self.tagged(cmd.tag, "NO", "The store failed; the command may or may not have taken effect",
                        "UNAVAILABLE")
            return
        except Exception:
            # A bug in one command must not cost the client its session.
            log.exception("command %s failed user=%s", cmd.name, getattr(self.user, "name", None))
            self.tagged(cmd.tag, "NO", "Internal error; it has been logged", "SERVERBUG")
            return
        if self.state == LOGOUT or result is ANSWERED:
            return
        if self.view is not None and not self.view.shared.loaded.is_set():
            # A catch-up began meanwhile (another node's change, read from the
            # change log) and holds this command's own events until it ends:
            # the response tells of them (an APPEND's EXISTS, so that a UID
            # STORE on the UID it gave finds the message).
            await self.view.shared.caught_up()
        await self.flush_updates(expunge_ok)
        code, text = result if isinstance(result, tuple) else (None, result or f"{cmd.name} completed")
        self.tagged(cmd.tag, "OK", text, code)

    # -- the selected mailbox -----------------------------------------------------
    async def select(self, mailbox_id: int, name: str, readonly: bool) -> SelectedView:
        shared = await self.ctx.registry.acquire(mailbox_id)
        view = SelectedView(shared, readonly)
        shared.views.add(view)
        self.view, self.mailbox_name, self.state = view, name, SELECTED
        first = shared.info.first_recent_uid
        view.recent = view.recent_from(first)
        if not readonly and shared.info.uidnext > first:
            # The claim is made in memory, where every session sees it; the
            # store is told without waiting (its max() makes order no matter).
            shared.info.first_recent_uid = shared.info.uidnext
            if self.ctx.service.shared:
                # Several workers: the store says which of them are this session's.
                got = await self._take_recent(mailbox_id, shared.info.uidnext)
                view.recent = {u for u in view.recent if u >= got}
            else:
                self.ctx.service.post("claim_recent", mailbox_id, shared.info.uidnext)
        return view

    async def _take_recent(self, mailbox_id: int, upto_uid: int) -> int:
        """With several workers: the first UID below upto_uid that is \\Recent for
        this session (the store gives each to one session of any process)."""
        try:
            return await self.ctx.service.call("take_recent", mailbox_id, upto_uid)
        except Exception as e:      # (the store process died): \Recent is a hint; none this time
            log.warning("\\Recent not claimed in mailbox %s: %r", mailbox_id, e)
            return upto_uid

    def unselect(self) -> None:
        if self.view is not None:
            shared = self.view.shared
            shared.views.discard(self.view)
            self.ctx.registry.release(shared)
        self.view, self.mailbox_name = None, None
        self.search_contexts.clear()
        if self.state == SELECTED:
            self.state = AUTH

    def flags_responses(self) -> None:
        self.conn.write(self.view.shared.flags_responses(self.view.readonly))

    def format_flags(self, uid: int) -> str:
        view = self.view
        if len(view.shared.keywords) != len(view.known_keywords):
            # Every FETCH FLAGS goes through here: a keyword the client has not
            # been told of gets FLAGS and PERMANENTFLAGS first (RFC 9051 7.3.5),
            # whoever set it (this STORE/APPEND/COPY, or another session).
            view.known_keywords = set(view.shared.keywords)
            self.flags_responses()
        flags = sorted(view.flags(uid))
        if not self.rev2 and uid in self.view.recent:
            flags.append("\\Recent")
        return "(" + " ".join(flags) + ")"

    async def flush_updates(self, expunge_ok: bool = True) -> None:
        """Tell the client what changed in its mailbox, as far as it may be told now."""
        view = self.view
        if view is None:
            await self._deliver_notifications()
            return
        if view.gone:
            # Deleted or renamed by another session: nothing here is valid any more.
            self.conn.write(b"* BYE Selected mailbox was deleted or renamed\r\n")
            self.unselect()
            self.state = LOGOUT
            self.conn.close()
            return
        if expunge_ok and view.expunged:
            write = self.conn.write
            if self.search_contexts:
                search_updates.before_expunge(self, view.expunged)
            if self.qresync:
                gone = view.take_vanished()
                if gone:
                    write(b"* VANISHED " + format_uid_set(gone).encode() + b"\r\n")
            else:
                for seq in view.take_expunged():
                    write(b"* %d EXPUNGE\r\n" % seq)
        if view.shared.keywords - view.known_keywords:
            view.known_keywords = set(view.shared.keywords)
            self.flags_responses()
        if view.added:
            new = view.take_added()
            if new:
                if not view.readonly:
                    shared = view.shared
                    claim = [u for u in new if u >= shared.info.first_recent_uid]
                    if claim:
                        shared.info.first_recent_uid = max(claim) + 1
                        if self.ctx.service.shared:
                            got = await self._take_recent(shared.id, max(claim) + 1)
                            claim = [u for u in claim if u >= got]
                        else:
                            self.ctx.service.post("claim_recent", shared.id, shared.info.first_recent_uid)
                        view.recent.update(claim)
                self.untagged(f"{view.exists} EXISTS")
                if not self.rev2:
                    self.untagged(f"{len(view.recent)} RECENT")
                await self._fetch_new(new)
        if view.flag_changes:
            for uid in sorted(view.flag_changes):
                seq = view.seq_of(uid)
                if seq is not None and uid not in view.expunged:
                    modseq = f" MODSEQ ({self.modseq_of(uid)})" if self.condstore else ""
                    self.untagged(f"{seq} FETCH (UID {uid} FLAGS {self.format_flags(uid)}{modseq})")
            view.flag_changes.clear()
        if self.search_contexts:
            await search_updates.refresh(self)
        await self._deliver_notifications()

    async def _fetch_new(self, new: list[int]) -> None:
        """NOTIFY's MessageNew (fetch-att ...) for the selected mailbox."""
        group = self.notifier.selected_group if self.notifier is not None else None
        if group is None or not group.fetch_items or "MESSAGENEW" not in group.events:
            return
        from .commands.fetch import fetch_messages
        positions = [s - 1 for s in map(self.view.seq_of, new) if s is not None]
        await fetch_messages(self, positions, group.fetch_items)

    async def _deliver_notifications(self) -> None:
        if self.pending_overflow:
            self.pending_overflow = False
            self.untagged("OK [NOTIFICATIONOVERFLOW] Too many notifications; NOTIFY is off")
        if self.notifier is not None:
            await self.notifier.deliver()

    async def close(self) -> None:
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None
        self.unselect()
        self.state = LOGOUT
