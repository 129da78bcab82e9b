"""Drafts kept where every mail client sees them: in the account's Drafts
folder on its IMAP server. Saving APPENDs the new version (\\Draft \\Seen) and
only then removes the one it replaces, so a failure in between leaves two
drafts, never none. Only messages flagged \\Draft in the Drafts folder are
ever read or removed through here: a UID of anything else is "not found".

A draft may be half-written: its address fields may not parse yet, it may
have no recipient at all. So it is built here, not by send/compose (which
refuses such a message); every header value is still made single-line first.
"""
from __future__ import annotations

import email
import email.policy
import re
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate

DRAFTS_NAMES = ("drafts", "draft", "inbox.drafts", "[gmail]/drafts")


class DraftNotFound(LookupError):
    """No draft with that UID in the Drafts folder (or not a draft)."""


@dataclass
class DraftFields:
    from_addr: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    text: str = ""
    in_reply_to: str = ""
    references: str = ""
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)    # (name, content type, data)


def one_line(value: str) -> str:
    """A header value with its line breaks and other controls made spaces: a
    draft keeps what was typed without letting it add a header."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", " ", value or "").strip()


def _set_header(msg: EmailMessage, name: str, value: str) -> None:
    value = one_line(value)
    if not value:
        return
    try:
        msg[name] = value
        msg[name].fold(policy=email.policy.SMTP)    # (an address field that doesn't parse fails here)
    except Exception:
        del msg[name]
        # Half-typed addresses: kept as plain text (RFC 2047 words where not ASCII).
        from email.header import Header
        msg[name] = Header(value, "utf-8").encode() if not value.isascii() else value


def build(fields: DraftFields, *, domain: str) -> tuple[bytes, str]:
    """(the draft's bytes, its Message-ID)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Date"] = formatdate(localtime=True)
    for name, value in (("From", fields.from_addr), ("To", fields.to), ("Cc", fields.cc), ("Bcc", fields.bcc),
                        ("Subject", fields.subject)):
        _set_header(msg, name, value)
    message_id = f"<draft.{uuid.uuid4().hex}@{domain}>"
    msg["Message-ID"] = message_id
    for name, value in (("In-Reply-To", fields.in_reply_to), ("References", fields.references)):
        ids = re.findall(r"<[^<>\s]+@[^<>\s]+>", value or "")
        if ids:
            msg[name] = " ".join(ids)
    msg["MIME-Version"] = "1.0"
    text = fields.text or ""
    ascii_short = text.isascii() and all(len(line) <= 76 for line in text.splitlines())
    msg.set_content(text, cte="7bit" if ascii_short else "quoted-printable")
    for name, ctype, data in fields.attachments:
        maintype, _, subtype = (ctype or "application/octet-stream").partition("/")
        if maintype in ("multipart", "message") or not subtype:
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(bytes(data), maintype=maintype, subtype=subtype, filename=name)
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]
    return msg.as_bytes(policy=email.policy.SMTP), message_id


