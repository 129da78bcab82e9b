"""Password guessing, slowed across connections and protocols.

A delay per connection is no defence: fifty connections guess fifty times as
fast. So failed logins are remembered per client address and per account,
whatever the connection or protocol, and each address's (and each account's)
password checks are given time slots: after f failures the next check waits
base * 2^(f-1) seconds after the one before (up to max_delay). An attempt whose
slot is further off than max_delay is refused at once without its password
being checked, so many parallel attempts neither queue up nor learn anything.

An account's failures slow down only addresses that have failed themselves:
an attacker can't lock the real user out, whose right password from an
address without failures is answered at once, and so is one from an address
it has logged in from before (an office behind one NAT address is not shut
out by one phone with an old password). The authenticator admits an attempt
just before its password is hashed, so a burst from a clean address is
throttled as soon as its first failures are counted. Entries are forgotten
`forget_after` seconds after their last failure, and the tables are bounded
(least recently failed dropped first).
"""
from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

log = logging.getLogger("posthouse.auth")


@dataclass
class _Record:
    failures: int = 0
    last_failure: float = 0.0
    next_slot: float = 0.0      # when the next password check may be made
    pending: int = 0            # checks given a slot and not yet done: counted as failures to come


class Throttle:
    def __init__(self, base_delay: float = 1.0, max_delay: float = 60.0, forget_after: float = 3600.0,
                 size: int = 10_000, clock=time.monotonic):
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.size = size
        self.clock = clock
        self.addresses: OrderedDict[str, _Record] = OrderedDict()
        self.accounts: OrderedDict[str, _Record] = OrderedDict()
        # (address, account) pairs that logged in lately: exempt from the address's failures.
        self.known_good: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.refused = 0            # attempts refused unchecked (for logs and tests)
        self.last_wait: float | None = None     # what admit() said last
        self.last_slotted = False                # whether it gave that attempt a slot (see done())

    def _get(self, table: OrderedDict, key: str, now: float) -> _Record | None:
        record = table.get(key)
        if record is not None and record.failures and now - record.last_failure > self.forget_after:
            record.failures, record.next_slot = 0, 0.0
        return record

    def _add(self, table: OrderedDict, key: str) -> _Record:
        record = table[key] = _Record()
        while len(table) > self.size:
            table.popitem(last=False)
        return record

    def delay_after(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** min(failures - 1, 30))

    def admit(self, address: str, account: str) -> float | None:
        """Seconds to wait before checking this attempt's password (0: at
        once), or None: refused unchecked (its slot is too far off)."""
        self.last_slotted = False
        self.last_wait = wait = self._admit(address, account)
        return wait

    def _admit(self, address: str, account: str) -> float | None:
        if not self.max_delay:
            return 0.0          # throttling is off
        now = self.clock()
        by_address = self._get(self.addresses, address, now)
        if by_address is None or by_address.failures == 0:
            return 0.0          # a clean address is not held back
        good = self.known_good.get((address, account))
        if good is not None and now - good <= self.forget_after:
            return 0.0          # nor a user where they have logged in before
        records = [by_address]
        by_account = self._get(self.accounts, account, now)
        if by_account is not None and by_account.failures:
            records.append(by_account)
        slot = max([now] + [r.next_slot for r in records])
        if slot - now > self.max_delay:
            self.refused += 1
            return None
        # Checks still under way count as failures already: otherwise a burst
        # admitted before they end would all get the short waits of now.
        delay = max(self.delay_after(r.failures + r.pending) for r in records)
        for r in records:
            r.next_slot = slot + delay
            r.pending += 1
        self.last_slotted = True
        return slot - now

    def done(self, address: str, account: str, ok: bool, slotted: bool = False) -> None:
        """A checked attempt's outcome; slotted: admit() gave it a slot (last_slotted)."""
        if not self.max_delay:
            return
        now = self.clock()
        for table, key in ((self.addresses, address), (self.accounts, account)):
            record = table.get(key)
            if slotted and record is not None and record.pending:
                record.pending -= 1
        if ok:
            # The account's owner got in: its count starts again. The address's
            # doesn't (a guesser could log in to an account of its own to clear it).
            self.accounts.pop(account, None)
            self.known_good[(address, account)] = now
            self.known_good.move_to_end((address, account))
            while len(self.known_good) > self.size:
                self.known_good.popitem(last=False)
            return
        for table, key in ((self.addresses, address), (self.accounts, account)):
            record = self._get(table, key, now) or self._add(table, key)
            record.failures += 1
            record.last_failure = now
            record.next_slot = max(record.next_slot, now + self.delay_after(record.failures))
            table.move_to_end(key)

    def failures(self, address: str) -> int:
        record = self._get(self.addresses, address, self.clock())
        return record.failures if record is not None else 0

    def trim(self) -> None:
        """Drop forgotten entries (the tables are bounded anyway; this keeps them small)."""
        now = self.clock()
        for table in (self.addresses, self.accounts):
            for key in [k for k, r in table.items() if now - r.last_failure > self.forget_after]:
                del table[key]
        for key in [k for k, t in self.known_good.items() if now - t > self.forget_after]:
            del self.known_good[key]


def client_address(peer) -> str:
    """The address a throttle counts by, from a peer as the protocols give it:
    ("ip", port), "ip:port", "[v6]:port" or a bare "ip". IPv6 by its /64."""
    if isinstance(peer, tuple):
        host = str(peer[0]) if peer else "?"
    else:
        host = str(peer)
        try:
            ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            host = host.rpartition(":")[0].strip("[]") or host
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
