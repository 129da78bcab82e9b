"""The records: contacts (the organisation's, searched by words and filtered
by tag, company, last contacted, bouncing and opted out), a contact's page
with its email timeline (only the mail in the user's own accounts), documents
(preview, upload, search over their text), notes and tags; an activity's
original fetched live from the mail server (or "no longer there"), and a
document's download."""
from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ...crm.notes import Notes
from ..api.activities import _activity, fetch_live, visible_activities
from ..deps import need
from ..limits import LARGE
from . import reading
from .common import checked_form, page_session, render, secure_headers
from .mail import _reading_page, attachment_response
from .sessions import WebSession

router = APIRouter(include_in_schema=False)
PAGE = 50
TIMELINE = 100
PREVIEW = 5000          # characters of a document's text on its preview page
Text = Annotated[str, Query(max_length=500, pattern=r"^[^\x00]*$")]
Id = Annotated[int, Path(ge=1, le=2**53)]
Day = Annotated[str, Query(max_length=10, pattern=r"^(\d{4}-\d{2}-\d{2})?$")]
YesNo = Annotated[str, Query(pattern=r"^(|yes|no)$")]
PageNo = Annotated[int, Query(ge=1, le=10**6)]
Digits = Annotated[str, Query(max_length=16, pattern=r"^\d*$")]      # an id, or "" from a form's "any"


def _crm(request: Request):
    return need(request.app.state.services.crm, "the CRM")


