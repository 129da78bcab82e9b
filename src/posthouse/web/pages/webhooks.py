"""The user's webhooks in Settings: add (the secret shown this once), delete,
and each one's delivery log. Another user's webhook is "not found"."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from ...crm.errors import CrmError
from ...webhooks.store import WebhookStore
from ..deps import need
from .common import checked_form, page_session, render
from .sessions import WebSession
from .settings import settings_page

router = APIRouter(include_in_schema=False)
Id = Annotated[int, Path(ge=1, le=2**53)]


def _store(request: Request) -> WebhookStore:
    return WebhookStore(need(request.app.state.services.crm, "the CRM").engine)


@router.post("/settings/webhooks")
async def add_webhook(request: Request, session: WebSession = Depends(page_session)):
    form = await checked_form(request)
    url = form.get("url") if isinstance(form.get("url"), str) else ""
    events = [name for name, value in form.items() if name.startswith("event_") and value == "on"]
    events = [name[len("event_"):] for name in events]
    try:
        hook, secret = await run_in_threadpool(_store(request).create, session.user, url, events)
    except CrmError as e:
        return await settings_page(request, session, status=422, webhook_error=str(e), webhook_url=url[:2000],
                                   webhook_events=events)
    # The secret is shown now and never again (the page isn't cached: no-store).
    return await settings_page(request, session, new_webhook=hook, new_secret=secret)


@router.post("/settings/webhooks/{webhook_id}/delete")
async def delete_webhook(request: Request, webhook_id: Id, session: WebSession = Depends(page_session)):
    await checked_form(request)
    await run_in_threadpool(_store(request).delete, session.user, webhook_id)     # NotFound: 404
    return RedirectResponse("/settings#webhooks", status_code=303)


@router.get("/settings/webhooks/{webhook_id}")
async def webhook_log(request: Request, webhook_id: Id, session: WebSession = Depends(page_session)):
    store = _store(request)

    def load():
        return store.get(session.user, webhook_id), store.deliveries(session.user, webhook_id, limit=100)
    hook, deliveries = await run_in_threadpool(load)
    return render(request, "webhook.html", {"section": "settings", "webhook": hook, "deliveries": deliveries})
