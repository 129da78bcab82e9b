"""Companies: the list (searched by name or domain), and a company's page
with its contacts and their email (only what is in the user's own accounts)."""
from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..api.activities import visible_activities
from ..deps import need
from .common import page_session, render
from .sessions import WebSession

router = APIRouter(include_in_schema=False)
PAGE = 100
CONTACTS = 200
ACTIVITIES = 50
Text = Annotated[str, Query(max_length=500, pattern=r"^[^\x00]*$")]


@router.get("/companies")
async def companies(request: Request, q: Text = "", page: Annotated[int, Query(ge=1, le=10**6)] = 1,
                    session: WebSession = Depends(page_session)):
    crm = need(request.app.state.services.crm, "the CRM")
    found = await run_in_threadpool(lambda: crm.list_companies(q.strip() or None, limit=PAGE + 1,
                                                               offset=(page - 1) * PAGE))
    return render(request, "companies.html", {"companies": found[:PAGE], "more": len(found) > PAGE, "q": q,
                                              "page": page, "quote": quote})


@router.get("/companies/{company_id}")
async def company(request: Request, company_id: Annotated[int, Path(ge=1, le=2**53)],
                  session: WebSession = Depends(page_session)):
    svc = request.app.state.services
    crm = need(svc.crm, "the CRM")

    def load():
        found = crm.get_company(company_id)
        if found is None:
            return None, [], []
        people = crm.find_contacts(company_id=company_id, limit=CONTACTS + 1)
        return found, people, visible_activities(svc, session.user, company_id=company_id, limit=ACTIVITIES, offset=0)
    found, people, activities = await run_in_threadpool(load)
    if found is None:
        raise HTTPException(404, f"no company {company_id}")
    names = {c["id"]: c for c in people}
    return render(request, "company.html", {"company": found, "contacts": people[:CONTACTS],
                                            "more": len(people) > CONTACTS, "activities": activities,
                                            "names": names, "quote": quote})
