"""Local delivery: one message, several recipients, each into their INBOX.

The message is parsed once; every recipient gets the same bytes (trace
headers included), so the store keeps one copy however many receive it.
Small mail is answered once it is durable in the arrivals journal and filed
just after (delivery/arrivals.py). Other mail: all recipients' appends go
to the store together and commit in one group commit, durably, before
anyone hears "250"; a failure for one recipient is that recipient's alone.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from email.utils import formatdate

from ..logfmt import log_delivery
from ..sieve.interpreter import FileInto, MessageFacts, Outcome, SieveRuntimeError, evaluate
from ..sieve.script import SieveError, compile_script
from ..store.api import DiskFull, MailboxExists, NoSuchMailbox, OverQuota, StoreError
from ..store.space import is_disk_full
from .recipients import Recipient, resolve

log = logging.getLogger("posthouse.delivery")


class DeliveryResult:
    """One recipient's outcome: an SMTP reply code and enhanced status (RFC 3463)."""
    __slots__ = ("recipient", "code", "status", "text", "uid")

    def __init__(self, recipient: Recipient, code: int, status: str, text: str, uid=None):
        self.recipient, self.code, self.status, self.text, self.uid = recipient, code, status, text, uid

    @property
    def ok(self) -> bool:
        return self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    def reply(self) -> str:
        return f"{self.code} {self.status} <{self.recipient.address}> {self.text}"


def mailbox_full(recipient: Recipient, tempfail: bool) -> DeliveryResult:
    """Over quota: 552 5.2.2, or 452 4.2.2 where the server is told to let the sender retry."""
    if tempfail:
        return DeliveryResult(recipient, 452, "4.2.2", "Mailbox full, try again later")
    return DeliveryResult(recipient, 552, "5.2.2", "Mailbox full")


def disk_full(recipient: Recipient) -> DeliveryResult:
    """No room to keep the message (store/space.py): the sender tries again later (RFC 3463 4.3.1)."""
    return DeliveryResult(recipient, 452, "4.3.1", "Insufficient system storage, try again later")


def trace_headers(mail_from: str, helo: str, peer: str, hostname: str, protocol: str, ident: str) -> bytes:
    """Return-Path and Received (RFC 5321 4.4) for a message we accept."""
    sender = mail_from if mail_from not in (None, "<>") else ""
    received = (f"Received: from {_safe(helo) or 'unknown'} ({_safe(peer)})\r\n"
                f"\tby {_safe(hostname)} (Posthouse) with {protocol} id {ident};\r\n"
                f"\t{formatdate(time.time())}\r\n")
    return f"Return-Path: <{_safe(sender)}>\r\n{received}".encode("utf-8", "replace")


def _safe(text: str) -> str:
    """Header-safe: no line breaks or other controls from what a client said."""
    return "".join(c for c in (text or "") if c >= " " and c != "\x7f")


def _without_return_path(raw: bytes) -> bytes:
    """The message as sent on: its Return-Path is the next receiver's to add."""
    if raw[:12].lower() == b"return-path:":
        end = raw.find(b"\r\n")
        return raw[end + 2:] if end >= 0 else raw
    return raw


class Routing:
    """Where an arrival goes: (user_id, mailbox_id, flags) targets, and the
    vacation replies its recipients' scripts asked for. parsed is None where
    no script needed it: the store parses the message, off the event loop."""
    __slots__ = ("raw", "parsed", "targets", "vacations")

    def __init__(self, raw: bytes, parsed):
        self.raw, self.parsed = raw, parsed
        self.targets: list[tuple] = []
        self.vacations: list[tuple] = []


def new_ident() -> str:
    return secrets.token_hex(8)


