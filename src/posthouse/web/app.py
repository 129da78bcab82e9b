"""The web app: FastAPI, the REST API under /api/v1 (described at
/api/v1/openapi.json, browsable at /api/v1/docs). Every /api/v1 route but the
description needs `Authorization: Bearer TOKEN`."""
from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Depends, FastAPI

from .. import __version__
from . import errors, pages
from .api import accounts as accounts_api, activities, attachments, classify, companies, contacts, documents, private, send
from .api import campaigns as campaigns_api
from .api import webhooks as webhooks_api
from .deps import Services, current_user
from .limits import BodyLimit, limit_for
from .models import Error
from .tokens import TokenStore

PREFIX = "/api/v1"


def create_app(config, engine, crm, accounts, *, tokens: TokenStore | None = None, fetch_original=None,
               account_status=None, documents_service=None, sender=None, classifier=None,
               user_exists=None, login=None, open_imap=None) -> FastAPI:
    """The app over these services (each None where that part is not running:
    its routes then answer 503). fetch_original(place dict) -> bytes | None
    gets an activity's original from its mail server; account_status(id) ->
    dict the tracker's progress; sender(account, SendIn, attachments) sends;
    user_exists(name) -> bool refuses the tokens of users deleted since.
    The pages under / (web/pages): login(name, password, peer) -> user name or
    None checks a password; open_imap(account) -> a logged-in ImapConnection."""
    app = FastAPI(title="Posthouse", version=__version__,
                  description="The activity tracker's REST API: contacts, companies, activities (emails logged "
                              "on contacts), the originals on the mail server, accounts, documents, sending, "
                              "reply sorting. Authenticate with `Authorization: Bearer TOKEN` "
                              "(`posthouse token create USER`).",
                  openapi_url=PREFIX + "/openapi.json", docs_url=PREFIX + "/docs", redoc_url=None,
                  swagger_ui_oauth2_redirect_url=PREFIX + "/docs/oauth2-redirect")
    app.state.services = Services(config=config, crm=crm, accounts=accounts,
                                  tokens=tokens or TokenStore(engine), fetch_original=fetch_original,
                                  account_status=account_status, documents=documents_service, sender=sender,
                                  classify=classifier, user_exists=user_exists)
    app.state.engine = engine      # (the CRM database: campaigns read it beside the CRM)
    errors.install(app)
    api = APIRouter(prefix=PREFIX, dependencies=[Depends(current_user)],
                    responses={401: {"model": Error, "description": "no token, or not a valid one"},
                               422: {"model": Error, "description": "invalid input"}})
    for module in (contacts, companies, activities, attachments, accounts_api, documents, send, classify, private):
        api.include_router(module.router)
    api.include_router(campaigns_api.router)
    api.include_router(webhooks_api.router)
    app.include_router(api)
    pages.install(app, login=login, open_imap=open_imap, engine=engine)
    app.add_middleware(BodyLimit, limit_for=partial(limit_for, max_message=getattr(config, "max_message_size", None)))
    return app
