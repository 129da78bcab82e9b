"""What every route gets: the services (set once by create_app) and the caller,
from `Authorization: Bearer TOKEN`."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from .tokens import TokenStore


@dataclass
class Services:
    config: Any
    crm: Any                                    # crm.service.Crm
    accounts: Any                               # accounts.AccountStore (list(owner=), get(id))
    tokens: TokenStore
    fetch_original: Callable | None = None      # (place dict) -> bytes | None, sync or async
    account_status: Callable | None = None      # (account id) -> dict: the tracker's progress
    documents: Any = None                       # crm.documents.Documents
    # async (account, SendIn, [(filename, content type, bytes)]) -> {message_id, appended, refused, sent_note}
    sender: Callable | None = None
    classify: Callable | None = None            # (raw bytes) -> Classification (to_json()) or dict
    user_exists: Callable | None = None         # (user name) -> bool: the mail store still has that user


def services(request: Request) -> Services:
    return request.app.state.services


_bearer = HTTPBearer(auto_error=False, description="a token from `posthouse token create USER`")


def current_user(request: Request,
                 credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
    """The user the request's token acts as; 401 (with WWW-Authenticate) without a live token."""
    challenge = {"WWW-Authenticate": 'Bearer realm="posthouse"'}
    if credentials is None:
        raise HTTPException(401, "authentication required: send Authorization: Bearer TOKEN "
                                 "(make one with `posthouse token create USER`)", headers=challenge)
    svc = services(request)
    info = svc.tokens.verify(credentials.credentials)
    invalid = {"WWW-Authenticate": 'Bearer realm="posthouse", error="invalid_token"'}
    if info is None:
        raise HTTPException(401, "the token is not valid (unknown or revoked)", headers=invalid)
    if svc.user_exists is not None and not svc.user_exists(info.user):
        raise HTTPException(401, f"the token's user {info.user} no longer exists", headers=invalid)
    return info.user


def own_account_ids(svc: Services, user: str) -> set[int]:
    if svc.accounts is None:
        return set()
    return {account.id for account in svc.accounts.list(owner=user)}


def need(value, what: str):
    """The service, or 503 saying which part is not running here."""
    if value is None:
        raise HTTPException(503, f"{what} is not available on this server")
    return value


def needs_crm(request: Request) -> None:
    need(services(request).crm, "the CRM")


def _is_async(fn) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


async def call(fn, *args):
    """fn(*args) awaited if it is async, else on a worker thread (it may block on I/O)."""
    from starlette.concurrency import run_in_threadpool
    value = await fn(*args) if _is_async(fn) else await run_in_threadpool(fn, *args)
    return await value if inspect.isawaitable(value) else value
