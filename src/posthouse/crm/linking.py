"""Activities: a contact tied to a message. One per (contact, message), made
either when a message arrives (its participants matched against contacts) or
when a contact gains an address (earlier messages found by that address)."""
from __future__ import annotations

from sqlalchemy import bindparam, func, or_, select, update

from .addresses import maybe_canonical
from .sqlutil import insert_ignore
from .tables import activities, contact_emails, contacts, message_addresses, messages

_LAST_CONTACTED = (update(contacts).where(
    contacts.c.id == bindparam("cid"),
    or_(contacts.c.last_contacted.is_(None), contacts.c.last_contacted < bindparam("latest")))
    .values(last_contacted=bindparam("latest")))
_MESSAGE_INFO = select(messages.c.id, messages.c.direction, messages.c.date).where(
    messages.c.id.in_(bindparam("ids", expanding=True)))


def link(conn, pairs: set[tuple[int, int]], info: dict | None = None) -> set[tuple[int, int]]:
    """Activities for (contact_id, message row id) pairs, skipping those that
    exist. info: {message row: (direction, date)} where the caller knows it.
    Returns the pairs that were new (for the CRM's events)."""
    if not pairs:
        return set()
    existing = {tuple(row) for row in conn.execute(select(activities.c.contact_id, activities.c.message).where(
        activities.c.message.in_(bindparam("ids", expanding=True))), {"ids": sorted({m for _, m in pairs})})}
    if info is None:
        info = {row.id: (row.direction, row.date)
                for row in conn.execute(_MESSAGE_INFO, {"ids": sorted({m for _, m in pairs})})}
    rows = [{"contact_id": c, "message": m, "direction": info[m][0], "date": info[m][1]}
            for c, m in sorted(pairs) if m in info]
    insert_ignore(conn, activities, rows, ["contact_id", "message"])
    new = {(row["contact_id"], row["message"]) for row in rows} - existing
    latest: dict[int, object] = {}
    for row in rows:
        if row["contact_id"] not in latest or latest[row["contact_id"]] < row["date"]:
            latest[row["contact_id"]] = row["date"]
    for contact_id in sorted(latest):       # one order for every writer: no deadlock between them
        conn.execute(_LAST_CONTACTED, {"cid": contact_id, "latest": latest[contact_id]})
    return new


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


def bounces_earlier(conn, addresses: set[str]) -> None:
    """Hard bounces already indexed for `addresses` mark them bouncing (a
    contact that gains an address learns what the reply sorter saw)."""
    if not addresses:
        return
    found = conn.execute(
        select(message_addresses.c.address, messages.c.classification)
        .join(messages, messages.c.id == message_addresses.c.message)
        .where(message_addresses.c.role == "bounced", message_addresses.c.address.in_(addresses),
               messages.c.kind == "bounce").order_by(messages.c.date)).all()
    for address, classification in found:
        verdict = classification if isinstance(classification, dict) else {}
        for recipient in verdict.get("recipients") or ():
            if not isinstance(recipient, dict) or maybe_canonical(recipient.get("address")) != address:
                continue
            hard = recipient.get("hard")
            if hard is None:
                hard = verdict.get("hard")
            if hard:
                reason = recipient.get("reason") or verdict.get("reason")
                conn.execute(update(contact_emails).where(contact_emails.c.address == address).values(
                    bouncing=True, bounce_reason=str(reason)[:200] if reason else None))
