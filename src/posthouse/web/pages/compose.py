"""Compose, reply, reply all and forward, from one of the user's accounts.

The form posts to /compose/send, which sends through the same path as the
API (services.sender: submitted, filed in Sent, logged on the contacts) and
then removes the draft. While the user types, compose.js posts the same form
to /compose/draft, which stores it in the account's Drafts folder (drafts.py)
and answers with the new draft's UID and attachments.

Attachments come from three places: files uploaded with the form, parts of
the current draft ("draft:N") and parts of the forwarded message ("fwd:N"),
N being the part number reading.py gives them. The last two are fetched
from the server again when the form is posted, so nothing is kept here
between requests."""
from __future__ import annotations

import asyncio
import html
import re
from dataclasses import dataclass, field
from email.utils import formataddr, getaddresses
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ...send.compose import reply_subject
from .. import drafts
from ..deps import call
from . import mailbox, reading
from .common import checked_form, page_session, render, secure_headers
from .mail import Folder, Uid, message_url
from .sessions import WebSession

router = APIRouter(include_in_schema=False)

MAX_QUOTED = 200_000        # characters of the original quoted in a reply or forward
MAX_FIELD = 10_000          # characters of an address field


class Refused(ValueError):
    """What the user must fix; the text is shown on the page, the form kept."""


@dataclass
class Kept:
    ref: str            # "draft:N" | "fwd:N"
    name: str
    content_type: str
    size: int


@dataclass
class ComposeForm:
    from_addr: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    text: str = ""
    in_reply_to: str = ""
    references: str = ""
    draft: int | None = None
    forward_folder: str = ""
    forward_uid: int | None = None
    back_folder: str = "INBOX"
    kept: list[Kept] = field(default_factory=list)
    show_cc: bool = False


def identities(account) -> list[str]:
    """The addresses this account may send as, its login's own first."""
    own = list(account.addresses or ())
    login = (account.login or "").lower()
    if not own and "@" in login:
        own = [account.login]
    return sorted(own, key=lambda a: (a.lower() != login and a.lower().partition("@")[0] != login, a.lower()))


def _own(account) -> set[str]:
    return {a.lower() for a in identities(account)}


# ------------------------------------------------------------------ the original, for a reply or forward

class _Text(HTMLParser):
    """An HTML body as plain text, for quoting (tags dropped, blocks on lines of their own)."""
    BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head", "title"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(re.sub(r"\s+", " ", data))


def attachments_in(raw: bytes, kind: str) -> list[Kept]:
    """The message's attachments, numbered as reading.py numbers them (its
    download route and part_at count the same way)."""
    message = reading.parse(raw)
    out = []
    for index, part in reading.attachments_of(message, reading._body_part(message)):
        data = part.get_payload(decode=True) or b""
        out.append(Kept(f"{kind}:{index}", reading.part_name(part, index), part.get_content_type(), len(data)))
    return out


def html_to_text(markup: str) -> str:
    parser = _Text()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:
        return html.unescape(re.sub(r"<[^>]*>", " ", markup))
    return re.sub(r"\n\s*\n\s*\n+", "\n\n", "".join(parser.out)).strip()


def body_text(message) -> str:
    """The original's text (its HTML made text when it has no plain part)."""
    try:
        body = message.get_body(preferencelist=("plain", "html"))
    except Exception:
        body = None
    if body is None:
        return ""
    content = reading._content(body)
    if body.get_content_subtype() == "html":
        content = html_to_text(content)
    return content.replace("\r\n", "\n")[:MAX_QUOTED]


def _header(message, name: str) -> str:
    return drafts.header_text(message, name)


def _pairs(*values: str) -> list[tuple[str, str]]:
    return [(n, a) for n, a in getaddresses([v for v in values if v]) if a and "@" in a]


def _join(pairs) -> str:
    return ", ".join(formataddr(p) for p in pairs)


def _chosen_identity(account, message) -> str:
    """The account's address the original was sent to, else its first."""
    own = {a.lower(): a for a in identities(account)}
    for _, address in _pairs(_header(message, "To"), _header(message, "Cc"), _header(message, "Delivered-To")):
        if address.lower() in own:
            return own[address.lower()]
    return identities(account)[0] if own else ""


