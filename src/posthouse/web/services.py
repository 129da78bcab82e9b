"""The web app as `posthouse serve` runs it: the CRM database and the parts
that use it (the CRM, the account store, documents, sending, reply sorting).
A part not installed leaves its routes answering 503."""
from __future__ import annotations

import asyncio
import importlib
import logging

from .app import create_app
from .originals import make_fetch_original

log = logging.getLogger("posthouse.web")


def _optional(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as e:
        if not module.startswith(e.name or "-"):
            raise
        return None
    except AttributeError:
        return None


def build_app(config, *, engine=None, crm=None, accounts=None, account_status=None, user_exists=None):
    """The app for config; the engine, the CRM and the account store are made
    here unless given (serve shares them with the tracker)."""
    if engine is None:
        from ..db.engine import make_engine
        from ..db.migrate import upgrade
        engine = make_engine(config.database_url, config.data_dir)
        upgrade(engine)
    if accounts is None:
        AccountStore = _optional("posthouse.accounts.store", "AccountStore")
        accounts = AccountStore(engine, config.data_dir, config) if AccountStore else None
    classify = _optional("posthouse.crm.classify", "classify")
    if crm is None:
        Crm = _optional("posthouse.crm.service", "Crm")
        if Crm is not None:
            crm = Crm(engine, own_addresses=accounts.own_addresses if accounts else set,
                      privacy_level=(lambda id: getattr(accounts.get(id), "privacy", "snippet")) if accounts
                      else (lambda id: "snippet"), classify=classify,
                      account_owner=(lambda id: getattr(accounts.get(id), "owner", None)) if accounts
                      else (lambda id: None))
    Documents = _optional("posthouse.crm.documents", "Documents")
    open_session = _optional("posthouse.accounts", "open_session")
    fetch = make_fetch_original(accounts, open_session) if accounts is not None and open_session else None
    compose, send = _optional("posthouse.send.compose", "compose"), _optional("posthouse.send", "send")
    sender = make_sender(config, accounts, compose, send) if accounts is not None and compose and send else None
    missing = [what for what, part in (("the CRM", crm), ("accounts", accounts), ("documents", Documents),
                                       ("originals", fetch), ("sending", sender), ("reply sorting", classify))
               if part is None]
    if missing:
        log.warning("web: not available on this server: %s", ", ".join(missing))
    return create_app(config, engine, crm, accounts, fetch_original=fetch, account_status=account_status,
                      documents_service=Documents(engine) if Documents else None, sender=sender,
                      classifier=classify, user_exists=user_exists)


def make_sender(config, accounts, compose, send):
    """sender(account, SendIn, attachments) for the send route: compose, submit, file in Sent."""
    async def sender(account, body, attachments) -> dict:
        from_addr = body.from_address or ((account.addresses or [None])[0]) or account.login
        domain = from_addr.rpartition("@")[2] if "@" in from_addr else (config.hostname or "localhost")
        # (on a thread: 25 MiB of attachments take a while to encode)
        composed = await asyncio.to_thread(
            compose, from_addr=from_addr, to=body.to, cc=body.cc, bcc=body.bcc, subject=body.subject,
            text=body.text, html=body.html, attachments=attachments, in_reply_to=body.in_reply_to,
            references=body.references, message_id_domain=domain)
        try:    # (the Composed itself: it carries the envelope, Bcc included, which the bytes don't)
            result = await send(accounts, account, composed)
        except ValueError:
            raise
        except Exception as e:      # SMTP or IMAP trouble on the far side: 502, not a crash
            raise ConnectionError(str(e) or type(e).__name__) from e
        appended = getattr(result, "appended", None)
        if appended is not None and not isinstance(appended, dict):
            appended = dict(zip(("folder", "uidvalidity", "uid"), appended))
        return {"message_id": result.message_id, "appended": appended,
                "refused": dict(getattr(result, "refused", None) or {}),
                "sent_note": getattr(result, "sent_note", None)}
    return sender
