"""/api/v1/webhooks: the caller's webhooks (another user's are "not found"),
each one's delivery log. The secret is in the answer to POST only."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from ...webhooks.store import WebhookStore
from ..deps import Services, current_user, needs_crm, services
from ..models import Error, Line
from .params import IdPath, Limit

router = APIRouter(prefix="/webhooks", tags=["webhooks"], dependencies=[Depends(needs_crm)])
NOT_FOUND = {404: {"model": Error}}
EventName = Literal["activity_created", "reply", "bounce", "unsubscribe", "complaint"]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[Line, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="http:// or https:// URL the events are POSTed to")
    events: list[EventName] = Field(min_length=1, max_length=5, description="the events it wants")


class Webhook(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    url: str
    events: list[str]
    created_at: str | None = None


class NewWebhook(Webhook):
    secret: str = Field(description="the signing secret: shown this once")


class Delivery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    delivery_id: str
    event_id: str
    event_type: str
    status: Literal["queued", "delivered", "failed"]
    attempts: int
    next_try: str | None = None
    status_code: int | None = None
    error: str | None = None
    created_at: str | None = None
    finished_at: str | None = None


def _store(svc: Services) -> WebhookStore:
    # (the CRM database: the one the API tokens are kept in too)
    return WebhookStore(getattr(svc.crm, "engine", None) or svc.tokens.engine)


@router.get("", response_model=list[Webhook], summary="The caller's webhooks")
def list_webhooks(svc: Services = Depends(services), user: str = Depends(current_user)):
    return _store(svc).list(user)


@router.post("", response_model=NewWebhook, status_code=201, responses={400: {"model": Error}},
             summary="Add a webhook; its signing secret is in this answer only")
async def add_webhook(body: WebhookIn, svc: Services = Depends(services), user: str = Depends(current_user)):
    hook, secret = await run_in_threadpool(_store(svc).create, user, body.url, list(body.events))
    return {**hook, "secret": secret}


@router.get("/{id}", response_model=Webhook, responses=NOT_FOUND, summary="One of the caller's webhooks")
def get_webhook(id: IdPath, svc: Services = Depends(services), user: str = Depends(current_user)):
    return _store(svc).get(user, id)


@router.delete("/{id}", status_code=204, responses=NOT_FOUND, summary="Delete a webhook and its delivery log")
def delete_webhook(id: IdPath, svc: Services = Depends(services), user: str = Depends(current_user)):
    _store(svc).delete(user, id)
    return Response(status_code=204)


@router.get("/{id}/deliveries", response_model=list[Delivery], responses=NOT_FOUND,
            summary="The webhook's delivery log, newest first")
def deliveries(id: IdPath, svc: Services = Depends(services), user: str = Depends(current_user),
               limit: Limit = 50):
    return _store(svc).deliveries(user, id, limit=limit)
