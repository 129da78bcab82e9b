"""POST /api/v1/send: compose and send from one of the caller's accounts, through
its SMTP submission; the exact bytes sent are filed in its Sent folder."""
from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..deps import Services, call, current_user, need, services
from ..models import Error, SendIn, SendResult
from .accounts import own_account

router = APIRouter(tags=["send"])


@router.post("/send", response_model=SendResult,
             responses={404: {"model": Error}, 409: {"model": Error}, 413: {"model": Error},
                        502: {"model": Error, "description": "the mail server refused or could not be reached"}},
             summary="Send a message from one of the caller's accounts (filed in its Sent folder)")
async def send_message(body: SendIn, svc: Services = Depends(services), user: str = Depends(current_user)):
    sender = need(svc.sender, "sending")
    account = await run_in_threadpool(own_account, svc, user, body.account_id)
    if getattr(account, "state", "active") == "disabled":
        raise HTTPException(409, f"account {account.id} is disabled")
    own = [a.lower() for a in getattr(account, "addresses", None) or ()]
    if body.from_address is not None and body.from_address.lower() not in own:
        raise HTTPException(400, f"{body.from_address} is not one of account {account.id}'s addresses")
    attachments = []
    for i, item in enumerate(body.attachments):
        try:
            data = base64.b64decode(item.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPException(422, f"attachments.{i}.content_base64: not base64") from None
        attachments.append((item.filename, item.content_type, data))
    try:
        result = await call(sender, account, body, attachments)
    except (ConnectionError, OSError, TimeoutError) as e:
        raise HTTPException(502, f"the message was not sent: {e}") from None
    except ValueError as e:     # a value compose refused (its text is safe to show)
        raise HTTPException(422, f"the message can't be made: {e}") from None
    return result
