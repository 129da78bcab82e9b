"""/api/v1/activities: emails logged on contacts. A user sees an activity only
through the places (copies of the message) in their own accounts, and only
those places: another user's mailbox stays theirs."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..deps import Services, call, current_user, needs_crm, own_account_ids, services
from ..models import Activity, Contact, Error, Kind
from .params import IdPath, IdQuery, Limit, Offset

router = APIRouter(prefix="/activities", tags=["activities"], dependencies=[Depends(needs_crm)])
log = logging.getLogger("posthouse.web")

def _scoped(activity: dict, own: set[int]) -> dict | None:
    places = [p for p in activity.get("places") or () if p.get("account_id") in own]
    return {**activity, "places": places} if places else None


def visible_activities(svc: Services, user: str, *, limit: int, offset: int, **filters) -> list[dict]:
    """The page [offset, offset+limit) of the activities user may see."""
    own = own_account_ids(svc, user)
    if not own:
        return []
    rows = svc.crm.activities(account_ids=sorted(own), limit=limit, offset=offset, **filters)
    return [a for a in (_scoped(r, own) for r in rows) if a]


def _utc(when: datetime | None) -> datetime | None:
    if when is not None and when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when


def _activity(svc: Services, user: str, id: int) -> dict:
    activity = svc.crm.get_activity(id)
    mine = _scoped(activity, own_account_ids(svc, user)) if activity is not None else None
    if mine is None:        # another user's is "not found" too: its existence is theirs
        raise HTTPException(404, f"no activity {id}")
    return mine


@router.get("", response_model=list[Activity], summary="Activities in the caller's accounts, newest first")
def list_activities(svc: Services = Depends(services), user: str = Depends(current_user),
                    contact_id: IdQuery = None, company_id: IdQuery = None,
                    kind: Annotated[Kind | None, Query(description="the reply sorting's kind")] = None,
                    since: Annotated[datetime | None, Query(description="ISO 8601; without a zone: UTC")] = None,
                    until: Annotated[datetime | None, Query(description="ISO 8601; without a zone: UTC")] = None,
                    limit: Limit = 100, offset: Offset = 0):
    since, until = _utc(since), _utc(until)
    if since and until and since > until:
        raise HTTPException(400, "since is after until")
    return visible_activities(svc, user, contact_id=contact_id, company_id=company_id, kind=kind,
                              since=since, until=until, limit=limit, offset=offset)


@router.get("/{id}", response_model=Activity, responses={404: {"model": Error}}, summary="An activity")
def get_activity(id: IdPath, svc: Services = Depends(services), user: str = Depends(current_user)):
    return _activity(svc, user, id)


@router.get("/{id}/message", summary="The original message, fetched live from the mail server",
            response_class=Response,
            responses={200: {"content": {"message/rfc822": {}}, "description": "the message as on the server"},
                       404: {"model": Error}, 410: {"model": Error, "description": "no longer on the server"},
                       502: {"model": Error, "description": "the mail server could not be asked"}})
async def get_message(id: IdPath, svc: Services = Depends(services), user: str = Depends(current_user)):
    activity = await run_in_threadpool(_activity, svc, user, id)
    raw = await fetch_live(svc, activity)
    return Response(raw, media_type="message/rfc822",
                    headers={"Content-Disposition": f'attachment; filename="activity-{id}.eml"',
                             "X-Content-Type-Options": "nosniff"})


async def fetch_live(svc: Services, activity: dict) -> bytes:
    """The activity's original from the first of its places still on a
    server; 410 when none is, 502 when no server could be asked."""
    fetch = svc.fetch_original
    if fetch is None:
        raise HTTPException(503, "fetching originals is not available on this server")
    failures = []
    for place in (p for p in activity["places"] if not p.get("gone")):
        try:
            raw = await call(fetch, place)
        except Exception as e:      # this copy's server failed: try the next copy
            log.warning("activity %s: fetching the original from account %s folder %r failed: %s",
                        activity["id"], place.get("account_id"), place.get("folder"), e)
            failures.append(f"account {place.get('account_id')}: {e}")
            continue
        if raw:
            return bytes(raw)
    if failures:
        raise HTTPException(502, "the mail server could not be asked for the original: " + "; ".join(failures))
    raise HTTPException(410, "the original message is no longer on the mail server "
                             "(deleted, or its folder is gone)")


@router.post("/{id}/sender-contact", response_model=Contact, status_code=201, responses={404: {"model": Error}},
             summary="Make a contact from the message's sender (name split into first and last), "
                     "linking the sender's earlier mail")
def contact_from_sender(id: IdPath, svc: Services = Depends(services), user: str = Depends(current_user)):
    activity = _activity(svc, user, id)
    if activity.get("message") is None:
        raise HTTPException(404, f"activity {id} has no message to take a sender from")
    return svc.crm.contact_from_message(activity["message"])
