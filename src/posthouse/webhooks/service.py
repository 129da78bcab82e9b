"""Webhooks in `posthouse serve`: the observer on the CRM's events and the
sender task (one line in app._start_crm_side calls start_webhooks)."""
from __future__ import annotations

from .events import make_observer
from .sender import WebhookSender
from .store import WebhookStore


def start_webhooks(config, side, closers: list) -> WebhookSender:
    store = WebhookStore(side.engine)
    sender = WebhookSender(store, attempts=config.webhooks_attempts, retry_base=config.webhooks_retry_base,
                           timeout=config.webhooks_timeout, allow_private=config.webhooks_allow_private)
    sender.start()
    side.crm.observers.append(make_observer(store, side.crm.account_owner, sender.wake))
    closers.append(sender.close)
    return sender


def queue_webhooks(side) -> None:
    """For a process that applies facts but sends nothing (`posthouse
    tracker` on its own): deliveries are queued in the database, and the
    sender of `posthouse serve` (which looks every 30 s) posts them."""
    side.crm.observers.append(make_observer(WebhookStore(side.engine), side.crm.account_owner))
