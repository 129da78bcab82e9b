"""What every page route shares: the templates, the logged-in user (or a
redirect to the login page), the CSRF check on every form, and the security
headers every page is served with."""
from __future__ import annotations

import os
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..deps import services
from .sessions import COOKIE, WebSession, cross_site, same_token

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
templates = Jinja2Templates(directory=os.path.join(HERE, "templates"))     # (autoescaping on for .html)
# The templates ship with the package: checking each file for changes on every
# render (Jinja's default) cost ~90 stat calls per message-list page.
templates.env.auto_reload = False

# Pages run no inline script and load nothing from elsewhere. The message page
# widens style-src (the mail's own CSS, in its sandboxed frame, inherits this
# policy) and, once the user allows it, img-src.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def csp(*, mail_styles: bool = False, remote_images: bool = False) -> str:
    policy = CSP
    if mail_styles:
        policy = policy.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
    if remote_images:
        policy = policy.replace("img-src 'self' data:", "img-src 'self' data: https: http:")
    return policy


class LoginRequired(Exception):
    def __init__(self, next_url: str):
        self.next_url = next_url


def own_origin(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


async def page_session(request: Request) -> WebSession:
    """The request's session, its user still in the mail store; else to the login page."""
    store = request.app.state.web_sessions
    session = await run_in_threadpool(store.get, request.cookies.get(COOKIE))
    if session is not None:
        exists = services(request).user_exists
        if exists is not None and not await run_in_threadpool(exists, session.user):
            await run_in_threadpool(store.end, session.id)
            session = None
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else "/")
    request.state.web_session = session
    return session


async def checked_form(request: Request) -> dict:
    """The form of an unsafe request, after the CSRF checks: same site, and the
    session's token in the form's `csrf` field. 403 otherwise."""
    session = await page_session(request)
    why = cross_site(request.headers, own_origin(request))
    if why:
        raise HTTPException(403, f"refused: {why}")
    form = await request.form()
    if not same_token(form.get("csrf") if isinstance(form.get("csrf"), str) else None, session.csrf):
        raise HTTPException(403, "refused: the form's security token is missing or wrong (reload the page)")
    return dict(form)


def render(request: Request, template: str, context: dict | None = None, *, status: int = 200,
           policy: str = CSP) -> HTMLResponse:
    session = getattr(request.state, "web_session", None)
    values = {"user": session.user if session else None, "csrf": session.csrf if session else None}
    values.update(context or {})
    response = templates.TemplateResponse(request, template, values, status_code=status)
    secure_headers(response, policy)
    return response


def secure_headers(response, policy: str = CSP) -> None:
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    # (same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on our own forms)
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"


def login_url(next_url: str) -> str:
    return "/login?next=" + quote(next_url, safe="/")
