"""Logging in (the Posthouse user name and password, checked as IMAP checks
them, under the same throttle) and out."""
from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ...logfmt import LoginLog
from .common import checked_form, own_origin, render, secure_headers
from .sessions import COOKIE, LOGIN_COOKIE, cross_site, same_token

router = APIRouter(include_in_schema=False)


def _safe_next(value) -> str:
    """Only a path on this site (never //elsewhere or a scheme)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value[:2000]
    return "/"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_page(request: Request, *, next_url: str, error: str | None = None, name: str = "", status: int = 200):
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", {"next": next_url, "error": error, "name": name,
                                              "login_csrf": token}, status=status)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                        path="/login", max_age=3600)
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "/"):
    return _login_page(request, next_url=_safe_next(next))


@router.post("/login")
async def login(request: Request):
    why = cross_site(request.headers, own_origin(request))
    if why:
        raise HTTPException(403, f"refused: {why}")
    form = await request.form()
    name, password = form.get("name"), form.get("password")
    next_url = _safe_next(form.get("next"))
    token = form.get("csrf")
    if not same_token(token if isinstance(token, str) else None, request.cookies.get(LOGIN_COOKIE)):
        raise HTTPException(403, "refused: the login form's security token is missing or wrong (reload the page)")
    if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
        return _login_page(request, next_url=next_url, error="Give your user name and password.", status=400)
    check = request.app.state.web_login
    if check is None:
        raise HTTPException(503, "logging in is not available on this server")
    peer = request.client.host if request.client else "?"
    user = await check(name[:256], password[:1024], peer)
    lines = LoginLog("web", f"{peer}:{request.client.port}" if request.client else peer)   # (as IMAP logs them)
    if user is None:
        lines.failed(name[:256], _secure(request))
        return _login_page(request, next_url=next_url, error="Wrong user name or password.", name=name[:256],
                           status=401)
    session = await run_in_threadpool(request.app.state.web_sessions.create, user)
    lines.login(user, _secure(request))
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="lax", secure=_secure(request), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    secure_headers(response)
    return response


@router.post("/logout")
async def logout(request: Request):
    await checked_form(request)
    await run_in_threadpool(request.app.state.web_sessions.end, request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    secure_headers(response)
    return response

