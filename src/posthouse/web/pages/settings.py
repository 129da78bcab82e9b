"""Settings: the user's connected accounts (the tracker's status, "needs
attention" and why, the privacy level, remove), adding one after the
connection test (accounts/probe.py, its failing step shown in the server's
words), and the user's private list. Webhooks: pages/webhooks.py."""
from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ...accounts.store import PRIVACY, TLS_MODES, Account, AccountError
from ...crm.errors import CrmError
from ...webhooks.store import EVENTS, WebhookStore
from ..deps import need
from . import mailbox
from .common import checked_form, page_session, render
from .sessions import WebSession

router = APIRouter(include_in_schema=False)
log = logging.getLogger("posthouse.web")
Id = Annotated[int, Path(ge=1, le=2**53)]
IMAP_PORTS = {"implicit": 993, "starttls": 143, "none": 143}
SMTP_PORTS = {"implicit": 465, "starttls": 587, "none": 587}
PROBE_TIMEOUT = 15.0
_BLANK = dict(kind="imap", auth="password", oauth_provider=None, smtp_host=None, smtp_port=None, smtp_tls=None,
              tls_pin=None, since=None, privacy="snippet", addresses=[], state="active", state_reason="")


def _status(svc, account) -> dict | None:
    if svc.account_status is None:
        return None
    try:
        return svc.account_status(account.id)
    except Exception as e:      # the status is extra: the account is still shown
        log.warning("status of account %s: %s", account.id, e)
        return None


async def settings_page(request: Request, session: WebSession, *, status: int = 200, **extra):
    svc = request.app.state.services
    crm = need(svc.crm, "the CRM")

    def load():
        accounts = svc.accounts.list(session.user) if svc.accounts is not None else []
        return ([(a, _status(svc, a)) for a in accounts], crm.list_private(owner=session.user),
                WebhookStore(crm.engine).list(session.user))
    accounts, private, webhooks = await run_in_threadpool(load)
    context = {"section": "settings", "accounts": accounts, "private": private, "webhooks": webhooks,
               "privacy_levels": PRIVACY, "tls_modes": TLS_MODES, "events": EVENTS, "add": {}, "probe": None,
               "tracker_on": svc.account_status is not None,
               "has_local": any(a.kind == "local" for a, _ in accounts)}
    context.update(extra)
    return render(request, "settings.html", context, status=status)


@router.get("/settings")
async def settings(request: Request, session: WebSession = Depends(page_session)):
    return await settings_page(request, session)


def _field(form: dict, name: str, limit: int = 320) -> str:
    value = form.get(name)
    value = value.strip() if isinstance(value, str) else ""
    if len(value) > limit or "\x00" in value:
        raise ValueError(f"{name.replace('_', ' ')} is too long or holds a NUL character")
    return value


def _host_port(text: str, what: str) -> tuple[str, int | None]:
    from ...accounts.cli import parse_host_port
    try:
        return parse_host_port(text, None)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def _candidate(form: dict, owner: str) -> tuple[dict, dict]:
    """The account's fields and secret from the add form; ValueError saying what is wrong."""
    from ...accounts.cli import _pin
    host, port = _host_port(_field(form, "imap"), "IMAP server")
    tls = _field(form, "imap_tls") or "implicit"
    if tls not in TLS_MODES:
        raise ValueError("choose how the IMAP server speaks TLS")
    login, password = _field(form, "login"), form.get("password") if isinstance(form.get("password"), str) else ""
    if not login:
        raise ValueError("the login (user name) is needed")
    if not password or len(password) > 1000:
        raise ValueError("the password is needed")
    fields = dict(kind="imap", auth="password", imap_host=host, imap_port=port or IMAP_PORTS[tls], imap_tls=tls,
                  login=login, owner=owner)
    privacy = _field(form, "privacy") or "snippet"
    if privacy not in PRIVACY:
        raise ValueError("choose a privacy level")
    fields["privacy"] = privacy
    smtp = _field(form, "smtp")
    if smtp:
        smtp_host, smtp_port = _host_port(smtp, "SMTP server")
        smtp_tls = _field(form, "smtp_tls") or ("implicit" if smtp_port == 465 else "starttls")
        if smtp_tls not in TLS_MODES:
            raise ValueError("choose how the SMTP server speaks TLS")
        fields.update(smtp_host=smtp_host, smtp_port=smtp_port or SMTP_PORTS[smtp_tls], smtp_tls=smtp_tls)
    addresses = [a.strip().lower() for a in _field(form, "addresses", 2000).split(",") if a.strip()]
    if any("@" not in a or len(a) > 320 for a in addresses):
        raise ValueError("addresses: each one like name@example.com, separated by commas")
    fields["addresses"] = addresses or ([login.lower()] if "@" in login else [])
    pin = _field(form, "trust_fingerprint", 200)
    if pin:
        fields["tls_pin"] = _pin(pin)
    return fields, {"password": password}


