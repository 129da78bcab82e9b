"""/api/v1/accounts: the caller's own tracked mailboxes and how their sync goes.
Built field by field from the Account: a secret can't slip into an answer."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from starlette.exceptions import HTTPException

from ..deps import Services, current_user, need, services
from ..models import Account, Error
from .params import IdPath

router = APIRouter(prefix="/accounts", tags=["accounts"])
log = logging.getLogger("posthouse.web")
FIELDS = tuple(name for name in Account.model_fields if name != "status")


def account_out(svc: Services, account) -> dict:
    out = {name: getattr(account, name, None) for name in FIELDS}
    out["addresses"] = list(out["addresses"] or ())
    if svc.account_status is not None:
        try:
            out["status"] = svc.account_status(account.id)
        except Exception as e:      # the status is extra: the account is still shown
            log.warning("status of account %s: %s", account.id, e)
    return out


def own_account(svc: Services, user: str, id: int):
    account = need(svc.accounts, "the account store").get(id)
    if account is None or account.owner != user:
        raise HTTPException(404, f"no account {id} of yours")
    return account


@router.get("", response_model=list[Account], summary="The caller's accounts, with their sync status")
def list_accounts(svc: Services = Depends(services), user: str = Depends(current_user)):
    return [account_out(svc, a) for a in need(svc.accounts, "the account store").list(owner=user)]


@router.get("/{id}", response_model=Account, responses={404: {"model": Error}}, summary="One of the caller's accounts")
def get_account(id: IdPath, svc: Services = Depends(services), user: str = Depends(current_user)):
    return account_out(svc, own_account(svc, user, id))
