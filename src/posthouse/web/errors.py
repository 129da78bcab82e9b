"""Every error the API gives is JSON: {"error": "what went wrong"} (and, for
invalid input, "details": where). Nothing a client sends gives a 5xx."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger("posthouse.web")

from ..crm.documents import DocumentError
from ..crm.errors import CrmError, NotFound


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _where(loc) -> str:
    return ".".join(str(part) for part in loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = []
        details = []
        for item in exc.errors():
            where = _where(item.get("loc", ()))
            problem = item.get("msg", "invalid")
            if item.get("loc") == ("body",) and item.get("type") in ("model_attributes_type", "dict_type"):
                problem = "the body must be a JSON object (Content-Type: application/json)"
            problems.append(f"{where}: {problem}")
            details.append({"where": where, "problem": problem})
        return JSONResponse({"error": "invalid request: " + "; ".join(problems[:5]), "details": details[:50]},
                            status_code=422)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        return error(404, str(exc) or "not found")

    @app.exception_handler(CrmError)
    async def refused(request: Request, exc: CrmError):
        return error(400, str(exc) or "refused")

    @app.exception_handler(DocumentError)
    async def bad_document(request: Request, exc: DocumentError):
        return error(422, str(exc) or "the document can't be read")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        # A bug, not the client's doing: logged with its traceback, and a short answer.
        log.error("%s %s failed: %r", request.method, request.url.path, exc, exc_info=exc)
        return error(500, "internal error (logged on the server)")
