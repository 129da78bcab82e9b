"""An activity's attachments, taken from the original on the mail server:
downloaded, or imported into a contact as a document (a resume) whose text
becomes searchable."""
from __future__ import annotations

import email
import email.policy
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..deps import Services, current_user, needs_crm, services
from ..models import Document, Error
from .activities import _activity, fetch_live
from .params import IdPath

router = APIRouter(prefix="/activities", tags=["activities"], dependencies=[Depends(needs_crm)])
Index = Annotated[int, Path(ge=0, le=999, description="the attachment's place in the activity's list, from 0")]
ERRORS = {404: {"model": Error}, 410: {"model": Error, "description": "no longer on the server"},
          502: {"model": Error, "description": "the mail server could not be asked"}}


def find_part(message, section: str):
    """The MIME part an IMAP body section number ("2", "1.3") names; None if
    there is none. Inside an attached message/rfc822, numbers go on in its body."""
    part = message
    for step in section.split("."):
        if not step.isdigit() or int(step) < 1:
            return None
        n = int(step) - 1
        if part.get_content_type() == "message/rfc822" and part.is_multipart():
            part = part.get_payload(0)      # the attached message itself
        if part.is_multipart():
            children = part.get_payload()
            if n >= len(children):
                return None
            part = children[n]
        elif n != 0:
            return None                     # a single-part body has only part 1
    return part


async def _attachment(svc: Services, user: str, id: int, index: int) -> tuple[dict, bytes]:
    activity = await run_in_threadpool(_activity, svc, user, id)
    attachments = activity.get("attachments") or []
    if index >= len(attachments):
        raise HTTPException(404, f"activity {id} has no attachment {index}")
    info = attachments[index]
    section = info.get("section")
    if not section:
        raise HTTPException(404, f"attachment {index} of activity {id} was logged without its place in the message")
    raw = await fetch_live(svc, activity)
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    part = find_part(message, str(section))
    if part is None or part.is_multipart():
        raise HTTPException(410, f"the message on the server no longer has attachment {index}")
    return info, part.get_payload(decode=True) or b""


@router.get("/{id}/attachments/{index}", response_class=Response, responses=ERRORS,
            summary="An attachment of the activity's message, from the original on the mail server")
async def download(id: IdPath, index: Index, svc: Services = Depends(services), user: str = Depends(current_user)):
    info, data = await _attachment(svc, user, id, index)
    name = (info.get("name") or f"attachment-{index}").replace('"', "").replace("\r", "").replace("\n", "")
    return Response(data, media_type="application/octet-stream",     # never rendered by the browser
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "X-Content-Type-Options": "nosniff"})


@router.post("/{id}/attachments/{index}/document", response_model=Document, status_code=201, responses=ERRORS,
             summary="Import an attachment (a resume: PDF, DOCX, ODT, text) into a contact as a document")
async def to_document(id: IdPath, index: Index,
                      contact_id: Annotated[int | None, Body(embed=True, ge=1, description=
                                                             "the contact; default: the activity's")] = None,
                      svc: Services = Depends(services), user: str = Depends(current_user)):
    if svc.documents is None:
        raise HTTPException(503, "documents are not available on this server")
    info, data = await _attachment(svc, user, id, index)
    activity = await run_in_threadpool(_activity, svc, user, id)
    target = contact_id or activity.get("contact_id")
    if target is None or await run_in_threadpool(svc.crm.get_contact, target) is None:
        raise HTTPException(404, f"no contact {target}")
    return await run_in_threadpool(svc.documents.add, target, info.get("name") or f"attachment-{index}",
                                   info.get("content_type") or "application/octet-stream", data)
