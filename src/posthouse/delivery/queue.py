"""The outbound queue: submitted mail for other domains, relayed through the
configured smarthost (RFC 6409 submission -> RFC 5321 relay).

Every message is in the store (durably) before the submitting client hears
250, and leaves the queue only once the smarthost has accepted it for each
recipient, or it is given up: a permanent refusal (5xx) at once, a
temporary one (4xx, no connection) after retries with growing delays for
`relay_lifetime`. Given-up recipients get the sender a bounce (RFC 3464) in
their INBOX. A restart loses nothing: the worker picks up what is due.

A message is taken out of the queue only after the smarthost's 250, and
marked done in its own transaction right after; a crash between the two
sends it again on restart (SMTP's "at least once": a duplicate, never a loss).
"""
from __future__ import annotations

import asyncio
import logging
import time

import aiosmtplib

from .dsn import bounce

log = logging.getLogger("posthouse.queue")

BATCH = 20


def retry_delay(attempts: int, base: float) -> float:
    """base, 2x, 4x ... capped at 64x base (an hour for the default minute)."""
    return base * min(2 ** attempts, 64)


class OutboundQueue:
    def __init__(self, service, config, deliverer):
        self.service = service
        self.config = config
        self.deliverer = deliverer
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    @property
    def enabled(self) -> bool:
        return bool(self.config.relay_host)

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def enqueue(self, user_id, sender: str, recipients: list[str], data: bytes) -> int:
        item_id = await self.service.call("enqueue", user_id, sender, recipients, data, time.time())
        self.wake()
        relay = getattr(self.service, "relay", None)
        if relay is not None:
            relay("outbound")       # several workers: worker 0's queue sends it (workers.py)
        return item_id

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbound queue run failed")
                worked = False
            if worked:
                continue
            due = await self.service.call("next_outbound_time")
            wait = 30.0 if due is None else max(0.05, min(30.0, due - time.time()))
            self._wake.clear()
            # asyncio.wait, not wait_for: Python 3.11's wait_for can swallow
            # the cancellation that close() sends.
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=wait)
            finally:
                waiter.cancel()

    async def run_once(self) -> bool:
        """Try every due message once; True if there were any."""
        items = await self.service.call("due_outbound", time.time(), BATCH)
        for item in items:
            await self._attempt(item)
        return bool(items)

    async def _attempt(self, item) -> None:
        config = self.config
        temporary: dict[str, str] = {}
        permanent: list[tuple[str, str, str]] = []
        try:
            # The SMTP client, not aiosmtplib.send: that one refuses the null
            # sender that bounces and vacation replies must have.
            client = aiosmtplib.SMTP(
                hostname=config.relay_host, port=config.relay_port, use_tls=config.relay_tls == "tls",
                start_tls=config.relay_tls == "starttls", validate_certs=config.relay_verify,
                username=config.relay_user or None, password=config.relay_password or None,
                timeout=config.relay_timeout, local_hostname=config.hostname or None)
            async with client:
                errors, _response = await client.sendmail(item.sender, item.recipients, item.data)
            for rcpt, resp in errors.items():
                if 400 <= resp.code < 500:
                    temporary[rcpt] = f"{resp.code} {resp.message}"
                else:
                    permanent.append((rcpt, _status(resp.code, resp.message), f"{resp.code} {resp.message}"))
        except aiosmtplib.SMTPRecipientsRefused as e:
            for err in e.recipients:
                if 400 <= err.code < 500:
                    temporary[err.recipient] = f"{err.code} {err.message}"
                else:
                    permanent.append((err.recipient, _status(err.code, err.message), f"{err.code} {err.message}"))
        except aiosmtplib.SMTPResponseException as e:
            # A refusal of the whole transaction (MAIL FROM, DATA, or the greeting).
            if e.code < 500:
                temporary = {r: f"{e.code} {e.message}" for r in item.recipients}
            else:
                permanent = [(r, _status(e.code, e.message), f"{e.code} {e.message}") for r in item.recipients]
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as e:
            temporary = {r: f"smarthost not reachable: {e}" for r in item.recipients}
        failed = set(temporary) | {p[0] for p in permanent}
        delivered = [r for r in item.recipients if r not in failed]
        if delivered:
            log.info("queue %d: relayed to %s", item.id, ", ".join(delivered))
        now = time.time()
        remaining = list(temporary)
        if remaining and now - item.created >= config.relay_lifetime:
            permanent += [(r, "4.4.7", f"gave up after {item.attempts + 1} tries: {temporary[r]}") for r in remaining]
            remaining = []
        error = "; ".join(sorted(set(temporary.values())))[:1000]
        next_attempt = now + retry_delay(item.attempts, config.relay_retry_base) if remaining else None
        if permanent:
            await self._bounce(item, permanent)     # before the row goes: a crash re-bounces, never loses
        await self.service.call("outbound_attempted", item.id, remaining, next_attempt, error)
        if remaining:
            log.info("queue %d: will retry %s (%s)", item.id, ", ".join(remaining), error)

    async def _bounce(self, item, failures) -> None:
        for rcpt, status, diagnostic in failures:
            log.warning("queue %d: %s failed: %s", item.id, rcpt, diagnostic)
        if not item.sender or item.user_id is None:
            return          # a bounce is never bounced (null sender), nor sent to no one
        user = await self.service.call("user_by_id", item.user_id)
        if user is None:
            return
        from .recipients import Recipient
        report = bounce(self.config.hostname or "localhost", item.sender, item.data, failures, item.created)
        results = await self.deliverer.deliver(report, [Recipient(item.sender, user, None)], "")
        if not results[0].ok:
            log.error("queue %d: the bounce to %s could not be delivered: %s", item.id, item.sender,
                      results[0].reply())


def _status(code: int, message: str) -> str:
    """The enhanced status code at the start of a reply's text, or one from the code."""
    first = (message or "").split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return first
    return "5.0.0" if code >= 500 else "4.0.0"
