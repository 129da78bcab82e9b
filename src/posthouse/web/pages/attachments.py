"""An attachment as the browser gets it: a download (application/octet-stream,
Content-Disposition: attachment) by default; a preview (inline) only for the
few types a browser shows without running anything of ours: raster images,
PDF, and text (always as text/plain, so an HTML or SVG "text" is shown as
its source). The part's own Content-Type and file name decide nothing else:
every answer has nosniff and a CSP sandbox of its own."""
from __future__ import annotations

import asyncio
from urllib.parse import quote

from fastapi.responses import Response
from starlette.exceptions import HTTPException

from . import reading
from .common import secure_headers

PREVIEW_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"}
SANDBOX = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
# Chromium's PDF viewer won't run in a CSP sandbox: PDF gets a policy that loads nothing and runs no script of ours.
PDF_POLICY = "default-src 'none'; object-src 'self'; frame-ancestors 'none'"


def previewable(content_type: str) -> bool:
    kind = (content_type or "").lower()
    return kind in PREVIEW_IMAGES or kind == "application/pdf" or kind.startswith("text/")


def _disposition(kind: str, name: str) -> str:
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name) or "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def take(raw: bytes, part: int) -> tuple[str, str, bytes] | None:
    """(file name, content type, bytes) of the message's part number `part`; None if none."""
    message = reading.parse(raw)
    found = reading.part_at(message, part)
    if found is None:
        return None
    try:
        content_type = found.get_content_type()
    except Exception:
        content_type = "application/octet-stream"
    try:
        data = found.get_payload(decode=True) or b""
    except Exception:
        data = b""
    return reading.part_name(found, part), content_type, data


async def response(raw: bytes, part: int, *, inline: bool = False) -> Response:
    got = await asyncio.to_thread(take, raw, part)
    if got is None:
        raise HTTPException(404, f"no part {part} in that message")
    name, content_type, data = got
    kind = content_type.lower()
    if inline and previewable(kind):
        if kind.startswith("text/"):
            media, policy = "text/plain; charset=utf-8", SANDBOX
            data = data.decode(_charset(raw, part), "replace").encode("utf-8")
        elif kind == "application/pdf":
            media, policy = "application/pdf", PDF_POLICY
        else:
            media, policy = kind, SANDBOX
        answer = Response(data, media_type=media, headers={"Content-Disposition": _disposition("inline", name)})
        secure_headers(answer, policy)
        return answer
    # A download, never rendered here (an HTML or SVG attachment runs nothing on this origin).
    answer = Response(data, media_type="application/octet-stream",
                      headers={"Content-Disposition": _disposition("attachment", name)})
    secure_headers(answer, "default-src 'none'; sandbox")
    return answer


def _charset(raw: bytes, part: int) -> str:
    found = reading.part_at(reading.parse(raw), part)
    charset = (found.get_content_charset() if found is not None else None) or "utf-8"
    try:
        "".encode(charset)
        return charset
    except (LookupError, ValueError):
        return "utf-8"
