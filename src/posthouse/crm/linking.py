"""Activities: a contact tied to a message. One per (contact, message), made
either when a message arrives (its participants matched against contacts) or
when a contact gains an address (earlier messages found by that address)."""
from __future__ import annotations

from sqlalchemy import func, select, update

from .sqlutil import insert_ignore
from .tables import activities, contact_emails, contacts, message_addresses, messages


def link(conn, pairs: set[tuple[int, int]]) -> None:
    """Activities for (contact_id, message row id) pairs, skipping those that exist."""
    if not pairs:
        return
    message_ids = {m for _, m in pairs}
    info = {row.id: row for row in conn.execute(
        select(messages.c.id, messages.c.direction, messages.c.date).where(messages.c.id.in_(message_ids)))}
    rows = [{"contact_id": c, "message": m, "direction": info[m].direction, "date": info[m].date}
            for c, m in sorted(pairs) if m in info]
    insert_ignore(conn, activities, rows, ["contact_id", "message"])
    touch_last_contacted(conn, {c for c, _ in pairs})


def touch_last_contacted(conn, contact_ids) -> None:
    for contact_id in sorted(contact_ids):     # one order for every writer: no deadlock between them
        latest = select(func.max(activities.c.date)).where(activities.c.contact_id == contact_id).scalar_subquery()
        conn.execute(update(contacts).where(contacts.c.id == contact_id).values(last_contacted=latest))


def link_message(conn, message_row: int, addresses: set[str], own: set[str]) -> None:
    """Tie a message to the contacts among its participants (never own addresses)."""
    wanted = addresses - own
    if not wanted:
        return
    found = conn.execute(select(contact_emails.c.contact_id).where(contact_emails.c.address.in_(wanted))).scalars()
    link(conn, {(contact_id, message_row) for contact_id in set(found)})


def link_earlier(conn, contact_id: int, addresses: set[str]) -> None:
    """Retro-linking: every message already indexed with one of `addresses`."""
    if not addresses:
        return
    found = conn.execute(select(message_addresses.c.message).where(
        message_addresses.c.address.in_(addresses)).distinct()).scalars()
    link(conn, {(contact_id, m) for m in found})