def reply_form(account, raw: bytes, folder: str, *, reply_all: bool) -> ComposeForm:
    message = reading.parse(raw)
    own = _own(account)
    sender = _pairs(_header(message, "Reply-To")) or _pairs(_header(message, "From"))
    to, cc, seen = [], [], set()

    def add(into, pairs):
        for name, address in pairs:
            if address.lower() not in seen and address.lower() not in own:
                seen.add(address.lower())
                into.append((name, address))
    add(to, sender)
    if reply_all:
        add(to, _pairs(_header(message, "To")))
        add(cc, _pairs(_header(message, "Cc")))
    if not to:      # a reply to one's own message: to whom it went
        to = _pairs(_header(message, "To")) or sender
    message_id = _header(message, "Message-ID")
    ids = re.findall(r"<[^<>\s]+@[^<>\s]+>", _header(message, "References"))
    if message_id and message_id not in ids:
        ids.append(message_id)
    who = _header(message, "From") or "someone"
    when = _header(message, "Date")
    quoted = "\n".join("> " + line if line else ">" for line in body_text(message).split("\n"))
    intro = f"On {when}, {who} wrote:" if when else f"{who} wrote:"
    return ComposeForm(from_addr=_chosen_identity(account, message), to=_join(to), cc=_join(cc),
                       subject=reply_subject(_header(message, "Subject")), text=f"\n\n{intro}\n{quoted}\n",
                       in_reply_to=message_id if re.fullmatch(r"<[^<>\s]+@[^<>\s]+>", message_id) else "",
                       references=" ".join(ids), back_folder=folder, show_cc=bool(cc))


def forward_subject(subject: str) -> str:
    return subject if re.match(r"^\s*(fwd?|fw)\s*:", subject, re.IGNORECASE) else "Fwd: " + subject


def forward_form(account, raw: bytes, folder: str, uid: int) -> ComposeForm:
    message = reading.parse(raw)
    lines = ["", "", "---------- Forwarded message ----------"]
    for name in ("From", "Date", "Subject", "To", "Cc"):
        value = _header(message, name)
        if value:
            lines.append(f"{name}: {value}")
    text = "\n".join(lines) + "\n\n" + body_text(message) + "\n"
    kept = attachments_in(raw, "fwd")
    return ComposeForm(from_addr=_chosen_identity(account, message), subject=forward_subject(_header(message, "Subject")),
                       text=text, forward_folder=folder, forward_uid=uid, back_folder=folder, kept=kept)


def draft_form(raw: bytes, uid: int) -> ComposeForm:
    fields = drafts.read(raw)
    kept = attachments_in(raw, "draft")
    return ComposeForm(from_addr=fields.from_addr, to=fields.to, cc=fields.cc, bcc=fields.bcc,
                       subject=fields.subject, text=fields.text, in_reply_to=fields.in_reply_to,
                       references=fields.references, draft=uid, kept=kept, show_cc=bool(fields.cc or fields.bcc))


# ------------------------------------------------------------------ the page

def _max_size(request) -> int:
    config = request.app.state.services.config
    return int(getattr(config, "max_message_size", 0) or 25 * 1024 * 1024)


def _page(request, account, accounts, folders, form: ComposeForm, *, error: str | None = None,
          status: int = 200):
    limit = _max_size(request)
    own = identities(account)
    if form.from_addr and form.from_addr.lower() not in {a.lower() for a in own}:
        form.from_addr = own[0] if own else ""
    return render(request, "compose.html", {
        "account": account, "accounts": accounts, "folders": folders, "folder": form.back_folder,
        "form": form, "identities": own, "error": error, "max_size": limit,
        "max_attachments": attachment_budget(limit, 0), "quote": quote,
        "title": _title(form)}, status=status)


def _title(form: ComposeForm) -> str:
    if form.forward_uid:
        return "Forward"
    if form.in_reply_to:
        return "Reply"
    return "New message"