def _day(text: str, what: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise HTTPException(422, f"{what}: not a date (YYYY-MM-DD)") from None


def _yes_no(text: str) -> bool | None:
    return {"yes": True, "no": False}.get(text)


@router.get("/contacts")
async def contacts(request: Request, q: Text = "", tag: Text = "", company: Digits = "",
                   contacted_from: Day = "", contacted_to: Day = "", bouncing: YesNo = "", opted_out: YesNo = "",
                   page: PageNo = 1, session: WebSession = Depends(page_session)):
    crm = _crm(request)
    company = int(company) if company else 0      # ("" from the form's "any company")
    since, until = _day(contacted_from, "last contacted from"), _day(contacted_to, "last contacted to")
    if since and until and since > until:
        raise HTTPException(422, "last contacted: the first date is after the second")
    # (the "to" day is included: until the start of the next day; after 9999-12-31 there is none)
    next_day = until + timedelta(days=1) if until and until < date.max else None
    filters = dict(q=q.strip() or None, tag=tag.strip() or None, company_id=company or None,
                   contacted_since=datetime.combine(since, time(), timezone.utc) if since else None,
                   contacted_until=datetime.combine(next_day, time(), timezone.utc) if next_day else None,
                   bouncing=_yes_no(bouncing), opted_out=_yes_no(opted_out))

    live = request.headers.get("hx-request") == "true"      # the search box's live results: the list alone

    def load():
        found = crm.find_contacts(**filters, limit=PAGE + 1, offset=(page - 1) * PAGE)
        return found, [] if live else company_choices(crm.engine, company)
    found, companies = await run_in_threadpool(load)
    kept = {"q": q, "tag": tag, "company": company or "", "contacted_from": contacted_from,
            "contacted_to": contacted_to, "bouncing": bouncing, "opted_out": opted_out}
    context = {"contacts": found[:PAGE], "more": len(found) > PAGE, "page": page, "quote": quote,
               "companies": companies, "filtered": any(kept.values()),
               "page_url": lambda n: "/contacts?" + urlencode({**kept, "page": n}), **kept}
    if live:
        return render(request, "contacts_list.html", context)
    return render(request, "contacts.html", context)


@router.post("/contacts")
async def new_contact(request: Request, session: WebSession = Depends(page_session)):
    """A contact by hand: a name and/or an address (its earlier mail linked)."""
    form = await checked_form(request)
    name, email = _text(form, "name", 300, "").strip(), _text(form, "email", 320, "").strip()
    made = await run_in_threadpool(lambda: _crm(request).add_contact(name=name or None,
                                                                     emails=[email] if email else []))
    return _back(made["id"])


def company_choices(engine, selected: int = 0, limit: int = 1000) -> list[dict]:
    """The companies for the filter's menu, by name, in one query (the
    selected one always among them)."""
    from sqlalchemy import select
    from ...crm.tables import companies
    with engine.connect() as conn:
        rows = conn.execute(select(companies.c.id, companies.c.name).order_by(companies.c.name, companies.c.id)
                            .limit(limit)).all()
        if selected and selected not in {r.id for r in rows}:
            rows += conn.execute(select(companies.c.id, companies.c.name).where(companies.c.id == selected)).all()
    return [{"id": r.id, "name": r.name} for r in rows]


async def _contact_or_404(request: Request, contact_id: int) -> dict:
    found = await run_in_threadpool(_crm(request).get_contact, contact_id)
    if found is None:
        raise HTTPException(404, f"no contact {contact_id}")
    return found


@router.get("/contacts/{contact_id}")
async def contact(request: Request, contact_id: Id, dq: Text = "", older: PageNo = 1,
                  session: WebSession = Depends(page_session)):
    crm = _crm(request)
    svc = request.app.state.services
    found = await _contact_or_404(request, contact_id)

    def load():
        timeline = visible_activities(svc, session.user, contact_id=contact_id, limit=TIMELINE + 1,
                                      offset=(older - 1) * TIMELINE)
        documents = svc.documents.list(contact_id) if svc.documents is not None else []
        hits = svc.documents.search(dq, contact_id=contact_id) if svc.documents is not None and dq.strip() else []
        return timeline, documents, hits, Notes(crm.engine).list(contact_id)
    timeline, documents, hits, notes = await run_in_threadpool(load)
    return render(request, "contact.html", {
        "contact": found, "timeline": timeline[:TIMELINE], "more_timeline": len(timeline) > TIMELINE,
        "older": older, "documents": documents, "dq": dq, "hits": hits, "notes": notes,
        "documents_on": svc.documents is not None})


def _back(contact_id: int, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/contacts/{contact_id}" + (f"#{anchor}" if anchor else ""), status_code=303)


def _text(form: dict, name: str, limit: int, default: str | None = None) -> str:
    value = form.get(name, default)
    if not isinstance(value, str):
        raise HTTPException(422, f"the form needs {name}")
    if len(value) > limit:
        raise HTTPException(422, f"{name} is too long (at most {limit} characters)")
    return value


@router.post("/contacts/{contact_id}/tags")
async def edit_tags(request: Request, contact_id: Id, session: WebSession = Depends(page_session)):
    form = await checked_form(request)
    await _contact_or_404(request, contact_id)
    tags = [t.strip() for t in _text(form, "tags", 5000).split(",") if t.strip()]
    await run_in_threadpool(lambda: _crm(request).edit_contact(contact_id, tags=tags))
    return _back(contact_id)


@router.post("/contacts/{contact_id}/notes")
async def add_note(request: Request, contact_id: Id, session: WebSession = Depends(page_session)):
    form = await checked_form(request)
    notes = Notes(_crm(request).engine)
    await run_in_threadpool(notes.add, contact_id, session.user, _text(form, "body", 20_000))
    return _back(contact_id, "notes")


@router.post("/notes/{note_id}")
async def edit_note(request: Request, note_id: Id, session: WebSession = Depends(page_session)):
    form = await checked_form(request)
    note = await run_in_threadpool(_note, request, note_id)
    await run_in_threadpool(Notes(_crm(request).engine).edit, note_id, session.user, _text(form, "body", 20_000))
    return _back(note["contact_id"], f"note-{note_id}")


@router.post("/notes/{note_id}/delete")
async def delete_note(request: Request, note_id: Id, session: WebSession = Depends(page_session)):
    await checked_form(request)
    note = await run_in_threadpool(_note, request, note_id)
    await run_in_threadpool(Notes(_crm(request).engine).delete, note_id, session.user)
    return _back(note["contact_id"], "notes")


def _note(request: Request, note_id: int) -> dict:
    note = Notes(_crm(request).engine).get(note_id)
    if note is None:
        raise HTTPException(404, f"no note {note_id}")
    return note


@router.post("/contacts/{contact_id}/documents")
async def upload_document(request: Request, contact_id: Id, session: WebSession = Depends(page_session)):
    """A document (a resume) from the user's computer; its text extracted for search."""
    docs = need(request.app.state.services.documents, "documents")
    form = await checked_form(request)
    await _contact_or_404(request, contact_id)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise HTTPException(422, "choose a file to upload")
    data = await upload.read(LARGE + 1)
    if len(data) > LARGE:
        raise HTTPException(413, "the document is too large")
    if not data:
        raise HTTPException(422, "the file is empty")
    name = upload.filename.replace("\x00", "")[:255] or "document"
    try:
        await run_in_threadpool(docs.add, contact_id, name, (upload.content_type or "")[:255], data)
    except Exception as e:      # DocumentError: can't be read (a clear 422, not a crash)
        from ...crm.documents import DocumentError
        if isinstance(e, DocumentError):
            raise HTTPException(422, f"{name}: {e}") from None
        raise
    return _back(contact_id, "documents")


@router.get("/documents")
async def search_documents(request: Request, q: Text = "", session: WebSession = Depends(page_session)):
    """Every document's text, searched by words (the organisation's contacts' documents)."""
    docs = need(request.app.state.services.documents, "documents")
    crm = _crm(request)

    def load():
        hits = docs.search(q, limit=100) if q.strip() else []
        return hits, {i: crm.get_contact(i) for i in {h["contact_id"] for h in hits}}
    hits, names = await run_in_threadpool(load)
    return render(request, "documents.html", {"q": q, "hits": hits, "contacts": names})


@router.get("/documents/{document_id}/preview")
async def document_preview(request: Request, document_id: Id, session: WebSession = Depends(page_session)):
    docs = need(request.app.state.services.documents, "documents")
    meta = await run_in_threadpool(docs.get, document_id)
    if meta is None:
        raise HTTPException(404, f"no document {document_id}")
    text = await run_in_threadpool(docs.text, document_id) or ""
    owner = await run_in_threadpool(_crm(request).get_contact, meta["contact_id"])
    return render(request, "document.html", {"document": meta, "text": text[:PREVIEW],
                                             "cut": len(text) > PREVIEW, "contact": owner})


@router.post("/documents/{document_id}/delete")
async def delete_document(request: Request, document_id: Id, session: WebSession = Depends(page_session)):
    docs = need(request.app.state.services.documents, "documents")
    await checked_form(request)
    meta = await run_in_threadpool(docs.get, document_id)
    if meta is None:
        raise HTTPException(404, f"no document {document_id}")
    await run_in_threadpool(docs.delete, document_id)
    return _back(meta["contact_id"], "documents")


@router.get("/activities/{activity_id}")
async def original(request: Request, activity_id: Id, images: Annotated[int, Query(ge=0, le=1)] = 0,
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
async def original_attachment(request: Request, activity_id: Id,
                              part: Annotated[int, Query(ge=0, le=100_000)],
                              session: WebSession = Depends(page_session)):
    svc = request.app.state.services
    _crm(request)
    activity = await run_in_threadpool(_activity, svc, session.user, activity_id)
    return await attachment_response(await fetch_live(svc, activity), part)


@router.get("/documents/{document_id}")
async def document(request: Request, document_id: Id, session: WebSession = Depends(page_session)):
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
