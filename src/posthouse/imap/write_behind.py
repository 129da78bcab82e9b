"""STORE without waiting for the store: flags are answered from the index.

A flag change is a lazy write (no fsync before OK, as in Dovecot), so what
the client waited for was the round trip to the store process and the
group commits queued ahead of it: under load, three times the time of the
rest of the command. Here the index takes the new flags at once (computed
as the store computes them, store.api.merged_flags), the client is answered
from it, and the change is sent to the store without waiting.

Why this stays exact:
- Calls reach the store in the order they are sent, so the store applies
  the changes in the order the clients were answered, and anything a
  session asks the store next (EXPUNGE of what it just marked \\Deleted,
  COPY, STATUS) comes after its STORE.
- The store's event for a change is applied as the truth (other sessions
  hear of the change then, with its MODSEQ), unless a later write-behind
  STORE of the same message is still on its way: its flags are already the
  newer ones.
- The session that stored hears nothing again of flags it was told.
- Before a session runs a command, it waits for the write-behind STOREs
  of other sessions under way then: a change another client was told is
  done reaches it, MODSEQ and all, with its next command's answer.
  And a session waits for all of them before it tells a MODSEQ it did not
  before (SELECT, enabling CONDSTORE).
- If the store fails the change, the flags are read back from it and every
  session is told them.

Only for a session that owes its client no MODSEQ (CONDSTORE not enabled),
with no UNCHANGEDSINCE and no search kept up to date: those wait as before.

Several workers (store/shared_writer.py): the sessions of other workers
can't see our index, so the worker counts each such STORE in shared memory
before answering it (store/wake_counters.py), and a session of another
worker waits, before its next command on that mailbox (and before SELECT),
until the store process has committed it and sent its changes there. Its
reply is applied as it comes, in order with the other workers' changes
(a later change to the message from another worker must not be undone by
this one's event arriving after it).
"""
from __future__ import annotations

import asyncio
import functools
import logging

from ..store.api import merged_flags

log = logging.getLogger("posthouse.imap")

_rereads: set[asyncio.Task] = set()     # running tasks, kept from the garbage collector


def can_write_behind(session, unchanged_since) -> bool:
    service = session.ctx.service
    if getattr(service, "shared", False) and service.pending_watch is None:
        # Several workers without counters in shared memory: a session of
        # another process could not wait for the change; the STORE waits.
        return False
    return unchanged_since is None and not session.condstore and not session.view.track_changes


def store_behind(session, uids: list[int], mode: str, flags: frozenset) -> None:
    """Set the flags in the index now and send the change on to the store."""
    view = session.view
    shared = view.shared
    told = {}
    for uid in uids:
        entry = shared.entries.get(uid)
        if entry is None:
            continue
        new = merged_flags(entry.flags, mode, flags)
        told[uid] = shared.set_flags_ahead(uid, entry.flags if new is None else new)
    service = session.ctx.service
    sent: list[asyncio.Future] = []      # (the future, once there is one)
    future = service.send_behind(shared.id, uids, mode, flags,
                                 lambda result: _applied(service, view, told, sent[0], result))
    sent.append(future)
    shared.behind[future] = view
    future.add_done_callback(functools.partial(_stored, service, view, told))


def _applied(service, view, told: dict, future: asyncio.Future, result) -> None:
    """The STORE committed: its events, to every view but the one told already."""
    shared = view.shared
    if future not in shared.behind:
        return      # (applied already)
    shared.release_ahead(future, told)
    events, _failed = result
    shared.told = (view, told)
    try:
        service.hub.publish(events)
    finally:
        shared.told = None


def _stored(service, view, told: dict, future: asyncio.Future) -> None:
    shared = view.shared
    if future not in shared.behind:
        return      # applied as its reply came (several workers: see _applied)
    error = future.exception() if not future.cancelled() else asyncio.CancelledError()
    if error is None:
        _applied(service, view, told, future, future.result())
        return
    shared.release_ahead(future, told)
    if not shared.gone:
        log.error("a STORE in mailbox %s failed in the store (%r): its flags are read again", shared.id, error)
        task = asyncio.ensure_future(_reread(service, shared, set(told)))
        _rereads.add(task)
        task.add_done_callback(_rereads.discard)


async def _reread(service, shared, uids: set[int]) -> None:
    try:
        _info, entries = await service.call("load_index", shared.id)
    except Exception as e:
        log.error("mailbox %s: flags could not be read again (%r)", shared.id, e)
        return
    shared.reset_flags([e for e in entries if e.uid in uids])
