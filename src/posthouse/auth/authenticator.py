"""Checks credentials off the event loop, delays and counts failures."""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from ..store.api import User
from ..store.service import StoreService
from .passwords import DUMMY_HASH, verify_password

log = logging.getLogger("posthouse.auth")


class Authenticator:
    def __init__(self, service: StoreService, failure_delay: float = 1.0, hash_threads: int = 2):
        self.service = service
        self.failure_delay = failure_delay
        # A bounded pool: a burst of logins queues here instead of eating memory.
        self._pool = ThreadPoolExecutor(hash_threads, thread_name_prefix="posthouse-hash")
        self.failures = 0

    async def check(self, username: str, password: str, peer: str = "?") -> User | None:
        user = await self.service.call("get_user", username) if username and len(username) <= 256 else None
        loop = asyncio.get_running_loop()
        stored = user.password_hash if user else DUMMY_HASH
        ok = await loop.run_in_executor(self._pool, verify_password, stored, password)
        if ok and user is not None:
            log.info("login ok user=%s peer=%s", user.name, peer)
            return user
        self.failures += 1
        log.warning("login failed user=%r peer=%s (failures so far: %d)", username[:64], peer, self.failures)
        await asyncio.sleep(self.failure_delay)
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False)
