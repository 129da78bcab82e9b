"""One-click unsubscribe (RFC 8058): each recipient's token, and what using it does.

A token is `<recipient id>.<HMAC-SHA256 of that id under its campaign's secret>`
(128 bits kept): it can't be guessed or made for another recipient, and a
forged one is told apart from an unknown one by nobody (both: None). Using it
opts the contact out and records the unsubscribe once; using it again changes
nothing (the POST is idempotent, so it needs no CSRF token: it can only ever
unsubscribe the token's own holder)."""
from __future__ import annotations

import hashlib
import hmac
import re

from sqlalchemy import insert, select

from ..crm.errors import NotFound
from .tables import campaign_recipients, campaign_results, campaigns

_TOKEN = re.compile(r"^([1-9][0-9]{0,17})\.([0-9a-f]{32})$")


def _mac(secret: str, recipient_id: int) -> str:
    return hmac.new(secret.encode(), f"unsubscribe:{recipient_id}".encode(), hashlib.sha256).hexdigest()[:32]


def token(secret: str, recipient_id: int) -> str:
    return f"{recipient_id}.{_mac(secret, recipient_id)}"


def list_unsubscribe(base_url: str, secret: str, recipient_id: int, mailto: str | None) -> str:
    """The List-Unsubscribe header's value: the one-click URL, and a mailto."""
    url = f"{base_url.rstrip('/')}/u/{token(secret, recipient_id)}"
    value = f"<{url}>"
    if mailto:
        value += f", <mailto:{mailto}?subject=unsubscribe>"
    return value


def recipient_of(engine, text: str) -> dict | None:
    """The recipient (with its campaign's name) a token is for; None if the
    token is malformed, forged or its recipient gone."""
    match = _TOKEN.match(text or "")
    if match is None:
        return None
    recipient_id = int(match[1])
    with engine.connect() as conn:
        row = conn.execute(select(campaign_recipients, campaigns.c.secret, campaigns.c.name.label("campaign_name"))
                           .join(campaigns, campaigns.c.id == campaign_recipients.c.campaign_id)
                           .where(campaign_recipients.c.id == recipient_id)).first()
    if row is None:
        _mac("x" * 64, recipient_id)        # (the same work as a real check)
        return None
    if not hmac.compare_digest(_mac(row.secret, recipient_id), match[2]):
        return None
    out = dict(row._mapping)
    out.pop("secret", None)
    return out


def unsubscribe(crm, text: str, engine=None) -> dict | None:
    """Opt the token's contact out and record a one-click unsubscribe (once).
    None for a token that is not one. (engine: the CRM's database, if not crm.engine)"""
    engine = engine if engine is not None else crm.engine
    recipient = recipient_of(engine, text)
    if recipient is None:
        return None
    if recipient["contact_id"] is not None:
        try:
            crm.edit_contact(recipient["contact_id"], opted_out=True)
        except NotFound:
            pass        # deleted since: nothing to opt out, the result is still recorded
    with engine.begin() as conn:
        exists = conn.execute(select(campaign_results.c.id).where(
            campaign_results.c.recipient_id == recipient["id"], campaign_results.c.kind == "unsubscribe",
            campaign_results.c.via == "one-click")).first()
        if exists is None:
            conn.execute(insert(campaign_results).values(
                campaign_id=recipient["campaign_id"], recipient_id=recipient["id"], kind="unsubscribe",
                via="one-click", contact_id=recipient["contact_id"]))
    return recipient
