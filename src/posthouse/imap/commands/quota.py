"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, and SETQUOTA refused.

Each user has one quota root, named "" (as in the RFC's examples), that
holds all their mailboxes. Limits are set by the administrator (`posthouse
quota set`), so QUOTASET is not advertised and SETQUOTA gets NO [NOPERM].
"""
from __future__ import annotations

from ...store.api import Quota
from ..errors import no

ROOT = ""


def quota_line(quota: Quota) -> bytes:
    """`QUOTA "" (...)`: only the resources that have a limit are listed.
    STORAGE counts units of 1024 octets: usage rounded up, limit down."""
    resources = []
    if quota.storage_limit is not None:
        resources.append(f"STORAGE {(quota.storage + 1023) // 1024} {quota.storage_limit // 1024}")
    if quota.message_limit is not None:
        resources.append(f"MESSAGE {quota.messages} {quota.message_limit}")
    return f'QUOTA "" ({" ".join(resources)})'.encode()


async def _quota(session) -> Quota:
    return await session.ctx.service.call("get_quota", session.user.id)


async def getquota(session, cmd):
    args = session.args(cmd)
    root = args.astring("quota root")
    args.end()
    if root != ROOT:
        raise no("No such quota root", "NONEXISTENT")
    session.untagged(quota_line(await _quota(session)))


async def getquotaroot(session, cmd):
    args = session.args(cmd)
    name = args.mailbox()
    args.end()
    await session.ctx.service.call("get_mailbox", session.user.id, name)   # NONEXISTENT if not
    session.untagged(b"QUOTAROOT " + session.wire_name(name) + b' ""')
    session.untagged(quota_line(await _quota(session)))


async def setquota(session, cmd):
    raise no("Quotas are set by the administrator", "NOPERM")
