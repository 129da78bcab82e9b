"""Send a composed message from an account: submit it over the account's SMTP
(ours for local accounts), then APPEND the exact bytes sent to the account's
Sent folder, marked \\Seen, so every other client shows it, unless the
provider files a copy itself (Gmail does; so does our own server under
`submission_save_sent`)."""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Awaitable, Callable, Sequence

from .compose import Composed
from .smtp import Credentials, SendError, SmtpEndpoint, submit

log = logging.getLogger("posthouse.send")

# Providers that put submitted mail into Sent themselves: a second copy would be a duplicate.
FILES_SENT_ITSELF = ("gmail.com", "googlemail.com")
SENT_NAMES = ("sent", "sent items", "sent messages", "sent mail", "[gmail]/sent mail", "inbox.sent")


@dataclass
class SendResult:
    message_id: str | None
    appended: tuple[str, int | None, int | None] | None    # (folder, uidvalidity, uid); None if not filed by us
    refused: dict[str, str] = field(default_factory=dict)  # recipients refused while others were accepted
    sent_note: str | None = None       # why no copy was filed, or what went wrong filing it (the mail WAS sent)


# -- the message's own headers ------------------------------------------------------------
def _split(message: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = message.partition(sep)
        if found:
            return head + sep[: len(sep) // 2], sep[len(sep) // 2:] + body
    return message, b""


def strip_bcc(message: bytes) -> tuple[bytes, list[str]]:
    """The message without its Bcc field(s) (continuation lines included), and
    the addresses they named: those go in the envelope, never in the bytes."""
    head, rest = _split(message)
    lines = head.splitlines(keepends=True)
    kept, bcc_values, in_bcc = [], [], False
    for line in lines:
        if line[:1] in (b" ", b"\t") and in_bcc:
            bcc_values[-1] += line
            continue
        in_bcc = line[:4].lower() == b"bcc:"
        if in_bcc:
            bcc_values.append(line[4:])
        else:
            kept.append(line)
    if not bcc_values:
        return message, []
    addresses = [a for _, a in getaddresses([v.decode("utf-8", "replace") for v in bcc_values]) if a]
    return b"".join(kept) + rest, addresses


def _headers(message: bytes):
    return BytesHeaderParser(policy=policy.compat32).parsebytes(message)


def envelope(message: bytes) -> tuple[str, list[str]]:
    """(sender, recipients) from the message's From, To, Cc and Bcc."""
    headers = _headers(message)
    senders = [a for _, a in getaddresses(headers.get_all("Sender", []) or headers.get_all("From", [])) if a]
    if not senders:
        raise SendError("config", "the message has no From address")
    recipients: list[str] = []
    for _, address in getaddresses(headers.get_all("To", []) + headers.get_all("Cc", []) + headers.get_all("Bcc", [])):
        if address and address.lower() not in (r.lower() for r in recipients):
            recipients.append(address)
    return senders[0], recipients


# -- where and how to submit ------------------------------------------------------------
def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def submission_route(store, account, access_token: Callable[[], Awaitable[str]] | None = None
                     ) -> tuple[SmtpEndpoint, Credentials]:
    """The SMTP endpoint and credentials of an account."""
    config = getattr(store, "config", None)
    if account.kind == "local" and not account.smtp_host:
        if config is None or not (config.submission_port or config.submission_tls_port):
            raise SendError("config", "this server has no submission port configured to send local accounts' mail")
        host = config.submission_host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        if config.submission_port:
            port, tls = config.submission_port, "opportunistic"
        else:
            port, tls = config.submission_tls_port, "implicit"
        # Our own server: over loopback, the certificate needs no check; elsewhere it
        # is checked against our own certificate file (self-signed by default).
        endpoint = SmtpEndpoint(host=host, port=port, tls=tls, verify=not _is_loopback(host),
                                ca_file=config.tls_cert or config.path("tls/cert.pem"))
    else:
        if not account.smtp_host:
            raise SendError("config", f"account {account.id} has no SMTP server to send with (add one with --smtp)")
        tls = account.smtp_tls or ("implicit" if account.smtp_port == 465 else "starttls")
        port = account.smtp_port or (465 if tls == "implicit" else 587)
        same_host = account.smtp_host.lower() == (account.imap_host or "").lower()
        endpoint = SmtpEndpoint(host=account.smtp_host, port=port, tls=tls,
                                pin_sha256=account.tls_pin if same_host else None)
    return endpoint, _credentials(store, account, access_token)


def _credentials(store, account, access_token) -> Credentials:
    if account.auth == "service":
        # Our own server, logged in to as the service identity acting as the owner
        # (SASL PLAIN with an authorization identity: auth/service_identity.py).
        from ..auth.service_identity import SERVICE_NAME, ServiceIdentity
        try:
            secret = ServiceIdentity(store.data_dir).secret()
        except OSError as e:
            raise SendError("config", f"can't read the service identity's secret: {e}") from None
        return Credentials(login=SERVICE_NAME, password=secret, authzid=account.login)
    if account.auth == "oauth2":
        return Credentials(login=account.login, access_token=access_token or _token_source(store, account))
    secret = store.secret(account.id) or {}
    if not secret.get("password"):
        raise SendError("config", f"account {account.id} has no password stored")
    return Credentials(login=account.login, password=secret["password"])


def _token_source(store, account) -> Callable[[], Awaitable[str]]:
    """The account's OAuth2 access token, cached or refreshed by the accounts part."""
    async def token() -> str:
        from ..accounts.oauth import OAuthError, access_token
        try:
            value, _settings = await access_token(store, account)
        except OAuthError as e:
            raise SendError("auth", f"no OAuth2 access token: {e}") from None
        return value
    return token


# -- the Sent folder ---------------------------------------------------------------------
def files_sent_itself(store, account) -> str | None:
    """Why no copy should be filed (the provider does it), or None."""
    host = (account.imap_host or "").lower().rstrip(".")
    if any(host == d or host.endswith("." + d) for d in FILES_SENT_ITSELF):
        return f"{host} files sent mail itself"
    config = getattr(store, "config", None)
    if account.kind == "local" and getattr(config, "submission_save_sent", False):
        return "this server files sent mail itself (submission_save_sent)"
    return None


async def find_sent_folder(conn) -> str:
    """The folder with the \\Sent special use, else one named like Sent, else "Sent"."""
    folders = await conn.list_folders()
    for folder in folders:
        uses = {getattr(folder, "special_use", None)} | {a.lower() for a in getattr(folder, "attributes", ())}
        if "\\Sent" in uses or "\\sent" in uses:
            return folder.name
    by_name = {f.name.lower(): f.name for f in folders}
    for name in SENT_NAMES:
        if name in by_name:
            return by_name[name]
    return "Sent"


async def file_in_sent(conn, message: bytes, sent_folder: str | None = None) -> tuple[str, int | None, int | None]:
    folder = sent_folder or await find_sent_folder(conn)
    uid = await conn.append(folder, message, flags=("\\Seen",))
    return (folder, uid[0], uid[1]) if uid else (folder, None, None)


async def _open_session(store, account):
    from ..accounts.session import open_session
    return await open_session(store, account)


# -- the whole of it ---------------------------------------------------------------------
async def send(account_store, account, message_bytes: bytes, *, sent_folder: str | None = None,
               recipients: Sequence[str] | None = None, mail_from: str | None = None,
               access_token: Callable[[], Awaitable[str]] | None = None,
               open_imap: Callable | None = None) -> SendResult:
    """Submit the message from the account, then file the exact bytes sent in
    its Sent folder. SendError if it wasn't sent; once the server has accepted
    it, a failure to file the copy is only noted in the result (`sent_note`):
    the mail is gone, sending again would duplicate it.

    recipients and mail_from default to the message's own headers; a Bcc
    field is taken out of the bytes and into the envelope. A Composed (from
    compose()) brings its own envelope, Bcc included."""
    if isinstance(message_bytes, Composed):
        recipients = message_bytes.recipients if recipients is None else recipients
        mail_from = mail_from or message_bytes.mail_from
        message_bytes = message_bytes.message
    message, bcc = strip_bcc(bytes(message_bytes))
    header_from, header_rcpts = envelope(message)
    recipients = list(recipients) if recipients is not None else header_rcpts + [
        b for b in bcc if b.lower() not in {r.lower() for r in header_rcpts}]
    if not recipients:
        raise SendError("config", "the message has no recipients")
    endpoint, credentials = submission_route(account_store, account, access_token)
    submitted = await submit(endpoint, credentials, mail_from or header_from, recipients, message)
    message_id = _headers(message).get("Message-ID")
    result = SendResult(message_id=message_id.strip() if message_id else None, appended=None,
                        refused=submitted.refused)

    reason = files_sent_itself(account_store, account)
    if reason:
        result.sent_note = reason
        return result
    conn = None
    try:
        conn = await (open_imap or _open_session)(account_store, account)
        result.appended = await file_in_sent(conn, message, sent_folder)
    except Exception as e:      # sent already: report, don't raise (a retry would send it twice)
        log.warning("account %s: sent %s but could not file it in Sent: %s", account.id, result.message_id, e)
        result.sent_note = f"sent, but no copy filed in Sent: {e}"
    finally:
        if conn is not None:
            try:
                await conn.logout()
            except Exception:
                try:
                    conn.close()
                except Exception:
                    pass
    return result