@router.post("/settings/accounts")
async def add_account(request: Request, session: WebSession = Depends(page_session)):
    """Run the connection test; save only when it passes (as `posthouse account add`)."""
    from ...accounts.probe import probe
    form = await checked_form(request)
    svc = request.app.state.services
    store = need(svc.accounts, "the account store")
    shown = {k: v for k, v in form.items() if k not in ("password", "csrf") and isinstance(v, str)}
    try:
        fields, secret = _candidate(form, session.user)
    except ValueError as e:
        return await settings_page(request, session, status=422, add=shown, add_error=str(e))
    for other in await run_in_threadpool(store.list, session.user):
        if (other.imap_host.lower(), other.imap_port, other.login) == \
                (fields["imap_host"].lower(), fields["imap_port"], fields["login"]):
            return await settings_page(request, session, status=409, add=shown,
                                       add_error=f"you already have that account ({other.login} at {other.imap_host})")
    candidate = Account(id=None, **{**_BLANK, **fields})
    result = await probe(store, candidate, secret, timeout=PROBE_TIMEOUT)
    if not result.ok:
        return await settings_page(request, session, status=422, add=shown, probe=result)
    try:
        await run_in_threadpool(lambda: store.add(**fields, secret=secret))
    except AccountError as e:
        return await settings_page(request, session, status=422, add=shown, add_error=str(e))
    return RedirectResponse("/settings#accounts", status_code=303)


@router.post("/settings/accounts/local")
async def connect_local(request: Request, session: WebSession = Depends(page_session)):
    """The user's own Posthouse mailbox, through this server's IMAP with the
    service identity (as `posthouse account add USER --local`), after the test."""
    from types import SimpleNamespace

    from ...accounts.cli import DEFAULT_SINCE_DAYS, _local_fields
    from ...accounts.probe import probe
    form = await checked_form(request)
    svc = request.app.state.services
    store = need(svc.accounts, "the account store")
    if svc.config is None:
        raise HTTPException(503, "connecting the local mailbox needs the server's configuration")
    if any(a.kind == "local" for a in await run_in_threadpool(store.list, session.user)):
        return await settings_page(request, session, status=409, add_error="your Posthouse mailbox is already connected")
    privacy = form.get("privacy") if form.get("privacy") in PRIVACY else "snippet"
    fields = await run_in_threadpool(_local_fields, SimpleNamespace(owner=session.user), svc.config)
    fields.update(owner=session.user, privacy=privacy, since=date.today() - timedelta(days=DEFAULT_SINCE_DAYS))
    result = await probe(store, Account(id=None, **{**_BLANK, **fields}), None, timeout=PROBE_TIMEOUT)
    if not result.ok:
        return await settings_page(request, session, status=422, probe=result)
    await run_in_threadpool(lambda: store.add(**fields))
    return RedirectResponse("/settings#accounts", status_code=303)


@router.post("/settings/accounts/{account_id}/privacy")
async def account_privacy(request: Request, account_id: Id, session: WebSession = Depends(page_session)):
    form = await checked_form(request)
    account = await mailbox.own_account(request, session.user, account_id)
    level = form.get("privacy")
    if level not in PRIVACY:
        raise HTTPException(422, f"privacy: one of {', '.join(PRIVACY)}")
    await run_in_threadpool(lambda: request.app.state.services.accounts.update(account.id, privacy=level))
    return RedirectResponse("/settings#accounts", status_code=303)


@router.post("/settings/accounts/{account_id}/remove")
async def account_remove(request: Request, account_id: Id, session: WebSession = Depends(page_session)):
    await checked_form(request)
    account = await mailbox.own_account(request, session.user, account_id)
    await run_in_threadpool(request.app.state.services.accounts.remove, account.id)
    return RedirectResponse("/settings#accounts", status_code=303)


@router.post("/settings/private")
async def private_add(request: Request, session: WebSession = Depends(page_session)):
    form = await checked_form(request)
    crm = need(request.app.state.services.crm, "the CRM")
    entry = form.get("entry") if isinstance(form.get("entry"), str) else ""
    try:
        await run_in_threadpool(crm.add_private, entry[:400], session.user)
    except CrmError as e:
        return await settings_page(request, session, status=422, private_error=str(e), private_entry=entry[:400])
    return RedirectResponse("/settings#private", status_code=303)


@router.post("/settings/private/remove")
async def private_remove(request: Request, session: WebSession = Depends(page_session)):
    form = await checked_form(request)
    crm = need(request.app.state.services.crm, "the CRM")
    entry = form.get("entry") if isinstance(form.get("entry"), str) else ""
    await run_in_threadpool(crm.remove_private, entry[:400], session.user)     # NotFound: 404 page
    return RedirectResponse("/settings#private", status_code=303)
