"""Documents on contacts (a resume, say): uploaded as multipart/form-data, their
text extracted and searchable; downloaded as they were uploaded."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..deps import Services, need, services
from ..limits import LARGE
from ..models import Document, DocumentHit, Error
from .params import NO_NUL, IdPath, IdQuery, Limit, Offset

router = APIRouter(tags=["documents"])
NOT_FOUND = {404: {"model": Error}}


def _documents(svc: Services):
    return need(svc.documents, "documents")


def _document(svc: Services, id: int) -> dict:
    doc = _documents(svc).get(id)
    if doc is None:
        raise HTTPException(404, f"no document {id}")
    return doc


@router.post("/contacts/{id}/documents", response_model=Document, status_code=201,
             responses={**NOT_FOUND, 413: {"model": Error}, 422: {"model": Error}},
             summary="Attach a document (PDF, DOCX, ODT, text) to a contact; its text becomes searchable")
async def upload(id: IdPath, file: Annotated[UploadFile, File(description="the document")],
                 svc: Services = Depends(services)):
    docs = _documents(svc)
    if await run_in_threadpool(need(svc.crm, "the CRM").get_contact, id) is None:
        raise HTTPException(404, f"no contact {id}")
    data = await file.read(LARGE + 1)
    if len(data) > LARGE:
        raise HTTPException(413, "the document is too large")
    name = (file.filename or "document").replace("\x00", "")[:255] or "document"
    content_type = (file.content_type or "application/octet-stream")[:255]
    return await run_in_threadpool(docs.add, id, name, content_type, data)


@router.get("/contacts/{id}/documents", response_model=list[Document], responses=NOT_FOUND,
            summary="A contact's documents")
def contact_documents(id: IdPath, svc: Services = Depends(services), limit: Limit = 100, offset: Offset = 0):
    docs = _documents(svc)
    if need(svc.crm, "the CRM").get_contact(id) is None:
        raise HTTPException(404, f"no contact {id}")
    return list(docs.list(id))[offset:offset + limit]


@router.get("/documents", response_model=list[DocumentHit], responses={400: {"model": Error}},
            summary="Search documents' text: those with every word of q (newest first), each with a snippet")
def search_documents(q: Annotated[str, Query(min_length=1, max_length=500, pattern=NO_NUL)],
                     svc: Services = Depends(services), contact_id: IdQuery = None,
                     limit: Limit = 100, offset: Offset = 0):
    hits = _documents(svc).search(q, contact_id=contact_id, limit=offset + limit)
    return [{**hit, "id": hit.get("document_id", hit.get("id"))} for hit in hits][offset:offset + limit]


@router.get("/documents/{id}", response_model=Document, responses=NOT_FOUND, summary="A document's details")
def get_document(id: IdPath, svc: Services = Depends(services)):
    return _document(svc, id)


@router.get("/documents/{id}/content", response_class=Response, responses=NOT_FOUND,
            summary="The document's file, as uploaded")
def download(id: IdPath, svc: Services = Depends(services)):
    doc = _document(svc, id)
    data = _documents(svc).data(id)
    if data is None:
        raise HTTPException(404, f"no document {id}")
    filename = "".join(c for c in doc["filename"] if c.isprintable() and c not in '"\\') or "document"
    return Response(bytes(data), media_type=doc.get("content_type") or "application/octet-stream",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{_quote(filename)}",
                             "X-Content-Type-Options": "nosniff"})


@router.delete("/documents/{id}", status_code=204, responses=NOT_FOUND, summary="Delete a document")
def delete_document(id: IdPath, svc: Services = Depends(services)):
    _document(svc, id)
    _documents(svc).delete(id)
    return Response(status_code=204)


def _quote(name: str) -> str:
    from urllib.parse import quote
    return quote(name, safe="")
