"""Webhooks (per user) and their deliveries (a persisted queue): what the
settings page and the API manage, what the sender works through."""
from __future__ import annotations

import ipaddress
import json
import secrets
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from sqlalchemy import delete, func, insert, select, update

from ..crm.errors import CrmError, NotFound
from ..crm.sqlutil import iso
from .signing import new_secret
from .tables import webhook_deliveries, webhooks

EVENTS = ("activity_created", "reply", "bounce", "unsubscribe", "complaint")
MAX_PER_USER = 50
MAX_URL = 2000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def check_url(url) -> str:
    """An absolute http(s) URL with a host, no user:password, no fragment."""
    if not isinstance(url, str) or not url.strip():
        raise CrmError("a webhook needs a URL")
    url = url.strip()
    if len(url) > MAX_URL or any(ord(ch) < 33 for ch in url):
        raise CrmError("the URL is too long or holds spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise CrmError(f"not a URL: {e}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise CrmError("a webhook URL starts with http:// or https://")
    if not parts.hostname:
        raise CrmError("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise CrmError("the URL must not carry a user name or password (the signature authenticates)")
    if parts.fragment:
        raise CrmError("the URL must not have a #fragment")
    if port == 0:
        raise CrmError("port 0 is not a port")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        if not all(label and len(label) < 64 for label in parts.hostname.rstrip(".").split(".")):
            raise CrmError(f"{parts.hostname!r} is not a host name") from None
    return url


def check_events(events) -> list[str]:
    if isinstance(events, str):
        events = [events]
    chosen = [e for e in EVENTS if e in set(events or ())]
    unknown = set(events or ()) - set(EVENTS)
    if unknown:
        raise CrmError(f"unknown events: {', '.join(sorted(map(str, unknown)))[:200]} "
                       f"(known: {', '.join(EVENTS)})")
    if not chosen:
        raise CrmError("choose at least one event")
    return chosen


def _webhook(row) -> dict:
    return {"id": row.id, "owner": row.owner, "url": row.url, "events": list(row.events or ()),
            "created_at": iso(row.created_at)}


def _delivery(row) -> dict:
    return {"id": row.id, "webhook_id": row.webhook_id, "delivery_id": row.delivery_id,
            "event_id": row.event_id, "event_type": row.event_type, "status": row.status,
            "attempts": row.attempts, "next_try": iso(row.next_try) if row.status == "queued" else None,
            "status_code": row.status_code, "error": row.error, "created_at": iso(row.created_at),
            "finished_at": iso(row.finished_at)}


class WebhookStore:
    def __init__(self, engine):
        self.engine = engine

    # -- the user's webhooks ------------------------------------------------------------
    def create(self, owner: str, url: str, events) -> tuple[dict, str]:
        """The new webhook, and its secret (shown to its owner this once)."""
        url, events = check_url(url), check_events(events)
        secret = new_secret()
        with self.engine.begin() as conn:
            held = conn.execute(select(func.count()).select_from(webhooks).where(webhooks.c.owner == owner)).scalar()
            if held >= MAX_PER_USER:
                raise CrmError(f"at most {MAX_PER_USER} webhooks per user")
            new_id = conn.execute(insert(webhooks).values(owner=owner, url=url, events=events, secret=secret,
                                                          created_at=utcnow()).returning(webhooks.c.id)).scalar_one()
        return self.get(owner, new_id), secret

    def list(self, owner: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(webhooks).where(webhooks.c.owner == owner).order_by(webhooks.c.id)).all()
        return [_webhook(r) for r in rows]

    def get(self, owner: str, webhook_id: int) -> dict:
        """The owner's webhook; NotFound for anyone else's (its existence is theirs)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(webhooks).where(webhooks.c.id == webhook_id,
                                                      webhooks.c.owner == owner)).first()
        if row is None:
            raise NotFound(f"no webhook {webhook_id}")
        return _webhook(row)

    def delete(self, owner: str, webhook_id: int) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(select(webhooks.c.id).where(webhooks.c.id == webhook_id,
                                                            webhooks.c.owner == owner)).first():
                raise NotFound(f"no webhook {webhook_id}")
            conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
            conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))

    def deliveries(self, owner: str, webhook_id: int, limit: int = 50) -> list[dict]:
        self.get(owner, webhook_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
                                .order_by(webhook_deliveries.c.id.desc()).limit(max(1, min(int(limit), 500)))).all()
        return [_delivery(r) for r in rows]

    # -- the queue ------------------------------------------------------------------------
    def enqueue(self, owner: str, event_type: str, payload: dict) -> int:
        """A queued delivery of payload to each of owner's webhooks that wants
        event_type; how many were queued."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        now = utcnow()
        with self.engine.begin() as conn:
            targets = [r.id for r in conn.execute(select(webhooks.c.id, webhooks.c.events)
                                                  .where(webhooks.c.owner == owner))
                       if event_type in (r.events or ())]
            for webhook_id in targets:
                conn.execute(insert(webhook_deliveries).values(
                    webhook_id=webhook_id, delivery_id=secrets.token_hex(16), event_id=payload["id"],
                    event_type=event_type, body=body, status="queued", attempts=0, next_try=now, created_at=now))
        return len(targets)

    def claim_due(self, *, lease: float, limit: int = 20) -> list[dict]:
        """Queued deliveries due now, each claimed for `lease` seconds (its
        next_try moved on, so another node or a second pass leaves it alone);
        with the webhook's URL and secret to send it."""
        now = utcnow()
        claimed = []
        with self.engine.begin() as conn:
            rows = conn.execute(select(webhook_deliveries.c.id, webhook_deliveries.c.next_try)
                                .where(webhook_deliveries.c.status == "queued", webhook_deliveries.c.next_try <= now)
                                .order_by(webhook_deliveries.c.next_try, webhook_deliveries.c.id).limit(limit)).all()
            for row in rows:
                done = conn.execute(update(webhook_deliveries).where(
                    webhook_deliveries.c.id == row.id, webhook_deliveries.c.status == "queued",
                    webhook_deliveries.c.next_try == row.next_try).values(next_try=now + timedelta(seconds=lease)))
                if done.rowcount == 1:
                    claimed.append(row.id)
            if not claimed:
                return []
            found = conn.execute(select(webhook_deliveries, webhooks.c.url, webhooks.c.secret)
                                 .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
                                 .where(webhook_deliveries.c.id.in_(claimed))
                                 .order_by(webhook_deliveries.c.id)).all()
        return [{"id": r.id, "delivery_id": r.delivery_id, "event_type": r.event_type, "body": r.body,
                 "attempts": r.attempts, "url": r.url, "secret": r.secret} for r in found]

    def next_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.min(webhook_deliveries.c.next_try))
                                .where(webhook_deliveries.c.status == "queued")).scalar()

    def record(self, delivery_id: int, *, ok: bool, status_code: int | None, error: str | None,
               retry_at: datetime | None) -> None:
        """One attempt's outcome: delivered; or queued again for retry_at; or,
        retry_at None, failed for good."""
        values = {"attempts": webhook_deliveries.c.attempts + 1, "status_code": status_code,
                  "error": (error or None) and error[:1000]}
        if ok:
            values.update(status="delivered", next_try=None, finished_at=utcnow(), error=None)
        elif retry_at is not None:
            values.update(status="queued", next_try=retry_at)
        else:
            values.update(status="failed", next_try=None, finished_at=utcnow())
        with self.engine.begin() as conn:
            conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(**values))

    def prune(self, older_than: float) -> int:
        """Finished deliveries (delivered or failed) older than `older_than`
        seconds leave the log; how many."""
        before = utcnow() - timedelta(seconds=older_than)
        with self.engine.begin() as conn:
            return conn.execute(delete(webhook_deliveries).where(
                webhook_deliveries.c.status != "queued", webhook_deliveries.c.finished_at < before)).rowcount
