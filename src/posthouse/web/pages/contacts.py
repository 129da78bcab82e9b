"""The records: contacts (the organisation's, searched by words and tag), a
contact's page with its email timeline (only the mail in the user's own
accounts) and documents, an activity's original fetched live from the mail
server (or "no longer there"), and a document's download."""
from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..api.activities import _activity, fetch_live, visible_activities
from ..deps import need
from . import reading
from .common import page_session, render, secure_headers
from .mail import _reading_page, attachment_response
from .sessions import WebSession

router = APIRouter(include_in_schema=False)
PAGE = 50
Text = Annotated[str, Query(max_length=500, pattern=r"^[^\x00]*$")]


def _crm(request: Request):
    return need(request.app.state.services.crm, "the CRM")


@router.get("/contacts")
async def contacts(request: Request, q: Text = "", tag: Text = "",
                   page: Annotated[int, Query(ge=1, le=10**6)] = 1,
                   session: WebSession = Depends(page_session)):
    crm = _crm(request)
    found = await run_in_threadpool(lambda: crm.find_contacts(q=q.strip() or None, tag=tag.strip() or None,
                                                              limit=PAGE + 1, offset=(page - 1) * PAGE))
    context = {"contacts": found[:PAGE], "more": len(found) > PAGE, "q": q, "tag": tag, "page": page,
               "quote": quote}
    if request.headers.get("hx-request") == "true":      # the search box's live results: the list alone
        return render(request, "contacts_list.html", context)
    return render(request, "contacts.html", context)


@router.get("/contacts/{contact_id}")
async def contact(request: Request, contact_id: int, session: WebSession = Depends(page_session)):
    crm = _crm(request)
    svc = request.app.state.services
    found = await run_in_threadpool(crm.get_contact, contact_id)
    if found is None:
        raise HTTPException(404, f"no contact {contact_id}")
    timeline = await run_in_threadpool(lambda: visible_activities(svc, session.user, contact_id=contact_id,
                                                                  limit=200, offset=0))
    documents = await run_in_threadpool(svc.documents.list, contact_id) if svc.documents is not None else []
    return render(request, "contact.html", {"contact": found, "timeline": timeline, "documents": documents})


@router.get("/activities/{activity_id}")
async def original(request: Request, activity_id: int, images: Annotated[int, Query(ge=0, le=1)] = 0,
                   session: WebSession = Depends(page_session)):
    """The activity's message as it is on the server now: in the reading pane,
    or a page saying it is no longer there."""
    svc = request.app.state.services
    _crm(request)
    activity = await run_in_threadpool(_activity, svc, session.user, activity_id)
    try:
        raw = await fetch_live(svc, activity)
    except HTTPException as e:
        if e.status_code in (410, 502):
            return render(request, "original_gone.html", {"activity": activity, "why": e.detail,
                                                          "gone": e.status_code == 410}, status=e.status_code)
        raise
    shown = await asyncio.to_thread(reading.read, raw, images=bool(images))
    return _reading_page(request, shown, images=bool(images), template="original.html", context={
        "activity": activity, "images_url": f"/activities/{activity_id}?images=1",
        "attachment_url": lambda index: f"/activities/{activity_id}/attachment?part={index}"})


@router.get("/activities/{activity_id}/attachment")
async def original_attachment(request: Request, activity_id: int,
                              part: Annotated[int, Query(ge=0, le=100_000)],
                              session: WebSession = Depends(page_session)):
    svc = request.app.state.services
    _crm(request)
    activity = await run_in_threadpool(_activity, svc, session.user, activity_id)
    return await attachment_response(await fetch_live(svc, activity), part)


@router.get("/documents/{document_id}")
async def document(request: Request, document_id: int, session: WebSession = Depends(page_session)):
    docs = need(request.app.state.services.documents, "documents")
    meta = await run_in_threadpool(docs.get, document_id)
    data = await run_in_threadpool(docs.data, document_id) if meta is not None else None
    if data is None:
        raise HTTPException(404, f"no document {document_id}")
    name = str(meta.get("filename") or meta.get("name") or f"document-{document_id}")
    response = Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"})
    secure_headers(response, "default-src 'none'; sandbox")
    return response
