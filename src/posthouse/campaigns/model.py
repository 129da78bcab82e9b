"""Campaigns in the CRM database: made from a selection of contacts and a
template, their recipients' states through sending, and the summary the
campaign page shows. Synchronous (SQLAlchemy Core): the web app and the
sender call it on threads. Never talks IMAP or SMTP."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

from sqlalchemy import and_, func, insert, select, update

from ..crm.errors import CrmError, NotFound
from ..crm.tables import contact_emails, contacts
from . import render
from .tables import campaign_recipients, campaign_results, campaigns

MAX_RECIPIENTS = 50_000
RESULT_KINDS = ("bounce", "auto-reply", "complaint", "unsubscribe", "reply")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_message_id(domain: str) -> str:
    """A Message-ID (without <>) of its own for each recipient, made before
    sending so that a retry sends the same one."""
    return f"campaign.{secrets.token_hex(12)}@{domain or 'localhost'}"


class Campaigns:
    def __init__(self, crm, engine=None):
        self.crm = crm
        self.engine = engine if engine is not None else crm.engine

    # -- making ----------------------------------------------------------------------------
    def select_contacts(self, *, tag: str | None = None, q: str | None = None) -> list[dict]:
        """The contacts a selection picks (by tag and/or the contacts search), in id order."""
        found: list[dict] = []
        while len(found) < MAX_RECIPIENTS:
            page = self.crm.find_contacts(tag=tag or None, q=q or None, limit=1000, offset=len(found))
            found.extend(page)
            if len(page) < 1000:
                break
        return found[:MAX_RECIPIENTS]

    @staticmethod
    def check_templates(subject: str, body: str) -> None:
        render.check(subject, "subject")
        render.check(body, "body")

    def preview(self, subject: str, body: str, contact: dict) -> dict:
        self.check_templates(subject, body)
        address = primary_address(contact) or ""
        values = render.values_of(contact, address)
        return {"to": address, "subject": render.render(subject, values, one_line=True),
                "body": render.render(body, values)}

    def create(self, *, owner: str, name: str, account_id: int, from_address: str, subject: str, body: str,
               tag: str | None = None, q: str | None = None) -> int:
        """A campaign in state 'draft' with one queued recipient per picked
        contact that has an address. CrmError (shown to the user) when it
        can't be: an unknown merge field, no contact picked."""
        name, subject = (name or "").strip(), (subject or "").strip()
        if not name:
            raise CrmError("the campaign needs a name")
        if not subject:
            raise CrmError("the campaign needs a subject")
        if not (body or "").strip():
            raise CrmError("the campaign needs a body")
        if not (tag or q):
            raise CrmError("pick the contacts: a tag or a search")
        try:
            self.check_templates(subject, body)
        except render.TemplateError as e:
            raise CrmError(str(e)) from None
        picked = [(c, primary_address(c)) for c in self.select_contacts(tag=tag, q=q)]
        picked = [(c, a) for c, a in picked if a]
        if not picked:
            raise CrmError("no contact with an email address matches that selection")
        domain = from_address.rpartition("@")[2]
        with self.engine.begin() as conn:
            campaign_id = conn.execute(insert(campaigns).values(
                name=name[:200], owner=owner, account_id=account_id, from_address=from_address, subject=subject,
                body=body, selection={"tag": tag or None, "q": q or None}, state="draft",
                secret=secrets.token_hex(32), created_at=_now())).inserted_primary_key[0]
            conn.execute(insert(campaign_recipients), [
                {"campaign_id": campaign_id, "contact_id": c["id"], "address": a, "state": "queued",
                 "message_id": new_message_id(domain)} for c, a in picked])
        return campaign_id

    def start(self, campaign_id: int) -> bool:
        """draft -> sending (the sender takes it from there); False if it was not a draft."""
        with self.engine.begin() as conn:
            done = conn.execute(update(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.state == "draft")
                                .values(state="sending", started_at=_now()))
            return done.rowcount == 1

    # -- reading ---------------------------------------------------------------------------
    def get(self, campaign_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
        return dict(row._mapping) if row is not None else None

    def require(self, campaign_id: int) -> dict:
        found = self.get(campaign_id)
        if found is None:
            raise NotFound(f"no campaign {campaign_id}")
        return found

    def list(self) -> list[dict]:
        """Every campaign (a team shares them), newest first, with its counts."""
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(campaigns).order_by(campaigns.c.id.desc()))]
            states: dict[int, dict] = {}
            for cid, state, n in conn.execute(select(campaign_recipients.c.campaign_id, campaign_recipients.c.state,
                                                     func.count()).group_by(campaign_recipients.c.campaign_id,
                                                                            campaign_recipients.c.state)):
                states.setdefault(cid, {})[state] = n
        for r in rows:
            r["states"] = states.get(r["id"], {})
            r["total"] = sum(r["states"].values())
        return rows

    def recipients(self, campaign_id: int, limit: int | None = None) -> list[dict]:
        query = select(campaign_recipients).where(campaign_recipients.c.campaign_id == campaign_id) \
            .order_by(campaign_recipients.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def results(self, campaign_id: int) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(campaign_results, campaign_recipients.c.address, contacts.c.name.label("contact_name"))
                .join(campaign_recipients, campaign_recipients.c.id == campaign_results.c.recipient_id)
                .outerjoin(contacts, contacts.c.id == campaign_results.c.contact_id)
                .where(campaign_results.c.campaign_id == campaign_id).order_by(campaign_results.c.id))]

    def summary(self, campaign_id: int) -> dict:
        """The counts of the campaign page."""
        with self.engine.connect() as conn:
            counted = dict(conn.execute(select(campaign_recipients.c.state, func.count())
                                        .where(campaign_recipients.c.campaign_id == campaign_id)
                                        .group_by(campaign_recipients.c.state)).all())
        results = self.results(campaign_id)
        states = {s: counted.get(s, 0) for s in ("queued", "sending", "sent", "skipped", "failed")}
        kinds = {k: [r for r in results if r["kind"] == k] for k in RESULT_KINDS}
        return {"recipients": sum(counted.values()), **states,
                "bounced": len(kinds["bounce"]),
                "bounced_hard": sum(1 for r in kinds["bounce"] if r["hard"]),
                "bounced_soft": sum(1 for r in kinds["bounce"] if not r["hard"]),
                "auto_replies": len(kinds["auto-reply"]), "complaints": len(kinds["complaint"]),
                "unsubscribes": len(kinds["unsubscribe"]),
                "unsubscribes_one_click": sum(1 for r in kinds["unsubscribe"] if r["via"] == "one-click"),
                "unsubscribes_reply": sum(1 for r in kinds["unsubscribe"] if r["via"] != "one-click"),
                "replies": len(kinds["reply"])}

    # -- sending (the sender's side) ---------------------------------------------------------
    def sending(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(campaigns).where(campaigns.c.state == "sending")
                                                           .order_by(campaigns.c.id))]

    def next_queued(self, campaign_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(campaign_recipients).where(
                campaign_recipients.c.campaign_id == campaign_id, campaign_recipients.c.state == "queued")
                .order_by(campaign_recipients.c.id).limit(1)).first()
        return dict(row._mapping) if row is not None else None

    def why_skip(self, recipient: dict) -> str | None:
        """Checked at send time, whatever was true when the campaign was made:
        an opted-out contact, or an address that bounces for good."""
        with self.engine.connect() as conn:
            if recipient["contact_id"] is not None:
                opted = conn.execute(select(contacts.c.opted_out).where(contacts.c.id == recipient["contact_id"])).first()
                if opted is not None and opted[0]:
                    return "opted out"
            bouncing = conn.execute(select(contact_emails.c.bounce_reason).where(
                contact_emails.c.address == recipient["address"], contact_emails.c.bouncing.is_(True))).first()
            if bouncing is not None:
                return "hard-bouncing address" + (f" ({bouncing[0]})" if bouncing[0] else "")
            earlier = conn.execute(select(campaign_results.c.reason).join(
                campaign_recipients, campaign_recipients.c.id == campaign_results.c.recipient_id).where(
                campaign_recipients.c.address == recipient["address"], campaign_results.c.kind == "bounce",
                campaign_results.c.hard.is_(True))).first()
            if earlier is not None:
                return "hard-bouncing address" + (f" ({earlier[0]})" if earlier[0] else "")
        return None

    def mark(self, recipient_id: int, state: str, reason: str | None = None, *, only_from: str | None = None) -> bool:
        values = {"state": state, "reason": (reason or None) and reason[:300]}
        if state == "sent":
            values["sent_at"] = _now()
        where = [campaign_recipients.c.id == recipient_id]
        if only_from is not None:
            where.append(campaign_recipients.c.state == only_from)
        with self.engine.begin() as conn:
            return conn.execute(update(campaign_recipients).where(and_(*where)).values(**values)).rowcount == 1

    def interrupted(self) -> int:
        """After a restart: recipients left 'sending' were perhaps handed to the
        queue, perhaps not. Never sent twice: they are marked failed, saying so."""
        with self.engine.begin() as conn:
            return conn.execute(update(campaign_recipients).where(campaign_recipients.c.state == "sending").values(
                state="failed", reason="interrupted while being queued (not sent again, to never send twice)")).rowcount

    def finish_if_done(self, campaign_id: int) -> bool:
        with self.engine.begin() as conn:
            left = conn.execute(select(func.count()).select_from(campaign_recipients).where(
                campaign_recipients.c.campaign_id == campaign_id,
                campaign_recipients.c.state.in_(("queued", "sending")))).scalar()
            if left:
                return False
            conn.execute(update(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.state == "sending")
                         .values(state="done", finished_at=_now()))
            return True


def cant_send(config) -> str | None:
    """Why no campaign can leave this server (no smarthost), or None."""
    if config is not None and not getattr(config, "relay_host", ""):
        return "campaigns go out through the [relay] smarthost, and none is configured on this server"
    return None


def primary_address(contact: dict) -> str | None:
    """The contact's first address (the one it was made with)."""
    for e in contact.get("emails") or ():
        if e.get("address"):
            return e["address"]
    return None
