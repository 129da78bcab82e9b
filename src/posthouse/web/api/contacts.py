"""/api/v1/contacts: the organisation's contacts (shared by every user)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from starlette.exceptions import HTTPException

from ..deps import Services, current_user, needs_crm, services
from ..models import Activity, Contact, ContactIn, ContactPatch, Error, MergeIn
from .activities import visible_activities
from .params import NO_NUL, IdPath, IdQuery, Limit, Offset, Search

router = APIRouter(prefix="/contacts", tags=["contacts"], dependencies=[Depends(needs_crm)])
NOT_FOUND = {404: {"model": Error, "description": "no such contact"}}


def _contact(svc: Services, id: int) -> dict:
    contact = svc.crm.get_contact(id)
    if contact is None:
        raise HTTPException(404, f"no contact {id}")
    return contact


@router.get("", response_model=list[Contact], summary="Find contacts")
def find_contacts(svc: Services = Depends(services),
                  email: Annotated[str | None, Query(max_length=320, pattern=NO_NUL,
                                                     description="one of the contact's addresses")] = None,
                  q: Search = None, tag: Search = None, company_id: IdQuery = None,
                  limit: Limit = 100, offset: Offset = 0):
    return svc.crm.find_contacts(email=email, q=q, tag=tag, company_id=company_id, limit=limit, offset=offset)


@router.post("", response_model=Contact, status_code=201, summary="Add a contact")
def add_contact(body: ContactIn, svc: Services = Depends(services)):
    fields = body.model_dump()
    fields["emails"] = tuple(fields["emails"])
    fields["tags"] = tuple(fields["tags"])
    return svc.crm.add_contact(**fields)


@router.get("/{id}", response_model=Contact, responses=NOT_FOUND, summary="A contact")
def get_contact(id: IdPath, svc: Services = Depends(services)):
    return _contact(svc, id)


@router.patch("/{id}", response_model=Contact, responses=NOT_FOUND,
              summary="Change a contact (only the fields given; add_emails/remove_emails for its addresses)")
def edit_contact(id: IdPath, body: ContactPatch, svc: Services = Depends(services)):
    _contact(svc, id)
    fields = body.model_dump(exclude_unset=True)
    add = tuple(fields.pop("add_emails", ()))
    remove = tuple(fields.pop("remove_emails", ()))
    if "tags" in fields:
        fields["tags"] = tuple(fields["tags"])
    return svc.crm.edit_contact(id, add_emails=add, remove_emails=remove, **fields)


@router.delete("/{id}", status_code=204, responses=NOT_FOUND, summary="Delete a contact")
def delete_contact(id: IdPath, svc: Services = Depends(services)):
    _contact(svc, id)
    svc.crm.delete_contact(id)
    return Response(status_code=204)


@router.post("/{id}/merge", response_model=Contact, responses=NOT_FOUND,
             summary="Merge another contact into this one (its addresses and activities move here)")
def merge_contacts(id: IdPath, body: MergeIn, svc: Services = Depends(services)):
    if body.other_id == id:
        raise HTTPException(400, "a contact can't be merged with itself")
    _contact(svc, id)
    if svc.crm.get_contact(body.other_id) is None:
        raise HTTPException(404, f"no contact {body.other_id}")
    return svc.crm.merge_contacts(id, body.other_id)


@router.get("/{id}/activities", response_model=list[Activity], responses=NOT_FOUND,
            summary="The contact's activities in the caller's accounts, newest first")
def contact_activities(id: IdPath, svc: Services = Depends(services), user: str = Depends(current_user),
                       limit: Limit = 100, offset: Offset = 0):
    _contact(svc, id)
    return visible_activities(svc, user, contact_id=id, limit=limit, offset=offset)
