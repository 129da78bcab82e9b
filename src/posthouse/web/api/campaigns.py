"""/api/v1/campaigns: every campaign (a team shares them) with its counts and
results; making one from the caller's own address, and sending it."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from ...campaigns.model import Campaigns, cant_send
from ..deps import Services, current_user, need, needs_crm, services
from ..models import Error, Id, Line, Tag, Text, When, _Out
from .params import IdPath

router = APIRouter(prefix="/campaigns", tags=["campaigns"], dependencies=[Depends(needs_crm)])


def _campaigns(request: Request) -> Campaigns:
    """Over the CRM and its database."""
    return Campaigns(need(services(request).crm, "the CRM"), request.app.state.engine)


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Line = Field(min_length=1)
    tag: Tag | None = None
    q: Line | None = None
    from_address: Line = Field(min_length=3, description="one of the caller's own accounts' addresses")
    subject: Line = Field(min_length=1, description="merge fields: {{first_name}} {{last_name}} {{name}} "
                                                     "{{company}} {{email}}")
    body: Text = Field(min_length=1)


class CampaignOut(_Out):
    id: Id
    name: str
    owner: str
    from_address: str
    subject: str
    state: Literal["draft", "sending", "done"]
    created_at: When
    started_at: When | None = None
    finished_at: When | None = None
    recipients: int
    sent: int


class Summary(_Out):
    recipients: int
    queued: int
    sending: int
    sent: int
    skipped: int
    failed: int
    bounced: int
    bounced_hard: int
    bounced_soft: int
    auto_replies: int
    complaints: int
    unsubscribes: int
    unsubscribes_one_click: int
    unsubscribes_reply: int
    replies: int


class Result(_Out):
    kind: Literal["bounce", "auto-reply", "complaint", "unsubscribe", "reply"]
    address: str
    contact_id: int | None = None
    message: int | None = Field(None, description="the CRM's message (the reply); none for a one-click unsubscribe")
    via: str | None = None
    hard: bool | None = None
    reason: str | None = None
    account_id: int | None = None
    folder: str | None = None
    uid: int | None = None
    created_at: When


class CampaignDetail(CampaignOut):
    summary: Summary
    results: list[Result]


def _out(campaigns: Campaigns, campaign: dict, summary: dict | None = None) -> dict:
    summary = summary or campaigns.summary(campaign["id"])
    return {**campaign, "recipients": summary["recipients"], "sent": summary["sent"]}


@router.get("", response_model=list[CampaignOut], summary="Every campaign, newest first")
def list_campaigns(request: Request):
    return [{**c, "sent": c["states"].get("sent", 0), "recipients": c["total"]} for c in _campaigns(request).list()]


@router.get("/{id}", response_model=CampaignDetail, responses={404: {"model": Error}},
            summary="A campaign with its counts and what came back")
def get_campaign(request: Request, id: IdPath):
    campaign_id = id
    campaigns = _campaigns(request)
    campaign = campaigns.require(campaign_id)
    summary = campaigns.summary(campaign_id)
    return {**_out(campaigns, campaign, summary), "summary": summary, "results": campaigns.results(campaign_id)}


@router.post("", response_model=CampaignOut, status_code=201, responses={400: {"model": Error}},
             summary="Make a campaign (a draft) for the contacts with a tag and/or matching a search")
def create_campaign(request: Request, body: CampaignIn, svc: Services = Depends(services),
                    user: str = Depends(current_user)):
    own = {a.lower(): (account.id, a) for account in (svc.accounts.list(user) if svc.accounts is not None else [])
           for a in (account.addresses or [account.login]) if a}
    if body.from_address.lower() not in own:
        raise HTTPException(400, "from_address must be an address of one of your own accounts")
    account_id, address = own[body.from_address.lower()]
    campaigns = _campaigns(request)
    campaign_id = campaigns.create(owner=user, name=body.name, account_id=account_id, from_address=address,
                                   subject=body.subject, body=body.body, tag=body.tag, q=body.q)
    return _out(campaigns, campaigns.require(campaign_id))


@router.post("/{id}/start", response_model=CampaignOut,
             responses={403: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}},
             summary="Send a draft campaign (its owner only)")
def start_campaign(request: Request, id: IdPath, user: str = Depends(current_user)):
    campaign_id = id
    campaigns = _campaigns(request)
    campaign = campaigns.require(campaign_id)
    if campaign["owner"] != user:
        raise HTTPException(403, "only the campaign's owner can send it")
    why = cant_send(services(request).config)
    if why:
        raise HTTPException(409, why)
    if not campaigns.start(campaign_id):
        raise HTTPException(409, f"campaign {campaign_id} is {campaign['state']}, not a draft")
    return _out(campaigns, campaigns.require(campaign_id))
