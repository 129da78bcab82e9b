"""Request bodies are bounded: a declared Content-Length over the limit is
refused before any of it is read, and a body that runs past it (chunked, or
lying about its length) is cut off where it crosses it: 413, JSON."""
from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException

MiB = 1024 * 1024
SMALL = 1 * MiB         # JSON requests
LARGE = 25 * MiB        # mail sent, documents uploaded, messages to classify

# Paths whose bodies may be large: whole messages and files.
_LARGE = re.compile(r"^(/api/v1/(send|classify|documents|contacts/[^/]+/documents)|/contacts/\d+/documents)/?$")
# The compose page's form: a whole message's attachments (the page checks the exact size).
_COMPOSE = re.compile(r"^/mail/\d+/compose/(send|draft)/?$")


def limit_for(path: str, *, max_message: int | None = None) -> int:
    if _COMPOSE.match(path):
        return (max_message or LARGE) + MiB
    return LARGE if _LARGE.match(path) else SMALL


class BodyLimit:
    """ASGI middleware (outside the app, so no handler ever sees more than the limit)."""

    def __init__(self, app, limit_for=limit_for):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await _refuse(send, 400, "the Content-Length header is not a number")
                if declared > limit:
                    return await _refuse(send, 413, _too_large(limit))
        seen = 0

        async def bounded_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, bounded_receive, send)


def _too_large(limit: int) -> str:
    return f"the request body is larger than this endpoint takes ({limit // MiB} MiB)"


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
