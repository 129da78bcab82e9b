"""The mail client's pages: the accounts, a folder's messages (50 a page,
newest first), a message in the reading pane, its attachments, and "create
contact from sender"."""
from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from . import mailbox, reading
from .common import checked_form, csp, page_session, render, secure_headers
from .sessions import WebSession

router = APIRouter(include_in_schema=False)
Folder = Annotated[str, Query(min_length=1, max_length=1000, pattern=r"^[^\x00-\x1f]*$")]
Uid = Annotated[int, Query(ge=1, le=4294967295)]
AccountId = Annotated[int, Query(ge=1, le=2**53)]


def message_url(account_id: int, folder: str, uid: int, **extra) -> str:
    return f"/mail/{account_id}/message?" + urlencode({"folder": folder, "uid": uid, **extra})


@router.get("/")
async def home(request: Request, session: WebSession = Depends(page_session)):
    accounts = await mailbox.user_accounts(request, session.user)
    if len(accounts) == 1:
        return RedirectResponse(f"/mail/{accounts[0].id}?folder=INBOX", status_code=303)
    return render(request, "accounts.html", {"accounts": accounts})


@router.get("/mail/{account_id}")
async def folder_page(request: Request, account_id: int, folder: Folder = "INBOX",
                      page: Annotated[int, Query(ge=1, le=10**6)] = 1,
                      session: WebSession = Depends(page_session)):
    account = await mailbox.own_account(request, session.user, account_id)
    accounts = await mailbox.user_accounts(request, session.user)
    async with mailbox.imap(request, account) as conn:
        folders = await mailbox.folders(conn)
        rows, total = await mailbox.page(conn, folder, page)
    pages = max(1, -(-total // mailbox.PAGE_SIZE))
    return render(request, "folder.html", {
        "account": account, "accounts": accounts, "folders": folders, "folder": folder, "rows": rows,
        "total": total, "page": page, "pages": pages, "message_url": message_url, "quote": quote})


@router.get("/mail/{account_id}/message")
async def message_page(request: Request, account_id: int, folder: Folder, uid: Uid,
                       images: Annotated[int, Query(ge=0, le=1)] = 0,
                       session: WebSession = Depends(page_session)):
    account = await mailbox.own_account(request, session.user, account_id)
    accounts = await mailbox.user_accounts(request, session.user)
    async with mailbox.imap(request, account) as conn:
        folders = await mailbox.folders(conn)
        raw = await mailbox.message(conn, folder, uid)
    shown = await asyncio.to_thread(reading.read, raw, images=bool(images))
    return _reading_page(request, shown, images=bool(images), context={
        "account": account, "accounts": accounts, "folders": folders, "folder": folder, "uid": uid,
        "images_url": message_url(account_id, folder, uid, images=1),
        "attachment_url": lambda index: f"/mail/{account_id}/attachment?" + urlencode(
            {"folder": folder, "uid": uid, "part": index}),
        "sender_contact_url": f"/mail/{account_id}/sender-contact", "message_url": message_url, "quote": quote})


def _reading_page(request: Request, shown: reading.Reading, *, images: bool, context: dict,
                  template: str = "message.html"):
    frame = reading.frame_document(shown.html, images=images) if shown.html is not None else None
    return render(request, template, {"m": shown, "frame": frame, "images": images, **context},
                  policy=csp(mail_styles=frame is not None, remote_images=images))


@router.get("/mail/{account_id}/attachment")
async def attachment(request: Request, account_id: int, folder: Folder, uid: Uid,
                     part: Annotated[int, Query(ge=0, le=100_000)],
                     session: WebSession = Depends(page_session)):
    account = await mailbox.own_account(request, session.user, account_id)
    async with mailbox.imap(request, account) as conn:
        raw = await mailbox.message(conn, folder, uid)
    return await attachment_response(raw, part)


async def attachment_response(raw: bytes, part: int) -> Response:
    def take():
        message = reading.parse(raw)
        found = reading.part_at(message, part)
        if found is None:
            return None
        return reading.part_name(found, part), found.get_payload(decode=True) or b""
    got = await asyncio.to_thread(take)
    if got is None:
        raise HTTPException(404, f"no part {part} in that message")
    name, data = got
    # Always a download, never rendered here (an HTML or SVG attachment runs nothing on this origin).
    response = Response(data, media_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"})
    secure_headers(response, "default-src 'none'; sandbox")
    return response


@router.post("/mail/{account_id}/sender-contact")
async def sender_contact(request: Request, account_id: int, session: WebSession = Depends(page_session)):
    form = await checked_form(request)
    account = await mailbox.own_account(request, session.user, account_id)
    try:
        folder, uid = str(form["folder"]), int(form["uid"])
    except (KeyError, ValueError):
        raise HTTPException(400, "the form needs folder and uid") from None
    async with mailbox.imap(request, account) as conn:
        raw = await mailbox.message(conn, folder, uid)
    shown = await asyncio.to_thread(reading.read, raw)
    crm = request.app.state.services.crm
    if crm is None:
        raise HTTPException(503, "the CRM is not available on this server")
    contact = await run_in_threadpool(contact_for_sender, crm, shown)
    return RedirectResponse(f"/contacts/{contact['id']}", status_code=303)


def contact_for_sender(crm, shown: reading.Reading) -> dict:
    """The CRM's own way when the tracker has logged the message (its earlier
    mail linked, the name split); else straight from the From header."""
    from ...crm.errors import CrmError
    message_id = shown.message_id.strip().strip("<>")
    row = crm_message_row(crm, message_id) if message_id else None
    if row is not None:
        return crm.contact_from_message(row)
    if not shown.from_address or "@" not in shown.from_address:
        raise CrmError("the message has no sender address")
    existing = crm.find_contacts(email=shown.from_address, limit=1)
    if existing:
        return existing[0]
    return crm.add_contact(name=shown.from_name or None, emails=[shown.from_address])


def crm_message_row(crm, message_id: str) -> int | None:
    from sqlalchemy import select
    from ...crm.tables import messages
    with crm.engine.connect() as conn:
        return conn.execute(select(messages.c.id).where(messages.c.message_id == message_id)
                            .order_by(messages.c.id).limit(1)).scalar()