@router.get("/mail/{account_id}/compose")
async def compose_page(request: Request, account_id: int,
                       to: Annotated[str, Query(max_length=MAX_FIELD)] = "",
                       reply: Uid | None = None, reply_all: Annotated[int, Query(ge=0, le=1)] = 0,
                       forward: Uid | None = None, draft: Uid | None = None, folder: Folder = "INBOX",
                       session: WebSession = Depends(page_session)):
    account = await mailbox.own_account(request, session.user, account_id)
    accounts = await mailbox.user_accounts(request, session.user)
    own = identities(account)
    form = ComposeForm(from_addr=own[0] if own else "", to=drafts.one_line(to), back_folder=folder)
    async with mailbox.imap(request, account) as conn:
        if draft is not None:
            try:
                where = await drafts.drafts_folder(conn, create=False)
                raw = await drafts.fetch(conn, where, draft, _max_size(request) * 2)
            except drafts.DraftNotFound:
                raise HTTPException(404, f"no draft {draft}") from None
            form = await asyncio.to_thread(draft_form, raw, draft)
        elif reply is not None:
            raw = await mailbox.message(conn, folder, reply)
            form = await asyncio.to_thread(reply_form, account, raw, folder, reply_all=bool(reply_all))
        elif forward is not None:
            raw = await mailbox.message(conn, folder, forward)
            form = await asyncio.to_thread(forward_form, account, raw, folder, forward)
        folders = await mailbox.folders(conn)
    return _page(request, account, accounts, folders, form)


@router.get("/mail/{account_id}/compose/sent")
async def sent_page(request: Request, account_id: int, folder: Folder | None = None, uid: Uid | None = None,
                    back: Folder = "INBOX", session: WebSession = Depends(page_session)):
    account = await mailbox.own_account(request, session.user, account_id)
    return _sent(request, account, folder, uid, back)


def _sent(request, account, folder, uid, back, *, refused=None, note=None):
    return render(request, "compose_sent.html", {
        "account": account, "sent_url": message_url(account.id, folder, uid) if folder and uid else None,
        "folder": folder, "folder_url": f"/mail/{account.id}?" + urlencode({"folder": folder}) if folder else None,
        "back_url": f"/mail/{account.id}?" + urlencode({"folder": back}), "back": back,
        "refused": refused or {}, "note": note})


# ------------------------------------------------------------------ the posted form

def _text(form, name: str, limit: int = MAX_FIELD) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > limit:
        raise Refused(f"the {name} field is too long")
    return value.replace("\x00", "")


def _int(form, name: str) -> int | None:
    value = _text(form, name, 20).strip()
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) < 2**32:
        raise Refused(f"{name}: not a message number")
    return int(value)


def posted_form(form) -> ComposeForm:
    if re.search(r"[\x00-\x1f]", _text(form, "forward_folder", 1000)):
        raise Refused("forward_folder: not a folder name")
    return ComposeForm(
        from_addr=_text(form, "from").strip(), to=_text(form, "to"), cc=_text(form, "cc"), bcc=_text(form, "bcc"),
        subject=_text(form, "subject"), text=_text(form, "text", 2_000_000).replace("\r\n", "\n"),
        in_reply_to=_text(form, "in_reply_to"), references=_text(form, "references"), draft=_int(form, "draft"),
        forward_folder=_text(form, "forward_folder", 1000), forward_uid=_int(form, "forward_uid"),
        back_folder=drafts.one_line(_text(form, "back_folder", 1000)) or "INBOX",
        show_cc=bool(_text(form, "cc").strip() or _text(form, "bcc").strip()))


def safe_filename(name: str) -> str:
    """An uploaded file's name without its path, controls or quotes, bounded."""
    name = re.split(r"[/\\]", name or "")[-1]
    name = re.sub(r"[\x00-\x1f\x7f\"]", "", name).strip().strip(".")
    return name[:200] or "attachment"


