"""The background task that posts queued deliveries: signed, with a timeout,
retried with exponential backoff and jitter up to `attempts` times, then
marked failed. The queue is in the database, so a restart resumes it."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
from datetime import datetime, timedelta, timezone

import httpx

from .. import __version__
from .signing import signature
from .store import WebhookStore

log = logging.getLogger("posthouse.webhooks")
MAX_DELAY = 6 * 3600.0        # the longest wait between two attempts
PARALLEL = 8                  # deliveries posted at once
KEEP_LOG = 30 * 86400.0       # finished deliveries stay in the log this long
PRUNE_EVERY = 3600.0


def backoff(attempt: int, base: float, *, jitter=random.random) -> float:
    """Seconds before attempt+1: base * 2^(attempt-1), capped, times 0.5-1.5
    so that many failed deliveries don't all come back at once."""
    return min(MAX_DELAY, base * (2 ** max(0, attempt - 1))) * (0.5 + jitter())


class WebhookSender:
    def __init__(self, store: WebhookStore, *, attempts: int = 8, retry_base: float = 30.0,
                 timeout: float = 10.0, poll: float = 30.0, allow_private: bool = False):
        self.store = store
        # Users name the URLs: by default none may point the server at its own
        # loopback, the LAN or a cloud metadata address.
        self.allow_private = allow_private
        self.attempts = attempts
        self.retry_base = retry_base
        self.timeout = timeout
        self.poll = poll                  # looked at this often even without a wake-up (other nodes' events)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None

    def wake(self) -> None:
        """Thread-safe: new deliveries are queued."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                         headers={"User-Agent": f"Posthouse-Webhooks/{__version__}"})
        self._task = self._loop.create_task(self._run(), name="webhooks")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        pruned_at = float("-inf")
        while True:
            self._wake.clear()
            try:
                if time.monotonic() - pruned_at > PRUNE_EVERY:
                    pruned_at = time.monotonic()
                    await asyncio.to_thread(self.store.prune, KEEP_LOG)
                await self.run_once()
                wait = await self._until_next()
            except asyncio.CancelledError:
                raise
            except Exception:       # the database away for a moment: try again later
                log.exception("webhooks: the delivery queue could not be worked through")
                wait = self.poll
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def _until_next(self) -> float:
        due = await asyncio.to_thread(self.store.next_due)
        if due is None:
            return self.poll
        return max(0.05, min(self.poll, (due - datetime.now(timezone.utc)).total_seconds()))

    async def run_once(self) -> int:
        """Post every delivery due now; how many were tried."""
        tried = 0
        while True:
            batch = await asyncio.to_thread(self.store.claim_due, lease=self.timeout * 3 + 30, limit=PARALLEL)
            if not batch:
                return tried
            await asyncio.gather(*(self._deliver(d) for d in batch))
            tried += len(batch)

    async def _private_destination(self, url: str) -> str | None:
        try:
            return await private_destination(url, self.timeout)
        except Exception as e:      # a URL httpx can't parse: the POST will fail and say so
            log.debug("webhook URL %r: %s", url, e)
            return None

    async def _deliver(self, delivery: dict) -> None:
        body = delivery["body"].encode()
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "X-Posthouse-Event": delivery["event_type"],
                   "X-Posthouse-Delivery": delivery["delivery_id"], "X-Posthouse-Timestamp": str(timestamp),
                   "X-Posthouse-Signature": signature(delivery["secret"], timestamp, body)}
        status_code, error = None, None
        refused = None if self.allow_private else await self._private_destination(delivery["url"])
        if refused:     # a permanent refusal: no retry
            await asyncio.to_thread(self.store.record, delivery["id"], ok=False, status_code=None,
                                    error=refused, retry_at=None)
            return
        try:
            response = await self._client.post(delivery["url"], content=body, headers=headers)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code} {response.reason_phrase}".strip()
        except httpx.TimeoutException:
            error = f"no answer in {self.timeout:g} s"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        except Exception as e:      # a URL httpx can't use, and the like: the delivery fails, not the sender
            error = f"{type(e).__name__}: {e}"
        ok = error is None
        attempt = delivery["attempts"] + 1
        retry_at = None
        if not ok and attempt < self.attempts:
            retry_at = datetime.now(timezone.utc) + timedelta(seconds=backoff(attempt, self.retry_base))
        if not ok:
            log.info("webhook delivery %s to %s failed (attempt %d of %d): %s", delivery["delivery_id"],
                     delivery["url"], attempt, self.attempts, error)
        await asyncio.to_thread(self.store.record, delivery["id"], ok=ok, status_code=status_code,
                                error=error, retry_at=retry_at)


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


async def private_destination(url: str, timeout: float = 10.0) -> str | None:
    """Why url may not be posted to (it is, or resolves to, a loopback,
    private, link-local or otherwise non-public address), or None."""
    parts = httpx.URL(url)
    host = parts.host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await asyncio.wait_for(_resolve(host, port), timeout)
    except (OSError, asyncio.TimeoutError, UnicodeError) as e:
        return None if isinstance(e, OSError) else f"can't resolve {host}"     # (the POST says why)
    bad = [a for a in addresses if _is_private(a)]
    if bad:
        return (f"refused: {host} is {bad[0]}, not a public address (an administrator may allow that: "
                f"[webhooks] allow_private = true)")
    return None