def read(raw: bytes) -> DraftFields:
    """The fields of a stored draft (attachments left out: the compose page
    lists those by part number, see reading.read)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)

    def header(name: str) -> str:
        return header_text(msg, name)
    text = ""
    try:
        body = msg.get_body(preferencelist=("plain",))
        if body is not None:
            text = body.get_content()
    except Exception:
        text = ""
    text = text.replace("\r\n", "\n")
    if text.endswith("\n"):    # (the line end the email package adds to a text part)
        text = text[:-1]
    return DraftFields(from_addr=header("From"), to=header("To"), cc=header("Cc"), bcc=header("Bcc"),
                       subject=header("Subject"), text=text,
                       in_reply_to=header("In-Reply-To"), references=header("References"))


def header_text(msg, name: str) -> str:
    """A header's decoded value on one line; one the parser chokes on (a
    half-typed address) is decoded word by word instead of raising."""
    try:
        return one_line(str(msg.get(name) or ""))
    except Exception:
        pass
    from email.header import decode_header, make_header
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), "")
    try:
        return one_line(str(make_header(decode_header(str(raw)))))
    except Exception:
        return one_line(str(raw))


# ------------------------------------------------------------------ the Drafts folder over IMAP

async def drafts_folder(conn, *, create: bool = True) -> str:
    """The folder with the \\Drafts special use, else one named like Drafts;
    else "Drafts", created (create=False: LookupError instead)."""
    folders = await conn.list_folders()
    for folder in folders:
        if folder.special_use == "\\Drafts" and folder.selectable:
            return folder.name
    by_name = {f.name.lower(): f.name for f in folders if f.selectable}
    for name in DRAFTS_NAMES:
        if name in by_name:
            return by_name[name]
    if not create:
        raise DraftNotFound("this account has no Drafts folder")
    await _command(conn, [b"CREATE ", conn._mailbox("Drafts")])
    return "Drafts"


async def _command(conn, parts: list):
    # (the client's generic command path: drafts need CREATE, UID STORE and
    # UID EXPUNGE, which the connection has no named methods for)
    return await conn._run(parts)


async def _flags_of(conn, folder: str, uid: int) -> set[str] | None:
    await conn.select(folder, readonly=False)
    flags = None
    async for item in conn.uid_fetch(str(uid), "UID FLAGS"):
        if item.uid == uid:
            flags = {f.lower() for f in item.attrs.get("FLAGS", ())}
    return flags


async def check_draft(conn, folder: str, uid: int) -> None:
    """DraftNotFound unless that UID is a \\Draft in folder (selected read-write after)."""
    flags = await _flags_of(conn, folder, uid)
    if flags is None or "\\draft" not in flags or "\\deleted" in flags:
        raise DraftNotFound(f"no draft {uid}")


async def fetch(conn, folder: str, uid: int, max_size: int) -> bytes:
    """The draft's bytes (DraftNotFound if it is none)."""
    await check_draft(conn, folder, uid)
    raw = None
    async for item in conn.uid_fetch(str(uid), "UID RFC822.SIZE"):
        if item.uid == uid and (item.attrs.get("RFC822.SIZE") or 0) > max_size:
            raise DraftNotFound(f"draft {uid} is too large to open here")
    async for item in conn.uid_fetch(str(uid), "UID BODY.PEEK[]"):
        if item.uid == uid:
            raw = item.attrs.get("BODY[]")
    if raw is None:
        raise DraftNotFound(f"no draft {uid}")
    return bytes(raw)


async def remove(conn, folder: str, uid: int) -> None:
    """Flag the draft \\Deleted and expunge that UID only (UIDPLUS); without
    UIDPLUS it stays flagged: a plain EXPUNGE would take others' deletions too."""
    await check_draft(conn, folder, uid)
    await _command(conn, [b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid])
    if "UIDPLUS" in conn.capabilities or "IMAP4REV2" in conn.capabilities:
        await _command(conn, [b"UID EXPUNGE %d" % uid])


async def save(conn, raw: bytes, message_id: str, *, replaces: int | None = None) -> tuple[str, int | None]:
    """APPEND the draft, then remove the one it replaces. That UID must be a
    draft (DraftNotFound before anything is stored otherwise), or no longer
    there at all. (folder, new UID)."""
    folder = await drafts_folder(conn)
    if replaces is not None:        # refuse before storing anything when the old UID is no draft
        flags = await _flags_of(conn, folder, replaces)
        if flags is None:
            replaces = None     # gone already (sent from another tab, deleted in another client): a new draft
        elif "\\draft" not in flags:
            raise DraftNotFound(f"no draft {replaces}")
    appended = await conn.append(folder, raw, flags=("\\Draft", "\\Seen"))
    uid = appended[1] if appended else None
    if uid is None:     # no UIDPLUS: found by its own Message-ID
        await conn.select(folder, readonly=True)
        found = await conn.uid_search(f'HEADER Message-ID "{message_id.strip("<>")}"')
        uid = max(found) if found else None
    if replaces is not None and replaces != uid:
        try:
            await remove(conn, folder, replaces)
        except DraftNotFound:
            pass        # removed meanwhile (another tab, another client): nothing left to do
    return folder, uid
