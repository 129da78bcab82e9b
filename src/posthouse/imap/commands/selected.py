"""CHECK, CLOSE, UNSELECT, EXPUNGE, COPY, MOVE."""
from __future__ import annotations

from ...store.api import DiskFull, NoSuchMailbox
from ..args import format_uid_set
from ..errors import bad, no


async def check(session, cmd):
    session.args(cmd).end()


async def _expunge_deleted(session, only=None):
    view = session.view
    uids = [u for u in view.uids if "\\Deleted" in view.flags(u) and not view.is_expunged(u)]
    if only is not None:
        only = set(only)
        uids = [u for u in uids if u in only]
    if uids:
        await session.ctx.service.change("expunge", view.shared.id, uids)


async def close(session, cmd):
    session.args(cmd).end()
    if not session.view.readonly:
        await _expunge_deleted(session)
    session.unselect()


async def unselect(session, cmd):
    session.args(cmd).end()
    session.unselect()


async def expunge(session, cmd):
    args = session.args(cmd)
    only = None
    if cmd.uid:
        only = session.view.uids_for_uidset(args.sequence_set(), session.saved_search)
    args.end()
    if session.view.readonly:
        raise no("Mailbox is read-only", "READ-ONLY")
    await _expunge_deleted(session, only)
    if session.condstore:
        # Expunges carry no MODSEQ of their own in the responses: the client
        # learns the mailbox's new one here (RFC 7162 3.2.10).
        return f"HIGHESTMODSEQ {session.view.shared.info.highestmodseq}", "EXPUNGE completed"


async def _copy_or_move(session, cmd, move: bool):
    args = session.args(cmd)
    seqset = args.sequence_set()
    dest = args.mailbox()
    args.end()
    view = session.view
    if move and view.readonly:
        raise no("Mailbox is read-only", "READ-ONLY")
    try:
        uids = (view.uids_for_uidset if cmd.uid else view.uids_for_seqset)(seqset, session.saved_search)
    except IndexError:
        raise bad("Invalid message sequence number") from None
    try:
        target = await session.ctx.service.call("get_mailbox", session.user.id, dest)
    except NoSuchMailbox:
        raise no("Mailbox doesn't exist: " + dest, "TRYCREATE") from None
    live = [u for u in uids if not view.is_expunged(u)]
    if not live:
        if uids:
            raise no("Messages no longer exist", "EXPUNGEISSUED")
        return ("COPY" if not move else "MOVE") + " completed (no messages)"
    if not move and not session.ctx.service.space.room_for():
        raise DiskFull()    # NO [LIMIT]; a MOVE (to Trash, say) still works, to make room
    result = await session.ctx.service.change("copy", view.shared.id, live, target.id, move)
    code = f"COPYUID {result.uidvalidity} {format_uid_set(result.source_uids)} {format_uid_set(result.dest_uids)}"
    if move:
        # RFC 6851: COPYUID goes in an untagged OK, then the EXPUNGEs.
        session.untagged(f"OK [{code}] Moved")
        return None, "MOVE completed"
    return code, "COPY completed"


async def copy(session, cmd):
    return await _copy_or_move(session, cmd, move=False)


async def move(session, cmd):
    return await _copy_or_move(session, cmd, move=True)
