"""`GET /events?account=ID[&folder=F]`: server-sent events telling an open
page that a folder of the account changed (new mail, flags, expunges, folder
changes), from web/live.py's hub. The page session's own accounts only (404
for any other); a comment line now and then keeps proxies from closing it;
at most a few streams per user (429 past that)."""
from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import StreamingResponse
from starlette.exceptions import HTTPException

from ..live import Hub, TooManyListeners
from . import mailbox
from .common import page_session
from .sessions import WebSession

router = APIRouter(include_in_schema=False)
HEARTBEAT = 20.0        # seconds between keep-alive comments
RETRY_MS = 3000         # the browser's reconnect delay after a dropped stream


def install(app: FastAPI, hub: Hub | None, *, heartbeat: float = HEARTBEAT) -> None:
    app.state.live_hub = hub
    app.state.live_heartbeat = heartbeat
    app.include_router(router)


def _message(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get("/events")
async def events(request: Request, account: Annotated[int, Query(ge=1, le=2**53)],
                 folder: Annotated[str, Query(min_length=1, max_length=1000, pattern=r"^[^\x00-\x1f]*$")] = "INBOX",
                 session: WebSession = Depends(page_session)):
    own = await mailbox.own_account(request, session.user, account)
    hub: Hub | None = getattr(request.app.state, "live_hub", None)
    if hub is None:
        raise HTTPException(503, "live updates are not available on this server")
    if hub.count(session.user) >= hub.max_per_user:
        raise HTTPException(429, f"at most {hub.max_per_user} live connections per user")
    heartbeat = request.app.state.live_heartbeat

    async def stream():
        # (listening starts inside the stream: a client gone before it began leaves nothing behind)
        try:
            listener = hub.listen(session.user, own, (folder,))
        except TooManyListeners as e:
            yield _message("bye", {"reason": str(e)})
            return
        try:
            yield f"retry: {RETRY_MS}\n".encode() + _message("hello", {"account": own.id})
            while not listener.closed:
                try:
                    async with asyncio.timeout(heartbeat):
                        await listener.wake.wait()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                for name, kinds in sorted(listener.take().items()):
                    yield _message("refresh", {"account": own.id, "folder": name, "changes": sorted(kinds)})
        finally:
            hub.leave(listener)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Accel-Buffering": "no"})
