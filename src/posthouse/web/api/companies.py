"""/api/v1/companies: shared, like contacts."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.exceptions import HTTPException

from ..deps import Services, needs_crm, services
from ..models import Company, CompanyIn, Error
from .params import IdPath, Limit, Offset, Search

router = APIRouter(prefix="/companies", tags=["companies"], dependencies=[Depends(needs_crm)])


@router.get("", response_model=list[Company], summary="List companies (q: part of the name or a domain)")
def list_companies(svc: Services = Depends(services), q: Search = None, limit: Limit = 100, offset: Offset = 0):
    return list(svc.crm.list_companies(q=q))[offset:offset + limit]


@router.post("", response_model=Company, status_code=201, summary="Add a company")
def add_company(body: CompanyIn, svc: Services = Depends(services)):
    return svc.crm.add_company(body.name, domains=tuple(body.domains))


@router.get("/{id}", response_model=Company, responses={404: {"model": Error}}, summary="A company")
def get_company(id: IdPath, svc: Services = Depends(services)):
    company = svc.crm.get_company(id)
    if company is None:
        raise HTTPException(404, f"no company {id}")
    return company