def safe_content_type(value: str | None) -> str:
    value = (value or "").split(";")[0].strip().lower()
    if re.fullmatch(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*", value) \
            and not value.startswith(("multipart/", "message/")):
        return value
    return "application/octet-stream"


def encoded_size(size: int) -> int:
    """An attachment's size once in the message (base64, 76-character lines), with its part headers."""
    encoded = -(-size // 3) * 4
    return encoded + 2 * -(-encoded // 76) + 400


def attachment_budget(max_message: int, text_size: int) -> int:
    """Bytes of attachments (raw) a message of max_message can carry beside its text."""
    room = max_message - 2 * text_size - 8192
    return max(0, room * 3 // 4 - room // 40)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


async def gather_attachments(conn, form, fields: ComposeForm, max_message: int) -> list[tuple[str, str, bytes]]:
    """The attachments the form names: kept parts of the draft or the forwarded
    message, then the uploaded files. Refused when the message would be too large."""
    wanted: dict[str, list[int]] = {"draft": [], "fwd": []}
    for ref in form.getlist("keep"):
        kind, _, number = str(ref).partition(":")
        if kind not in wanted or not number.isdigit() or len(number) > 7:
            raise Refused(f"not an attachment: {str(ref)[:40]!r}")
        wanted[kind].append(int(number))
    out: list[tuple[str, str, bytes]] = []
    sources = []
    if wanted["draft"]:
        if fields.draft is None:
            raise Refused("the draft's attachments are gone (no draft)")
        try:
            where = await drafts.drafts_folder(conn, create=False)
            sources.append((await drafts.fetch(conn, where, fields.draft, max_message * 2), wanted["draft"]))
        except drafts.DraftNotFound:
            raise HTTPException(404, f"no draft {fields.draft}") from None
    if wanted["fwd"]:
        if fields.forward_uid is None or not fields.forward_folder:
            raise Refused("the forwarded message's attachments are gone (no message)")
        sources.append((await mailbox.message(conn, fields.forward_folder, fields.forward_uid), wanted["fwd"]))
    for raw, numbers in sources:
        message = reading.parse(raw)
        for number in numbers:
            part = reading.part_at(message, number)
            if part is None:
                raise Refused(f"attachment {number} is no longer in that message")
            out.append((safe_filename(reading.part_name(part, number)), safe_content_type(part.get_content_type()),
                        part.get_payload(decode=True) or b""))
    budget = attachment_budget(max_message, len(fields.text.encode("utf-8", "replace")))
    total = sum(len(data) for _, _, data in out)
    for upload in form.getlist("attachments"):
        if not isinstance(upload, UploadFile) or not upload.filename:
            continue
        size = upload.size if upload.size is not None else 0
        if total + size > budget:
            raise Refused(f"the attachments are too large: {_mib(total + size)} in all, and this server takes "
                          f"messages of up to {_mib(max_message)} (about {_mib(budget)} of attachments)")
        await upload.seek(0)    # (read before, when the form comes back after an error)
        data = await upload.read(budget - total + 1)
        total += len(data)
        if total > budget:
            raise Refused(f"the attachments are too large: this server takes messages of up to {_mib(max_message)} "
                          f"(about {_mib(budget)} of attachments)")
        out.append((safe_filename(upload.filename), safe_content_type(upload.content_type), data))
    if total > budget:
        raise Refused(f"the attachments are too large: {_mib(total)} in all, and this server takes messages "
                      f"of up to {_mib(max_message)} (about {_mib(budget)} of attachments)")
    return out


def _addresses(what: str, value: str) -> list[str]:
    """'Ann <ann@x>, bob@y' -> ['Ann <ann@x>', 'bob@y']; Refused saying what is wrong."""
    if "\r" in value or "\n" in value:
        raise Refused(f"{what} may not contain a line break")
    value = re.sub(r",(\s*,)+", ",", value).strip().strip(",").strip()     # (empty entries: "a@x, , b@y")
    if not value:
        return []
    out = []
    for name, address in getaddresses([value]):
        if not address and not name:       # (what the parser gives for what it can't read)
            raise Refused(f"{what}: not an email address in {value[:80]!r}")
        local, at, domain = address.rpartition("@")
        if not at or not local or "." not in domain and domain.lower() != "localhost" \
                or any(c.isspace() or c in "<>,;\"" for c in address):
            raise Refused(f"{what}: not an email address: {(address or name)[:80]!r}")
        out.append(formataddr((name, address)) if name else address)
    if len(out) > 500:
        raise Refused(f"{what}: too many addresses (500 at most)")
    return out


def _send_body(account, fields: ComposeForm) -> SimpleNamespace:
    own = {a.lower(): a for a in identities(account)}
    if fields.from_addr.lower() not in own:
        raise Refused(f"{fields.from_addr[:80]!r} is not one of this account's addresses: send as "
                      + (", ".join(own.values()) or "(none: the account has no address)"))
    if "\r" in fields.subject or "\n" in fields.subject:
        raise Refused("the subject may not contain a line break")
    to, cc, bcc = (_addresses("To", fields.to), _addresses("Cc", fields.cc), _addresses("Bcc", fields.bcc))
    if not (to or cc or bcc):
        raise Refused("add at least one recipient (To, Cc or Bcc)")
    in_reply_to = fields.in_reply_to.strip()
    if in_reply_to and not re.fullmatch(r"<[^<>\s]+@[^<>\s]+>", in_reply_to):
        in_reply_to = ""
    references = re.findall(r"<[^<>\s]+@[^<>\s]+>", fields.references)[-100:]
    return SimpleNamespace(from_address=own[fields.from_addr.lower()], to=to, cc=cc, bcc=bcc,
                           subject=fields.subject.strip(), text=fields.text, html=None,
                           in_reply_to=in_reply_to or None, references=references)


def _draft_fields(account, fields: ComposeForm, attachments) -> drafts.DraftFields:
    own = {a.lower(): a for a in identities(account)}
    from_addr = own.get(fields.from_addr.lower()) or next(iter(own.values()), "")
    return drafts.DraftFields(from_addr=from_addr, to=fields.to, cc=fields.cc, bcc=fields.bcc,
                              subject=fields.subject, text=fields.text, in_reply_to=fields.in_reply_to,
                              references=fields.references, attachments=attachments)


def _domain(account) -> str:
    own = identities(account)
    domain = own[0].rpartition("@")[2] if own else "localhost"
    return domain if re.fullmatch(r"[A-Za-z0-9.\-]+", domain) else "localhost"


async def _store_draft(conn, account, fields: ComposeForm, attachments) -> tuple[int | None, list[Kept]]:
    raw, message_id = await asyncio.to_thread(drafts.build, _draft_fields(account, fields, attachments),
                                              domain=_domain(account))
    try:
        _, uid = await drafts.save(conn, raw, message_id, replaces=fields.draft)
    except drafts.DraftNotFound:
        raise HTTPException(404, f"no draft {fields.draft}") from None
    return uid, await asyncio.to_thread(attachments_in, raw, "draft")


@router.post("/mail/{account_id}/compose/draft")
async def save_draft(request: Request, account_id: int, session: WebSession = Depends(page_session)):
    """Autosave (compose.js): JSON {draft: uid, attachments: [...]}, or {error}."""
    try:
        await checked_form(request)
        form = await request.form()
        account = await mailbox.own_account(request, session.user, account_id)
        fields = posted_form(form)
        async with mailbox.imap(request, account) as conn:
            attachments = await gather_attachments(conn, form, fields, _max_size(request))
            uid, kept = await _store_draft(conn, account, fields, attachments)
    except Refused as e:
        return _json({"error": str(e)}, 400)
    except HTTPException as e:
        return _json({"error": str(e.detail)}, e.status_code)
    return _json({"draft": uid, "attachments": [
        {"ref": k.ref, "name": k.name, "content_type": k.content_type, "size": k.size} for k in kept]})


def _json(value: dict, status: int = 200) -> JSONResponse:
    response = JSONResponse(value, status_code=status)
    secure_headers(response)
    return response


@router.post("/mail/{account_id}/compose/send")
async def send(request: Request, account_id: int, session: WebSession = Depends(page_session)):
    await checked_form(request)
    form = await request.form()
    account = await mailbox.own_account(request, session.user, account_id)
    accounts = await mailbox.user_accounts(request, session.user)
    sender = request.app.state.services.sender
    try:
        fields = posted_form(form)
    except Refused as e:
        raise HTTPException(400, str(e)) from None
    if sender is None:
        return await _again(request, account, accounts, fields, form, "sending is not available on this server", 503)
    if getattr(account, "state", "active") == "disabled":
        return await _again(request, account, accounts, fields, form, f"account {account.id} is disabled", 409)
    try:
        body = _send_body(account, fields)
        async with mailbox.imap(request, account) as conn:
            attachments = await gather_attachments(conn, form, fields, _max_size(request))
    except Refused as e:
        return await _again(request, account, accounts, fields, form, str(e), 400)
    try:
        result = await call(sender, account, body, attachments)
    except (ConnectionError, OSError, TimeoutError) as e:
        return await _again(request, account, accounts, fields, form, f"The message was not sent: {e}", 502,
                            attachments=attachments)
    except ValueError as e:     # a value compose refused (its text is safe to show)
        return await _again(request, account, accounts, fields, form, f"The message can't be made: {e}", 400,
                            attachments=attachments)
    if fields.draft is not None:
        try:
            async with mailbox.imap(request, account) as conn:
                await drafts.remove(conn, await drafts.drafts_folder(conn, create=False), fields.draft)
        except (drafts.DraftNotFound, HTTPException):
            pass    # sent all the same; the draft was gone already, or stays for the user to delete
    appended = result.get("appended") or {}
    query = {"back": fields.back_folder}
    if appended.get("folder"):
        query["folder"] = appended["folder"]
        if appended.get("uid"):
            query["uid"] = appended["uid"]
    if result.get("refused") or result.get("sent_note"):
        # What only this answer knows (recipients refused while others took it, no copy in Sent): shown now.
        return _sent(request, account, query.get("folder"), query.get("uid"), fields.back_folder,
                     refused=result.get("refused") or {}, note=result.get("sent_note"))
    return RedirectResponse(f"/mail/{account.id}/compose/sent?" + urlencode(query), status_code=303)


async def _again(request, account, accounts, fields: ComposeForm, form, error: str, status: int, *,
                 attachments=None):
    """The form again with what went wrong, nothing the user wrote lost: when
    there are attachments, the whole message is kept as a draft first (files
    can't be handed back to the browser's file input)."""
    kept = [Kept(str(ref), str(ref), "", 0) for ref in form.getlist("keep")]
    fields.kept = kept
    folders = []
    try:
        async with mailbox.imap(request, account) as conn:
            if attachments is None and any(isinstance(u, UploadFile) and u.filename
                                           for u in form.getlist("attachments")):
                try:
                    attachments = await gather_attachments(conn, form, fields, _max_size(request))
                except (Refused, HTTPException):
                    attachments = None      # (too large, most likely: those files are not kept)
            if attachments:
                fields.draft, fields.kept = await _store_draft(conn, account, fields, attachments)
            elif kept:
                fields.kept = await _describe_kept(conn, fields, kept)
            folders = await mailbox.folders(conn)
    except HTTPException:
        pass        # the server is out of reach: the form comes back without the folder list
    return _page(request, account, accounts, folders, fields, error=error, status=status)


async def _describe_kept(conn, fields: ComposeForm, kept: list[Kept]) -> list[Kept]:
    """The kept attachments' names and sizes, read from their messages again."""
    out = []
    for kind, uid, folder in (("draft", fields.draft, None), ("fwd", fields.forward_uid, fields.forward_folder)):
        refs = {k.ref for k in kept if k.ref.startswith(kind + ":")}
        if not refs or uid is None:
            continue
        try:
            if kind == "draft":
                raw = await drafts.fetch(conn, await drafts.drafts_folder(conn, create=False), uid, 10**9)
            else:
                raw = await mailbox.message(conn, folder, uid)
        except (drafts.DraftNotFound, HTTPException):
            continue
        out += [k for k in await asyncio.to_thread(attachments_in, raw, kind) if k.ref in refs]
    return out
