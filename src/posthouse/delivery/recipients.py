"""Which user a delivery address means.

An address is looked up as it is, then without its domain, and each of those
without a "+detail" subaddress (RFC 5233): alice+lists@example.com reaches
the user "alice+lists@example.com", "alice@example.com", "alice+lists" or
"alice", the first that exists. User names are matched without case.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..store.api import DeliveryFacts, Quota, User


@dataclass(frozen=True)
class Recipient:
    address: str          # as the client gave it in RCPT TO
    user: User
    detail: str | None    # the subaddress, if the address had one
    # Read at RCPT (quota, Sieve script, INBOX), so DATA asks the store
    # nothing more; None: read when needed.
    facts: DeliveryFacts | None = field(default=None, compare=False)


def candidates(address: str, delimiter: str = "+") -> list[tuple[str, str | None]]:
    """(user name to try, detail) in the order they are tried."""
    address = address.strip().strip("<>")
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    names: list[tuple[str, str | None]] = [(address, None)]
    if domain:
        names.append((local, None))
    if delimiter and delimiter in local:
        base, _, detail = local.partition(delimiter)
        if base:
            if domain:
                names.append((f"{base}@{domain}", detail))
            names.append((base, detail))
    seen, out = set(), []
    for name, detail in names:
        if name and name.lower() not in seen:
            seen.add(name.lower())
            out.append((name, detail))
    return out


async def resolve(service, address: str, delimiter: str = "+", facts: bool = False) -> Recipient | None:
    """The user an address means; facts: with what a delivery needs (Recipient.facts)."""
    for name, detail in candidates(address, delimiter):
        if facts:
            found = await service.call("delivery_facts", name)
            if found is not None:
                return Recipient(address, found.user, detail, found)
            continue
        user = await service.call("get_user", name)
        if user is not None:
            return Recipient(address, user, detail)
    return None


async def over_quota(service, recipient: Recipient, size: int = 0) -> bool:
    """Whether a message of size bytes (0: unknown) can't fit: checked at RCPT,
    so a full mailbox costs no transfer. (The append checks again, exactly.)"""
    return quota_exceeded(await service.call("get_quota", recipient.user.id), size)


def quota_exceeded(quota: Quota, size: int = 0) -> bool:
    if quota.message_limit is not None and quota.messages >= quota.message_limit:
        return True
    return quota.storage_limit is not None and quota.storage + max(size, 1) > quota.storage_limit
