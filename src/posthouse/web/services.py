"""The web app as `posthouse serve` runs it, over the CRM side it shares with
the tracker (crmside.py): the CRM, the account store, documents, sending,
reply sorting, and the originals fetched live from the mail servers."""
from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime, timezone

from ..accounts.session import open_session
from ..crm.classify import classify
from ..crm.documents import Documents
from ..send.compose import compose
from ..send.sent import send
from ..tracker.facts import MessageSeen, Place
from .app import create_app
from .originals import make_fetch_original

log = logging.getLogger("posthouse.web")


def build_app(config, side, *, account_status=None, user_exists=None, login=None, live=None):
    """The app for config over side (a crmside.CrmSide). login: async (name,
    password, peer) -> user name or None, the mail protocols' check; live: the
    web/live.py hub behind GET /events."""
    app = create_app(config, side.engine, side.crm, side.accounts,
                      fetch_original=make_fetch_original(side.accounts, open_session),
                      account_status=account_status,
                      documents_service=Documents.from_config(side.engine, config),
                      sender=make_sender(config, side.accounts, compose, send, crm=side.crm),
                      classifier=classify, user_exists=user_exists, login=login,
                      open_imap=lambda account: open_session(side.accounts, account))
    from .pages import events
    events.install(app, live)
    return app


def make_sender(config, accounts, compose, send, *, crm=None):
    """sender(account, SendIn, attachments) for the send route: compose, submit,
    file in Sent, and log the activity on the contacts at once (the tracker
    finds the same message in Sent later: one message, by its Message-ID)."""
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
        if crm is not None and appended is not None and appended[1] is not None:
            await asyncio.to_thread(crm.apply, [sent_fact(account, composed, body.bcc, appended)])
        if appended is not None and not isinstance(appended, dict):
            appended = dict(zip(("folder", "uidvalidity", "uid"), appended))
        return {"message_id": result.message_id, "appended": appended,
                "refused": dict(getattr(result, "refused", None) or {}),
                "sent_note": getattr(result, "sent_note", None)}
    return sender


def sent_fact(account, composed, bcc, appended) -> MessageSeen:
    """What the tracker will say of the copy filed in Sent, said now. The Bcc
    recipients, left out of the bytes, go in the CRM's copy of the header."""
    folder, uidvalidity, uid = appended
    message = composed.message
    if bcc:
        message = b"Bcc: " + ", ".join(bcc).encode("utf-8") + b"\r\n" + message
    return MessageSeen(
        place=Place(account.id, folder, uidvalidity, uid), message_id=composed.message_id.strip("<>"),
        emailid=None, content_hash=hashlib.sha256(composed.message).hexdigest(),
        internaldate=datetime.now(timezone.utc), size=len(composed.message), flags=("\\Seen",),
        modseq=None, skeleton=message, special_use="\\Sent")
