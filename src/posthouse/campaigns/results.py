"""What comes back from a campaign: an observer of the CRM's events
(crm/events.py) that ties each sorted message (bounce, complaint, auto-reply,
unsubscribe, reply) to the campaign message it answers, records it as a
result, and queues its IMAP keyword (keywords.py).

A sorted message is tied by the Message-ID it answers (In-Reply-To, the
sorter's original message id, References); a bounce that names no
Message-ID by its bounced address's latest campaign message, and an
unsubscribe that answers nothing (the List-Unsubscribe mailto) by its
sender's. An unsubscribe
by reply or a complaint opts the contact out (so they are skipped from then
on). Runs on the CRM's thread after its commit; replays change nothing."""
from __future__ import annotations

import logging

from sqlalchemy import insert, select

from ..crm.errors import NotFound
from ..crm.tables import messages
from .keywords import KEYWORDS, queue_keyword
from .tables import campaign_recipients, campaign_results

log = logging.getLogger("posthouse.campaigns")

KINDS = tuple(KEYWORDS)


def _answered_ids(conn, event) -> list[str]:
    ids = []
    if event.in_reply_to:
        ids.append(event.in_reply_to)
    row = conn.execute(select(messages.c.in_reply_to, messages.c.references).where(messages.c.id == event.message)).first()
    if row is not None:
        if row.in_reply_to:
            ids.append(row.in_reply_to)
        ids.extend(reversed([r for r in (row.references or []) if isinstance(r, str)]))
    return [i.strip("<> ") for i in ids if i]


def _bounced(event) -> list[dict]:
    return [r for r in ((event.classification or {}).get("recipients") or []) if isinstance(r, dict) and r.get("address")]


def _recipient_for(conn, event) -> dict | None:
    for message_id in _answered_ids(conn, event):
        row = conn.execute(select(campaign_recipients).where(campaign_recipients.c.message_id == message_id)).first()
        if row is not None:
            return dict(row._mapping)
    if event.kind == "unsubscribe" and event.contact_ids:
        # The List-Unsubscribe mailto, as mail clients send it, answers nothing: the sender's latest campaign message
        row = conn.execute(select(campaign_recipients).where(
            campaign_recipients.c.contact_id.in_(list(event.contact_ids)), campaign_recipients.c.state == "sent")
            .order_by(campaign_recipients.c.sent_at.desc(), campaign_recipients.c.id.desc()).limit(1)).first()
        if row is not None:
            return dict(row._mapping)
    if event.kind == "bounce":      # no Message-ID in the report: the address's latest campaign message
        for r in _bounced(event):
            row = conn.execute(select(campaign_recipients).where(
                campaign_recipients.c.address == str(r["address"]).lower(), campaign_recipients.c.state == "sent")
                .order_by(campaign_recipients.c.sent_at.desc(), campaign_recipients.c.id.desc()).limit(1)).first()
            if row is not None:
                return dict(row._mapping)
    return None


def record(crm, events) -> int:
    """Record the campaign results among events; how many events were a
    campaign's (new or replayed: their keywords are queued again, idempotently)."""
    new = 0
    opt_out: set[int] = set()
    with crm.engine.begin() as conn:
        for event in events:
            if event.kind not in KINDS:
                continue
            recipient = _recipient_for(conn, event)
            if recipient is None:
                continue
            hard = reason = None
            if event.kind == "bounce":
                mine = [r for r in _bounced(event) if str(r["address"]).lower() == recipient["address"]] or _bounced(event)
                classification = event.classification or {}
                hard = bool(mine[0].get("hard")) if mine and mine[0].get("hard") is not None \
                    else bool(classification.get("hard"))
                reason = (mine[0].get("reason") if mine else None) or classification.get("reason")
            exists = conn.execute(select(campaign_results.c.id).where(
                campaign_results.c.recipient_id == recipient["id"], campaign_results.c.kind == event.kind,
                campaign_results.c.message == event.message)).first()
            if exists is None:
                conn.execute(insert(campaign_results).values(
                    campaign_id=recipient["campaign_id"], recipient_id=recipient["id"], kind=event.kind,
                    via="reply" if event.kind == "unsubscribe" else None, hard=hard,
                    reason=str(reason)[:200] if reason else None, contact_id=recipient["contact_id"],
                    message=event.message, account_id=event.account_id, folder=event.folder,
                    uidvalidity=event.uidvalidity, uid=event.uid))
            new += 1
            if event.kind in ("unsubscribe", "complaint") and recipient["contact_id"] is not None:
                opt_out.add(recipient["contact_id"])
            if event.account_id is not None and event.folder and event.uid is not None \
                    and event.uidvalidity is not None:
                queue_keyword(conn, event.account_id, event.folder, event.uidvalidity, event.uid,
                              KEYWORDS[event.kind])
    for contact_id in sorted(opt_out):
        try:
            crm.edit_contact(contact_id, opted_out=True)
        except NotFound:
            pass
    return new


def observe(crm, on_keyword=None):
    """The observer for crm.observers: records the results; on_keyword() is
    called (to wake the keyword worker) when any was recorded."""
    def observer(events) -> None:
        if record(crm, events) and on_keyword is not None:
            on_keyword()
    return observer

