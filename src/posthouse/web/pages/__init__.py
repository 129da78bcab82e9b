"""The web app's pages under / (server-rendered with Jinja2, htmx served
from static/ as a plain file: no JavaScript build step), beside the REST API
under /api/v1 in the same FastAPI app."""
from __future__ import annotations

import logging
import os

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ...crm.errors import CrmError, NotFound
from .. import imap_pool
from . import auth, campaigns, companies, compose, contacts, mail, settings, webhooks
from .common import HERE, LoginRequired, login_url, render, secure_headers
from .sessions import SessionStore

log = logging.getLogger("posthouse.web")


def install(app: FastAPI, *, login=None, open_imap=None, engine=None) -> None:
    """login: async (name, password, peer) -> the user's name, or None (the
    mail protocols' check and throttle); open_imap: async (account) -> a
    logged-in ImapConnection; engine: the database keeping the login sessions."""
    app.state.web_login = login
    app.state.open_imap = open_imap
    imap_pool.install(app)
    app.state.web_sessions = SessionStore(engine)
    app.mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")
    for module in (auth, mail, compose, contacts, companies, settings, webhooks, campaigns):
        app.include_router(module.router)
    _html_errors(app)


def _is_page(request: Request) -> bool:
    return not request.url.path.startswith("/api/")


def _html_errors(app: FastAPI) -> None:
    """The pages answer errors with a page; the API keeps its JSON."""
    json_handlers = dict(app.exception_handlers)

    def wrap(kind, status_of):
        api_handler = json_handlers.get(kind)

        async def handler(request: Request, exc):
            if not _is_page(request) and api_handler is not None:
                return await api_handler(request, exc)
            status, message = status_of(exc)
            return render(request, "error.html", {"status": status, "message": message}, status=status)
        app.add_exception_handler(kind, handler)

    wrap(HTTPException, lambda e: (e.status_code, e.detail if isinstance(e.detail, str) else str(e.detail)))
    wrap(NotFound, lambda e: (404, str(e) or "not found"))
    wrap(RequestValidationError, lambda e: (422, "; ".join(
        f"{'.'.join(str(p) for p in item.get('loc', ())[1:])}: {item.get('msg', 'invalid')}"
        for item in e.errors()[:5]) or "invalid request"))
    wrap(CrmError, lambda e: (400, str(e) or "refused"))

    def crashed(e):     # a bug: logged with its traceback, a short page
        log.error("page failed: %r", e, exc_info=e)
        return 500, "internal error (logged on the server)"
    wrap(Exception, crashed)

    async def login_required(request: Request, exc: LoginRequired):
        response = RedirectResponse(login_url(exc.next_url), status_code=303)
        secure_headers(response)
        return response
    app.add_exception_handler(LoginRequired, login_required)
