"""/api/v1/private: the caller's private list (addresses and domains whose mail
is never logged for them), and the whole server's, read-only here (the
server's list is changed with `posthouse private`)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from ..deps import Services, current_user, needs_crm, services
from ..models import Error, PrivateEntry, PrivateIn
from .params import NO_NUL

router = APIRouter(prefix="/private", tags=["private"], dependencies=[Depends(needs_crm)])


@router.get("", response_model=list[PrivateEntry],
            summary="The private list: the caller's own entries and the whole server's (owner null)")
def list_private(svc: Services = Depends(services), user: str = Depends(current_user)):
    return list(svc.crm.list_private(owner=user)) + list(svc.crm.list_private(owner=None))


@router.post("", response_model=PrivateEntry, status_code=201, responses={400: {"model": Error}},
             summary="Never log mail with this address or domain for the caller (what was logged of it goes)")
def add_private(body: PrivateIn, svc: Services = Depends(services), user: str = Depends(current_user)):
    return svc.crm.add_private(body.entry, owner=user)


@router.delete("", status_code=204, responses={404: {"model": Error}},
               summary="Take an entry off the caller's private list")
def remove_private(entry: Annotated[str, Query(min_length=1, max_length=320, pattern=NO_NUL)],
                   svc: Services = Depends(services), user: str = Depends(current_user)):
    svc.crm.remove_private(entry, owner=user)
    return Response(status_code=204)
