"""Checks credentials off the event loop, delays and counts failures, and
slows guessing across connections and protocols (throttle.py)."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from ..store.api import User
from ..store.service import StoreService
from .passwords import DUMMY_HASH, verify_password
from .service_identity import ServiceIdentity
from .throttle import Throttle, client_address

log = logging.getLogger("posthouse.auth")


class VerifiedCache:
    """Recently verified (user, password) pairs, so a client that logs in again
    and again (phones, CRMs, every IMAP session of a busy client) doesn't pay for
    scrypt each time. Only a keyed digest of the password is kept, with a key that
    lives in this process only, and an entry is valid only while the user's
    stored hash is the one it was checked against (a password change ends it)."""

    def __init__(self, ttl: float, size: int = 10_000):
        self.ttl = ttl
        self.size = size
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[str, tuple[str, bytes, float]] = OrderedDict()

    def _digest(self, name: str, password: str) -> bytes:
        return hmac.new(self._key, f"{name}\0{password}".encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def check(self, name: str, stored_hash: str, password: str) -> bool:
        entry = self._entries.get(name)
        if entry is None:
            return False
        cached_hash, digest, expires = entry
        if time.monotonic() > expires or cached_hash != stored_hash:
            del self._entries[name]
            return False
        return hmac.compare_digest(digest, self._digest(name, password))

    def add(self, name: str, stored_hash: str, password: str) -> None:
        if self.ttl <= 0:
            return
        self._entries[name] = (stored_hash, self._digest(name, password), time.monotonic() + self.ttl)
        self._entries.move_to_end(name)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class Authenticator:
    def __init__(self, service: StoreService, failure_delay: float = 1.0, hash_threads: int = 2,
                 cache_ttl: float = 0, throttle: Throttle | None = None,
                 service_identity: ServiceIdentity | None = None):
        self.service = service
        self.service_identity = service_identity    # None: no one may act as another user
        self.failure_delay = failure_delay
        self.cache = VerifiedCache(cache_ttl)
        self.throttle = throttle if throttle is not None else Throttle(base_delay=failure_delay)
        self._attempts = 0
        # Hashing waits for a turn here, and only then asks the throttle: a
        # burst of guesses meets the failures of those before it.
        self._hashing = asyncio.Semaphore(hash_threads)
        # A bounded pool: a burst of logins queues here instead of eating memory.
        self._pool = ThreadPoolExecutor(hash_threads, thread_name_prefix="posthouse-hash")
        self.failures = 0

    async def check(self, username: str, password: str, peer: str = "?") -> User | None:
        user = await self.service.call("get_user", username) if username and len(username) <= 256 else None
        loop = asyncio.get_running_loop()
        stored = user.password_hash if user else DUMMY_HASH
        if user is not None and self.cache.check(user.name, stored, password):
            log.debug("login ok (cached) user=%s peer=%s", user.name, peer)
            return user         # a password known right: nothing guessed, nothing to slow
        address, account = client_address(peer), username[:256].lower()
        self._attempts += 1
        if self._attempts % 1000 == 0:
            self.throttle.trim()
        async with self._hashing:
            wait = self.throttle.admit(address, account)
            slotted = self.throttle.last_slotted
            if wait == 0:
                ok = await loop.run_in_executor(self._pool, verify_password, stored, password)
        if wait:
            await asyncio.sleep(wait)       # its slot, not holding a turn meanwhile
            async with self._hashing:
                ok = await loop.run_in_executor(self._pool, verify_password, stored, password)
        if wait is None:
            self.failures += 1
            log.warning("login refused unchecked user=%r peer=%s: too many failures from there",
                        username[:64], peer)
            # Answered only after the longest wait: the guesser learns nothing, and late.
            await asyncio.sleep(max(self.failure_delay, self.throttle.max_delay))
            return None
        ok = ok and user is not None
        self.throttle.done(address, account, ok, slotted)
        if ok:
            self.cache.add(user.name, stored, password)
            log.debug("login ok user=%s peer=%s", user.name, peer)     # the protocol logs the login (logfmt)
            return user
        self.failures += 1
        log.debug("login failed user=%r peer=%s (failures so far: %d; from there: %d)", username[:64], peer,
                    self.failures, self.throttle.failures(address))
        await asyncio.sleep(self.failure_delay)
        return None

    async def check_service(self, authzid: str, authcid: str, password: str, peer: str = "?") -> User | None:
        """SASL PLAIN with an authorization identity: only the service identity
        with its secret may act as a user, and only as one that exists."""
        identity = self.service_identity
        if identity is None or not identity.matches(authcid, password):
            self.failures += 1
            log.warning("acting as user %r refused for %r peer=%s: %s", authzid[:64], authcid[:64], peer,
                        "not the service identity, or a wrong secret" if identity else "no service identity here")
            await asyncio.sleep(self.failure_delay)
            return None
        user = await self.service.call("get_user", authzid) if len(authzid) <= 256 else None
        if user is None:
            log.warning("service %s refused: no user %r to act as, peer=%s", authcid, authzid[:64], peer)
            return None
        log.info("service %s acted as user %s peer=%s", authcid, user.name, peer)
        return user

    def close(self) -> None:
        self._pool.shutdown(wait=False)