class Deliverer:
    def __init__(self, service, config):
        self.service = service
        self.config = config
        self.queue = None       # delivery.queue.OutboundQueue: set when the server is wired
        self.arrivals = None    # delivery.arrivals.Arrivals: set when the server is wired
        self.on_results = None  # admin/metrics.py: called with each delivery's results
        from .vacation import Vacations
        self.vacations = Vacations(service, config, self)

    async def deliver(self, raw: bytes, recipients: list[Recipient], mail_from: str = "",
                      direct: bool = False, ident: str = "") -> list[DeliveryResult]:
        """direct: filed before the answer even if small (mail that a filing makes).
        One log line per message (logfmt.log_delivery); ident names it there."""
        started = time.monotonic()
        journal = not direct and self.arrivals is not None and self.arrivals.takes(raw)
        results = await self._deliver(raw, recipients, mail_from, direct)
        log_delivery(ident, mail_from, results, len(raw), started, journal)
        if self.on_results is not None:     # admin/metrics.py counts them
            self.on_results(results)
        return results

    async def _deliver(self, raw: bytes, recipients: list[Recipient], mail_from: str,
                       direct: bool) -> list[DeliveryResult]:
        if not self.service.space.room_for(len(raw)):
            # Refused before anything is answered: mail the store can't keep is never taken.
            return [disk_full(r) for r in recipients]
        if not direct and self.arrivals is not None and self.arrivals.takes(raw):
            return await self.arrivals.accept(raw, recipients, mail_from)
        try:
            raw, parsed = await self.service.parse(raw)
        except DiskFull:
            return [disk_full(r) for r in recipients]
        except Exception:
            log.exception("delivery: the message could not be parsed")
            return [DeliveryResult(r, 451, "4.3.0", "Could not process the message") for r in recipients]
        now = time.time()
        # Together: the store's group commit makes them one transaction, one fsync.
        return list(await asyncio.gather(*(self._one(r, raw, parsed, now, mail_from) for r in recipients)))

    async def route_arrival(self, arrival) -> Routing:
        """Where mail accepted through the arrivals journal goes: each
        recipient's Sieve script decides (redirects are sent here)."""
        raw, parsed = arrival.raw, None
        scripts = [await self._script(r) for r in arrival.recipients]
        if any(scripts):
            raw, parsed = await self.service.parse(raw)
        routing = Routing(raw, parsed)
        for recipient, script in zip(arrival.recipients, scripts):
            outcome = await self._outcome(recipient, raw, parsed, arrival.mail_from, script)
            for delivery in outcome.deliveries:
                try:
                    mailbox = await self._target(recipient, delivery)
                except NoSuchMailbox:       # gone since the mail was accepted (the user, or INBOX)
                    log.warning("arrival %d: %s has no INBOX now; not filed for them", arrival.seq,
                                recipient.user.name)
                    continue
                routing.targets.append((recipient.user.id, mailbox.id, delivery.flags))
            if outcome.vacation is not None:
                routing.vacations.append((recipient, outcome.vacation))
        return routing

    async def inbox_routing(self, arrival) -> Routing:
        """Each recipient's INBOX, no Sieve: for an arrival whose routing
        failed more than once (the mail is kept, as when a script fails)."""
        routing = Routing(arrival.raw, None)
        for recipient in arrival.recipients:
            try:
                mailbox = await self._target(recipient, FileInto("INBOX", frozenset()))
            except NoSuchMailbox:
                continue
            routing.targets.append((recipient.user.id, mailbox.id, frozenset()))
        return routing

    async def after_filing(self, arrival, routing: Routing) -> None:
        """Vacation replies, once the mail is in its mailboxes."""
        if not routing.vacations or self.vacations is None:
            return
        raw, parsed = routing.raw, routing.parsed
        if parsed is None:
            raw, parsed = await self.service.parse(raw)
        for recipient, vacation in routing.vacations:
            await self.vacations.consider(recipient, raw, parsed, arrival.mail_from, vacation, arrival.time)

    async def _script(self, recipient: Recipient) -> str | None:
        if recipient.facts is not None:
            return recipient.facts.script
        return await self.service.call("active_script", recipient.user.id)

    async def _outcome(self, recipient: Recipient, raw: bytes, parsed, mail_from: str, script) -> Outcome:
        """Where the message goes for this recipient, redirects done."""
        outcome = await self._filter(recipient, raw, parsed, mail_from, script)
        if outcome.redirects and not await self._redirect(recipient, raw, mail_from, outcome.redirects):
            # Not sent on: keep it instead, so nothing is lost.
            outcome.deliveries = outcome.deliveries or [FileInto("INBOX", frozenset())]
        return outcome

    async def _filter(self, recipient: Recipient, raw: bytes, parsed, mail_from: str, text) -> Outcome:
        """The recipient's active Sieve script's verdict; INBOX if none, or if
        the script is broken or fails (the error is logged, the mail kept)."""
        inbox = Outcome([FileInto("INBOX", frozenset())])
        if not text:
            return inbox
        try:
            nodes = compile_script(text)
            facts = MessageFacts.from_message(raw, parsed.header_size, mail_from, recipient.address)
            if "mailboxexists" in text:
                facts.mailboxes = {m.name for m in await self.service.call("list_mailboxes", recipient.user.id)}
            return evaluate(nodes, facts)
        except (SieveError, SieveRuntimeError) as e:
            log.warning("sieve script of %s failed, message kept in INBOX: %s", recipient.user.name, e)
        except Exception:
            log.exception("sieve script of %s failed, message kept in INBOX", recipient.user.name)
        return inbox

    async def _target(self, recipient: Recipient, delivery: FileInto):
        """The mailbox a delivery goes to: created if asked (:create), else INBOX
        when it doesn't exist (RFC 5228 4.1: an error, so the message is kept)."""
        user = recipient.user
        facts = recipient.facts
        if delivery.mailbox == "INBOX" and facts is not None and facts.inbox is not None:
            return facts.inbox      # an INBOX keeps its id (renaming it moves its messages)
        try:
            return await self.service.call("get_mailbox", user.id, delivery.mailbox)
        except NoSuchMailbox:
            if not delivery.create:
                log.warning("sieve of %s: no mailbox %r, filed in INBOX", user.name, delivery.mailbox)
                return await self.service.call("get_mailbox", user.id, "INBOX")
        try:
            return await self.service.call("create_mailbox", user.id, delivery.mailbox)
        except MailboxExists:
            return await self.service.call("get_mailbox", user.id, delivery.mailbox)
        except StoreError as e:
            log.warning("sieve of %s: can't create %r (%s), filed in INBOX", user.name, delivery.mailbox, e)
            return await self.service.call("get_mailbox", user.id, "INBOX")

    MAX_HOPS = 25       # Received fields beyond which a redirect is taken for a loop

    async def send_on(self, message: bytes, addresses: list[str], mail_from: str, user_id, why: str) -> bool:
        """Mail that a delivery makes (a redirect, a vacation reply): addresses
        at our `domains` get it here, with a Received field of its own; others
        through the outbound queue. False if it can't go (no such local user,
        no relay, a failure); the caller decides what then."""
        remote = []
        for address in addresses:
            if not self.config.serves(address):
                remote.append(address)
                continue
            target = await resolve(self.service, address, self.config.recipient_delimiter)
            if target is None:
                log.warning("%s: no user %s here", why, address)
                return False
            host = self.config.hostname or "localhost"
            trace = trace_headers(mail_from, host, "local", host, f"local ({why})", new_ident())
            results = await self.deliver(trace + message, [target], mail_from, direct=True)
            if not results[0].ok:
                log.warning("%s to %s: %s", why, address, results[0].reply())
                return False
        if remote:
            if self.queue is None or not self.queue.enabled:
                log.warning("%s to %s: no relay is configured", why, ", ".join(remote))
                return False
            await self.queue.enqueue(user_id, mail_from or "", remote, message)
        return True

    async def _redirect(self, recipient: Recipient, raw: bytes, mail_from: str, addresses: list[str]) -> bool:
        """Send the message on (Sieve redirect) with its original envelope
        sender. False if it could not be (a loop, no relay, an error)."""
        head = raw[:raw.find(b"\r\n\r\n") + 2] if b"\r\n\r\n" in raw else raw
        if head.lower().count(b"\nreceived:") + head.lower().startswith(b"received:") >= self.MAX_HOPS:
            log.warning("sieve redirect by %s refused: the message has looped", recipient.user.name)
            return False
        try:
            sent = await self.send_on(_without_return_path(raw), addresses, mail_from, None,
                                      f"sieve redirect by {recipient.user.name}")
        except Exception:
            log.exception("sieve redirect by %s failed", recipient.user.name)
            return False
        if sent:
            log.info("sieve redirect by %s to %s", recipient.user.name, ", ".join(addresses))
        return sent

    async def _one(self, recipient: Recipient, raw: bytes, parsed, now: float, mail_from: str) -> DeliveryResult:
        try:
            outcome = await self._outcome(recipient, raw, parsed, mail_from, await self._script(recipient))
            appended = []
            for delivery in outcome.deliveries:
                mailbox = await self._target(recipient, delivery)
                appended += await self.service.append_parsed(mailbox.id, [(raw, parsed, delivery.flags, now)])
            if outcome.vacation is not None and self.vacations is not None:
                await self.vacations.consider(recipient, raw, parsed, mail_from, outcome.vacation, now)
        except NoSuchMailbox:
            return DeliveryResult(recipient, 451, "4.2.0", "The recipient has no INBOX")
        except OverQuota:
            return mailbox_full(recipient, self.config.quota_full_tempfail)
        except DiskFull:
            return disk_full(recipient)
        except StoreError as e:
            return DeliveryResult(recipient, 451, "4.3.0", str(e))
        except Exception as e:
            if is_disk_full(e):
                return disk_full(recipient)
            log.exception("delivery to %s failed", recipient.address)
            return DeliveryResult(recipient, 451, "4.3.0", "Temporary failure, try again later")
        if not appended:
            return DeliveryResult(recipient, 250, "2.0.0", "Discarded by the recipient's filter")
        return DeliveryResult(recipient, 250, "2.0.0", "Delivered", uid=appended[0].uid)
