"""Activities: a contact tied to a message. One per (contact, message), made
either when a message arrives (its participants matched against contacts) or
when a contact gains an address (earlier messages found by that address)."""
from __future__ import annotations

from sqlalchemy import bindparam, func, or_, select, update

from .sqlutil import insert_ignore
from .tables import activities, contacts, message_addresses, messages

_LAST_CONTACTED = (update(contacts).where(
    contacts.c.id == bindparam("cid"),
    or_(contacts.c.last_contacted.is_(None), contacts.c.last_contacted < bindparam("latest")))
    .values(last_contacted=bindparam("latest")))
_MESSAGE_INFO = select(messages.c.id, messages.c.direction, messages.c.date).where(
    messages.c.id.in_(bindparam("ids", expanding=True)))


def link(conn, pairs: set[tuple[int, int]], info: dict | None = None) -> None:
    """Activities for (contact_id, message row id) pairs, skipping those that
    exist. info: {message row: (direction, date)} where the caller knows it."""
    if not pairs:
        return
    if info is None:
        info = {row.id: (row.direction, row.date)
                for row in conn.execute(_MESSAGE_INFO, {"ids": sorted({m for _, m in pairs})})}
    rows = [{"contact_id": c, "message": m, "direction": info[m][0], "date": info[m][1]}
            for c, m in sorted(pairs) if m in info]
    insert_ignore(conn, activities, rows, ["contact_id", "message"])
    latest: dict[int, object] = {}
    for row in rows:
        if row["contact_id"] not in latest or latest[row["contact_id"]] < row["date"]:
            latest[row["contact_id"]] = row["date"]
    for contact_id in sorted(latest):       # one order for every writer: no deadlock between them
        conn.execute(_LAST_CONTACTED, {"cid": contact_id, "latest": latest[contact_id]})


def touch_last_contacted(conn, contact_ids) -> None:
    """last_contacted again from the activities (after some went or moved)."""
    for contact_id in sorted(contact_ids):
        latest = select(func.max(activities.c.date)).where(activities.c.contact_id == contact_id).scalar_subquery()
        conn.execute(update(contacts).where(contacts.c.id == contact_id).values(last_contacted=latest))


def link_earlier(conn, contact_id: int, addresses: set[str]) -> None:
    """Retro-linking: every message already indexed with one of `addresses`."""
    if not addresses:
        return
    found = conn.execute(select(message_addresses.c.message).where(
        message_addresses.c.address.in_(addresses)).distinct()).scalars()
    link(conn, {(contact_id, m) for m in found})
