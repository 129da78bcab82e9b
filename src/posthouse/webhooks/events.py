"""The CRM's events as webhook payloads: each event goes only to webhooks
whose owner owns the account it was seen in (account_id -> owner); an event
from no known account goes nowhere."""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timezone
from typing import Callable

from .store import EVENTS, WebhookStore

log = logging.getLogger("posthouse.webhooks")


def payload(event, event_id: str | None = None) -> dict:
    """The JSON body of a delivery (the README's "Webhooks" shows it)."""
    classification = event.classification or None
    summary = None
    if isinstance(classification, dict):
        summary = {"kind": classification.get("kind"), "hard": classification.get("hard"),
                   "reason": classification.get("reason"),
                   "original_message_id": classification.get("original_message_id") or event.in_reply_to,
                   "recipients": [{k: r.get(k) for k in ("address", "status", "hard", "reason")}
                                  for r in (classification.get("recipients") or ())[:50] if isinstance(r, dict)]}
    return {
        "id": event_id or "evt_" + secrets.token_hex(12),
        "type": event.kind,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "account_id": event.account_id,
        "contact_ids": list(event.contact_ids),
        "message": {"id": event.message, "message_id": event.message_id, "in_reply_to": event.in_reply_to,
                    "folder": event.folder, "uidvalidity": event.uidvalidity, "uid": event.uid},
        "message_ids": [m for m in (event.message_id,) if m],
        "classification": summary,
    }


def make_observer(store: WebhookStore, account_owner: Callable[[int], str | None],
                  wake: Callable[[], None] = lambda: None) -> Callable[[list], None]:
    """An observer for Crm.observers: queues a delivery per matching webhook
    (in the caller's thread, after the CRM's commit), then wakes the sender."""
    def observe(events) -> None:
        queued = 0
        for event in events:
            if event.kind not in EVENTS or event.account_id is None:
                continue
            owner = account_owner(event.account_id)
            if not owner:
                continue
            queued += store.enqueue(owner, event.kind, payload(event))
        if queued:
            wake()
    return observe
