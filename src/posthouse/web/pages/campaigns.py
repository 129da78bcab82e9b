"""Campaigns: the list (every user sees every campaign: a team shares them),
making one (contacts by tag or search, a template with merge fields, a From
of the user's own accounts, a preview for one contact), its page (counts and
lists of what was sent and what came back, each linked to its message and
contact), starting it; and the public one-click unsubscribe of RFC 8058 at
/u/{token}, which needs no login."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ...campaigns.model import Campaigns, RESULT_KINDS, cant_send
from ...campaigns.render import FIELDS
from ...campaigns.unsubscribe import recipient_of, unsubscribe
from ...crm.errors import CrmError
from ..deps import need
from . import mailbox
from .common import checked_form, page_session, render, secure_headers
from .mail import message_url
from .sessions import WebSession

router = APIRouter(include_in_schema=False)
CampaignId = Annotated[int, Path(ge=1, le=2**53)]
Token = str     # (any text: what is not a valid token is 404 like a forged one)
SHOWN_RECIPIENTS = 1000        # the campaign page lists the first ones (the counts are of all)
LIMITS = {"name": 200, "tag": 100, "q": 500, "subject": 1000, "body": 100_000, "sender": 400}


def _campaigns(request: Request) -> Campaigns:
    return Campaigns(need(request.app.state.services.crm, "the CRM"), request.app.state.engine)


async def _identities(request: Request, user: str) -> list[tuple[str, int, str]]:
    """(value, account id, address) of each address of the user's own accounts."""
    out = []
    for account in await mailbox.user_accounts(request, user):
        for address in (account.addresses or [account.login]):
            if address and "@" in address:
                out.append((f"{account.id}:{address}", account.id, address))
    return out


def _text(form: dict, key: str) -> str:
    value = form.get(key)
    if not isinstance(value, str):
        return ""
    if len(value) > LIMITS[key] or "\x00" in value:
        raise HTTPException(422, f"{key}: too long, or not text")
    return value.replace("\r\n", "\n")


@router.get("/campaigns")
async def campaign_list(request: Request, session: WebSession = Depends(page_session)):
    found = await run_in_threadpool(_campaigns(request).list)
    return render(request, "campaigns.html", {"campaigns": found})


async def _form_page(request, session, values: dict, *, error: str | None = None, preview=None, matched=None,
                     status: int = 200):
    identities = await _identities(request, session.user)
    return render(request, "campaign_new.html", {
        "values": values, "identities": identities, "error": error, "preview": preview, "matched": matched,
        "fields": FIELDS}, status=status)


@router.get("/campaigns/new")
async def new_form(request: Request, session: WebSession = Depends(page_session)):
    return await _form_page(request, session, {"body": "Hello {{first_name}},\n\n"})


@router.post("/campaigns/new")
async def create(request: Request, session: WebSession = Depends(page_session)):
    form = await checked_form(request)
    values = {k: _text(form, k) for k in LIMITS}
    campaigns = _campaigns(request)
    identities = {value: (account_id, address) for value, account_id, address in
                  await _identities(request, session.user)}
    if values["sender"] not in identities:      # only the user's own addresses (another's: refused)
        return await _form_page(request, session, values, status=400,
                                error="pick a From address of one of your own accounts")
    tag, q = values["tag"].strip() or None, values["q"].strip() or None
    if form.get("action") == "preview":
        try:
            if not (tag or q):
                raise CrmError("pick the contacts: a tag or a search")
            campaigns.check_templates(values["subject"], values["body"])
            picked = await run_in_threadpool(campaigns.select_contacts, tag=tag, q=q)
            if not picked:
                raise CrmError("no contact matches that selection")
            shown = campaigns.preview(values["subject"], values["body"], picked[0])
        except (CrmError, ValueError) as e:
            return await _form_page(request, session, values, error=str(e), status=400)
        return await _form_page(request, session, values, preview={**shown, "contact": picked[0]},
                                matched=len(picked))
    account_id, address = identities[values["sender"]]
    try:
        campaign_id = await run_in_threadpool(lambda: campaigns.create(
            owner=session.user, name=values["name"], account_id=account_id, from_address=address,
            subject=values["subject"], body=values["body"], tag=tag, q=q))
    except CrmError as e:
        return await _form_page(request, session, values, error=str(e), status=400)
    response = RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)
    secure_headers(response)
    return response


def _message_link(result: dict) -> str | None:
    if result.get("account_id") and result.get("folder") and result.get("uid"):
        return message_url(result["account_id"], result["folder"], result["uid"])
    return None


@router.get("/campaigns/{campaign_id}")
async def campaign_page(request: Request, campaign_id: CampaignId, session: WebSession = Depends(page_session)):
    campaigns = _campaigns(request)
    campaign = await run_in_threadpool(campaigns.require, campaign_id)
    summary = await run_in_threadpool(campaigns.summary, campaign_id)
    recipients = await run_in_threadpool(campaigns.recipients, campaign_id, SHOWN_RECIPIENTS)
    results = await run_in_threadpool(campaigns.results, campaign_id)
    own = {a.id for a in await mailbox.user_accounts(request, session.user)}
    for r in results:       # (the message opens in the mail client of the account's owner)
        r["message_url"] = _message_link(r) if r.get("account_id") in own else None
    by_kind = {k: [r for r in results if r["kind"] == k] for k in RESULT_KINDS}
    return render(request, "campaign.html", {
        "campaign": campaign, "summary": summary, "recipients": recipients, "results": by_kind,
        "mine": campaign["owner"] == session.user, "cant_send": cant_send(request.app.state.services.config)})


@router.post("/campaigns/{campaign_id}/start")
async def start(request: Request, campaign_id: CampaignId, session: WebSession = Depends(page_session)):
    await checked_form(request)
    campaigns = _campaigns(request)
    campaign = await run_in_threadpool(campaigns.require, campaign_id)
    if campaign["owner"] != session.user:
        raise HTTPException(403, "only the campaign's owner can send it")
    why = cant_send(request.app.state.services.config)
    if why:
        raise HTTPException(409, why)
    await run_in_threadpool(campaigns.start, campaign_id)
    response = RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)
    secure_headers(response)
    return response


# -- the public one-click unsubscribe (RFC 8058): no login, no CSRF token by design --------------

def _gone(request: Request):
    return render(request, "error.html", {"status": 404, "message": "This unsubscribe link is not valid."},
                  status=404)


@router.get("/u/{token}")
async def unsubscribe_page(request: Request, token: Token):
    recipient = await run_in_threadpool(recipient_of, _campaigns(request).engine, token)
    if recipient is None:
        return _gone(request)
    return render(request, "unsubscribe.html", {"token": token, "address": recipient["address"], "done": False})


@router.post("/u/{token}")
async def unsubscribe_post(request: Request, token: Token):
    """RFC 8058: the mail provider POSTs `List-Unsubscribe=One-Click`, with no
    cookie and from no page of ours; the token alone says who."""
    campaigns = _campaigns(request)
    form = await request.form()
    if form.get("List-Unsubscribe") != "One-Click":
        if await run_in_threadpool(recipient_of, campaigns.engine, token) is None:
            return _gone(request)
        raise HTTPException(400, "expected the body List-Unsubscribe=One-Click (RFC 8058)")
    recipient = await run_in_threadpool(unsubscribe, campaigns.crm, token, campaigns.engine)
    if recipient is None:
        return _gone(request)
    return render(request, "unsubscribe.html", {"token": token, "address": recipient["address"], "done": True})
