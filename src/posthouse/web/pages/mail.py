"""The mail client's pages: the accounts, a folder's messages (50 a page,
newest first), a message in the reading pane, its attachments, and "create
contact from sender"."""
from __future__ import annotations

import asyncio
import re
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from . import attachments, image_senders, mailbox, reading, search
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


def folder_url(account_id: int, folder: str, **extra) -> str:
    return f"/mail/{account_id}?" + urlencode({"folder": folder, **extra})


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


@router.get("/mail/{account_id}")
async def folder_page(request: Request, account_id: int, folder: Folder = "INBOX",
                      page: Annotated[int, Query(ge=1, le=10**6)] = 1,
                      session: WebSession = Depends(page_session)):
    account = await mailbox.own_account(request, session.user, account_id)
    accounts = await mailbox.user_accounts(request, session.user)
    async with mailbox.imap(request, account) as conn:
        folders = await mailbox.folders(conn, counts=False)
        rows, total = await mailbox.page(conn, folder, page)
    return render(request, "folder.html", _list_context(account, folder, rows, total, page, {}) | {
        "accounts": accounts, "folders": folders})


def _list_context(account, folder: str, rows, total: int, page: int, query: dict) -> dict:
    """What folder.html and its fragments need; query: the search's fields (kept by the pager)."""
    pages = max(1, -(-total // mailbox.PAGE_SIZE))
    base = f"/mail/{account.id}/search" if query else f"/mail/{account.id}"

    def page_url(n: int) -> str:
        return base + "?" + urlencode({"folder": folder, **query, "page": n})
    return {"account": account, "folder": folder, "rows": rows, "total": total, "page": page, "pages": pages,
            "page_url": page_url, "query": query, "searching": bool(query),
            "list_url": f"/mail/{account.id}/list?" + urlencode({"folder": folder, **query, "page": page}),
            "back_url": page_url(page), "message_url": message_url, "quote": quote}


@router.get("/mail/{account_id}/list")
async def list_fragment(request: Request, account_id: int, folder: Folder = "INBOX",
                        page: Annotated[int, Query(ge=1, le=10**6)] = 1,
                        session: WebSession = Depends(page_session)):
    """The list's rows alone (tbody#message-list refreshes itself with them on posthouse:refresh)."""
    account = await mailbox.own_account(request, session.user, account_id)
    fields = search.fields_of(request.query_params)
    async with mailbox.imap(request, account) as conn:
        rows, total = await mailbox.page(conn, folder, page, search.criteria(fields) if fields else None)
    return render(request, "_rows.html", _list_context(account, folder, rows, total, page, fields))


@router.get("/mail/{account_id}/folders")
async def folders_fragment(request: Request, account_id: int, folder: Folder = "INBOX",
                           session: WebSession = Depends(page_session)):
    """The folder tree alone, with fresh unread counts (nav#folders, on posthouse:refresh)."""
    account = await mailbox.own_account(request, session.user, account_id)
    async with mailbox.imap(request, account) as conn:
        folders = await mailbox.folders(conn)
    return render(request, "_folders.html", {"account": account, "folders": folders, "folder": folder,
                                             "quote": quote})


@router.get("/mail/{account_id}/search")
async def search_page(request: Request, account_id: int, folder: Folder = "INBOX",
                      page: Annotated[int, Query(ge=1, le=10**6)] = 1,
                      session: WebSession = Depends(page_session)):
    """The search form's results: the server searches (UID SORT/SEARCH with
    the criteria), paged like the list."""
    account = await mailbox.own_account(request, session.user, account_id)
    accounts = await mailbox.user_accounts(request, session.user)
    try:
        fields = search.fields_of(request.query_params, strict=True)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    if not fields:
        return RedirectResponse(folder_url(account_id, folder), status_code=303)
    async with mailbox.imap(request, account) as conn:
        folders = await mailbox.folders(conn, counts=False)
        rows, total = await mailbox.page(conn, folder, page, search.criteria(fields))
    return render(request, "folder.html", _list_context(account, folder, rows, total, page, fields) | {
        "accounts": accounts, "folders": folders})


@router.get("/mail/{account_id}/message")
async def message_page(request: Request, account_id: int, folder: Folder, uid: Uid,
                       images: Annotated[int, Query(ge=0, le=1)] = 0,
                       session: WebSession = Depends(page_session)):
    account = await mailbox.own_account(request, session.user, account_id)
    accounts = await mailbox.user_accounts(request, session.user)
    async with mailbox.imap(request, account) as conn:
        raw, flags = await mailbox.message_and_flags(conn, folder, uid, mark_seen=True)
        folders = await mailbox.folders(conn, counts=False)
    shown = await asyncio.to_thread(reading.read, raw, images=False)
    sender_allowed = image_senders.of(request.app).allowed(session.user, shown.from_address)
    show_images = bool(images) or sender_allowed
    if show_images:
        shown = await asyncio.to_thread(reading.read, raw, images=True)
    contacts = await run_in_threadpool(_contact_choices, request.app.state.services.crm, shown) \
        if shown.attachments and request.app.state.services.documents is not None else []
    return _reading_page(request, shown, images=show_images, context={
        "account": account, "accounts": accounts, "folders": folders, "folder": folder, "uid": uid,
        "flagged": "\\flagged" in flags, "sender_allowed": sender_allowed,
        "images_url": message_url(account_id, folder, uid, images=1),
        "attachment_url": lambda index, **extra: f"/mail/{account_id}/attachment?" + urlencode(
            {"folder": folder, "uid": uid, "part": index, **extra}),
        "previewable": attachments.previewable,
        "back_url": folder_url(account_id, folder), "thread_url": f"/mail/{account_id}/thread?" + urlencode(
            {"folder": folder, "uid": uid}),
        "compose_url": f"/mail/{account_id}/compose", "q": lambda value: quote(str(value), safe=""),
        "image_sender_url": f"/mail/{account_id}/image-senders", "contacts": contacts,
        "attachment_contact_url": f"/mail/{account_id}/attachment-contact",
        "sender_contact_url": f"/mail/{account_id}/sender-contact", "message_url": message_url, "quote": quote})


def _contact_choices(crm, shown: reading.Reading, limit: int = 200) -> list[dict]:
    """The contacts "save attachment to contact" offers: the sender's first, then the others (bounded)."""
    if crm is None:
        return []
    first = crm.find_contacts(email=shown.from_address, limit=5) if shown.from_address else []
    ids = {c["id"] for c in first}
    return first + [c for c in crm.find_contacts(limit=limit) if c["id"] not in ids]


def _reading_page(request: Request, shown: reading.Reading, *, images: bool, context: dict,
                  template: str = "message.html"):
    frame = reading.frame_document(shown.html, images=images) if shown.html is not None else None
    return render(request, template, {"m": shown, "frame": frame, "images": images, **context},
                  policy=csp(mail_styles=frame is not None, remote_images=images))


@router.get("/mail/{account_id}/attachment")
async def attachment(request: Request, account_id: int, folder: Folder, uid: Uid,
                     part: Annotated[int, Query(ge=0, le=100_000)],
                     inline: Annotated[int, Query(ge=0, le=1)] = 0,
                     session: WebSession = Depends(page_session)):
    account = await mailbox.own_account(request, session.user, account_id)
    async with mailbox.imap(request, account) as conn:
        raw = await mailbox.message(conn, folder, uid)
    return await attachments.response(raw, part, inline=bool(inline))


async def attachment_response(raw: bytes, part: int) -> Response:
    """(kept for the contact pages' originals: always a download)"""
    return await attachments.response(raw, part, inline=False)


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


# ---------------------------------------------------------------- actions on messages

ACTIONS = {"seen", "unseen", "flag", "unflag", "move", "trash", "archive"}
_REMOVING = {"move", "trash", "archive"}


def _form_text(form: dict, name: str, *, required: bool = True) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value or len(value) > 1000 or any(ord(c) < 32 for c in value):
        if required:
            raise HTTPException(400, f"the form needs a valid {name}")
        return ""
    return value


def _form_uid(form: dict) -> int:
    try:
        uid = int(str(form.get("uid", "")))
    except ValueError:
        uid = 0
    if not 1 <= uid <= 4294967295:
        raise HTTPException(400, "the form needs a valid uid")
    return uid


def _back(form: dict, account_id: int, fallback: str) -> str:
    """Where the form says to go back to: only a page of this account's mail here (no open redirect)."""
    back = form.get("back")
    if isinstance(back, str) and re.match(rf"/mail/{account_id}(?:[/?]|$)", back) and "\\" not in back \
            and not any(ord(c) < 33 for c in back):
        return back
    return fallback


@router.post("/mail/{account_id}/action")
async def message_action(request: Request, account_id: int, session: WebSession = Depends(page_session)):
    """Flags (seen/unseen, flag/unflag), move, delete to Trash, archive: one
    message. htmx asks for the list row back (or nothing, the row gone);
    a plain form is sent back where it came from."""
    from . import mailops
    form = await checked_form(request)
    account = await mailbox.own_account(request, session.user, account_id)
    folder, uid, what = _form_text(form, "folder"), _form_uid(form), _form_text(form, "do")
    if what not in ACTIONS:
        raise HTTPException(400, f"unknown action {what!r}")
    row = None
    async with mailbox.imap(request, account) as conn:
        await mailbox.select(conn, folder, readonly=False)
        if uid not in await mailops.search(conn, [b"UID %d" % uid]):
            raise HTTPException(404, f"no message {uid} in {folder!r} (deleted or moved?)")
        if what in ("seen", "unseen", "flag", "unflag"):
            flag = "\\Seen" if what in ("seen", "unseen") else "\\Flagged"
            await mailops.store(conn, [uid], "-FLAGS" if what in ("unseen", "unflag") else "+FLAGS", (flag,))
            if is_htmx(request):
                row = (await mailbox.rows_of(conn, [uid]) or [None])[0]
        else:
            if what == "move":
                target = _form_text(form, "target")
                names = {f.name for f in await conn.list_folders() if f.selectable}
                if target not in names:
                    raise HTTPException(404, f"no folder {target!r} here")
            elif what == "trash":
                target = await mailops.special_folder(conn, "\\Trash", fallback="Trash", create=True)
            else:
                target = await mailops.special_folder(conn, "\\Archive", fallback="Archive", create=True)
            if target == folder:
                if what == "trash":     # deleting in Trash: gone for good
                    await mailops.expunge(conn, [uid])
            else:
                await mailops.move(conn, [uid], target)
    if is_htmx(request):
        if row is None:
            return Response("", media_type="text/html")
        return render(request, "_row.html", {"r": row, "account": account, "folder": folder,
                                             "message_url": message_url, "back_url": _back(form, account_id, "")})
    fallback = folder_url(account_id, folder) if what in _REMOVING else message_url(account_id, folder, uid)
    return RedirectResponse(_back(form, account_id, fallback), status_code=303)


@router.post("/mail/{account_id}/image-senders")
async def image_sender(request: Request, account_id: int, session: WebSession = Depends(page_session)):
    """Always (or no longer) show remote images from the message's sender, for this user."""
    form = await checked_form(request)
    account = await mailbox.own_account(request, session.user, account_id)
    folder, uid = _form_text(form, "folder"), _form_uid(form)
    async with mailbox.imap(request, account) as conn:
        raw = await mailbox.message(conn, folder, uid)
    shown = await asyncio.to_thread(reading.read, raw)
    try:
        await run_in_threadpool(image_senders.of(request.app).set, session.user, shown.from_address,
                                form.get("allow") == "1")
    except ValueError as e:
        raise HTTPException(400, f"can't remember that sender: {e}") from None
    return RedirectResponse(message_url(account_id, folder, uid), status_code=303)


@router.post("/mail/{account_id}/attachment-contact")
async def attachment_to_contact(request: Request, account_id: int, session: WebSession = Depends(page_session)):
    """Save an attachment of the message as a document on a contact (the
    Documents service: its text extracted and searchable)."""
    from ...crm.documents import DocumentError
    form = await checked_form(request)
    account = await mailbox.own_account(request, session.user, account_id)
    folder, uid = _form_text(form, "folder"), _form_uid(form)
    try:
        part, contact_id = int(str(form.get("part", ""))), int(str(form.get("contact", "")))
    except ValueError:
        raise HTTPException(400, "the form needs the attachment and a contact") from None
    svc = request.app.state.services
    if svc.documents is None or svc.crm is None:
        raise HTTPException(503, "documents are not available on this server")
    if not (0 <= part <= 100_000 and 1 <= contact_id <= 2**53) or \
            await run_in_threadpool(svc.crm.get_contact, contact_id) is None:
        raise HTTPException(404, "no such contact")
    async with mailbox.imap(request, account) as conn:
        raw = await mailbox.message(conn, folder, uid)
    got = await asyncio.to_thread(attachments.take, raw, part)
    if got is None:
        raise HTTPException(404, f"no part {part} in that message")
    name, content_type, data = got
    try:
        await run_in_threadpool(svc.documents.add, contact_id, name, content_type, data)
    except DocumentError as e:
        raise HTTPException(400, f"the attachment could not be imported: {e}") from None
    return RedirectResponse(f"/contacts/{contact_id}", status_code=303)


@router.get("/mail/{account_id}/thread")
async def thread_page(request: Request, account_id: int, folder: Folder, uid: Uid,
                      session: WebSession = Depends(page_session)):
    """The message's conversation, gathered across folders (Sent too), oldest first."""
    from . import conversation
    account = await mailbox.own_account(request, session.user, account_id)
    accounts = await mailbox.user_accounts(request, session.user)
    async with mailbox.imap(request, account) as conn:
        folders = await mailbox.folders(conn, counts=False)
        raw = await mailbox.message(conn, folder, uid)
        thread = await conversation.gather(conn, raw, conversation.search_order(folder, folders))
    return render(request, "thread.html", {
        "account": account, "accounts": accounts, "folders": folders, "folder": folder, "uid": uid,
        "items": thread.items, "skipped": thread.skipped, "message_url": message_url, "quote": quote, "back_url": message_url(account_id, folder, uid)})
