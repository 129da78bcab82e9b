"""POST /api/v1/classify: sort a raw message (bounce, complaint, auto-reply,
unsubscribe, reply, other), as `posthouse classify FILE` does."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..deps import Services, need, services
from ..models import Error

router = APIRouter(tags=["classify"])


@router.post("/classify", response_model=dict[str, Any],
             responses={400: {"model": Error}, 413: {"model": Error}},
             openapi_extra={"requestBody": {"required": True, "description": "the message, as on the server",
                                            "content": {kind: {"schema": {"type": "string", "format": "binary"}}
                                                        for kind in ("message/rfc822", "application/octet-stream")}}},
             summary="Sort a raw message: {kind, hard, reason, recipients: [{address, status, hard, reason}]}")
async def classify_message(request: Request, svc: Services = Depends(services)):
    classify = need(svc.classify, "reply sorting")
    raw = await request.body()
    if not raw.strip():
        raise HTTPException(400, "the request body is empty: send the raw message (Content-Type: message/rfc822)")
    result = await run_in_threadpool(classify, raw)
    return result if isinstance(result, dict) else result.to_json()
