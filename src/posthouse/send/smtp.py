"""Submit a message over SMTP submission (RFC 6409) with aiosmtplib:
implicit TLS (465) or STARTTLS (587), or the clear (loopback only, our own
server); AUTH PLAIN/LOGIN with a password, PLAIN with an authorization
identity (a service acting as the user), or XOAUTH2 with an OAuth2 access
token. Errors say which step failed."""
from __future__ import annotations

import base64
import hashlib
import ssl
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

import aiosmtplib


class SendError(Exception):
    """Submission failed; `step` says where: 'connect' | 'tls' | 'auth' | 'mail'
    | 'rcpt' | 'data' | 'config' (and, from send(), 'imap' never: see SendResult)."""

    def __init__(self, step: str, text: str, code: int | None = None):
        super().__init__(f"{step}: {text}")
        self.step = step
        self.text = text
        self.code = code


@dataclass
class SmtpEndpoint:
    host: str
    port: int
    tls: str = "starttls"                   # 'implicit' | 'starttls' | 'none' | 'opportunistic'
    verify: bool = True
    pin_sha256: str | None = None           # hex SHA-256 of the server's certificate (DER), trusted instead of CAs
    ca_file: str | None = None
    timeout: float = 60.0


@dataclass
class Credentials:
    login: str
    password: str | None = None
    authzid: str | None = None              # PLAIN's authorization identity (act as this user)
    access_token: Callable[[], Awaitable[str]] | None = None     # XOAUTH2


@dataclass
class Submitted:
    response: str                                      # the server's answer to the data
    refused: dict[str, str] = field(default_factory=dict)   # recipients refused while others were accepted


def _tls_context(endpoint: SmtpEndpoint) -> ssl.SSLContext:
    if endpoint.pin_sha256 or not endpoint.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE       # the pin (checked after the handshake) or nothing
        return context
    return ssl.create_default_context(cafile=endpoint.ca_file)


def _check_pin(client: aiosmtplib.SMTP, endpoint: SmtpEndpoint) -> None:
    if not endpoint.pin_sha256:
        return
    ssl_object = client.get_transport_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    seen = hashlib.sha256(der).hexdigest() if der else None
    if seen != endpoint.pin_sha256.replace(":", "").lower():
        raise SendError("tls", f"the certificate of {endpoint.host} (SHA-256 {seen}) is not the pinned one")


async def _authenticate(client: aiosmtplib.SMTP, credentials: Credentials) -> None:
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    methods = set(client.supported_auth_methods)
    if credentials.access_token is not None:
        token = await credentials.access_token()
        await client.auth_xoauth2(credentials.login, token)
    elif credentials.authzid:
        if "plain" not in methods:
            raise SendError("auth", "the server offers no AUTH PLAIN, needed to act as a user")
        raw = b"\0".join(s.encode() for s in (credentials.authzid, credentials.login, credentials.password or ""))
        response = await client.execute_command(b"AUTH", b"PLAIN", base64.b64encode(raw))
        if response.code != 235:
            raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)
    else:
        # PLAIN or LOGIN only (never CRAM-MD5: the password is only sent over TLS or loopback anyway)
        if "plain" in methods:
            await client.auth_plain(credentials.login, credentials.password or "")
        elif "login" in methods:
            await client.auth_login(credentials.login, credentials.password or "")
        else:
            raise SendError("auth", f"the server offers no AUTH PLAIN or LOGIN ({', '.join(sorted(methods)) or 'no AUTH'})")


async def submit(endpoint: SmtpEndpoint, credentials: Credentials | None, mail_from: str,
                 recipients: Sequence[str], message: bytes) -> Submitted:
    """Submit message (sent as is) to recipients; SendError if the server
    refuses it or every recipient."""
    if not recipients:
        raise SendError("config", "no recipients")
    if endpoint.tls not in ("implicit", "starttls", "none", "opportunistic"):
        raise SendError("config", f"unknown SMTP TLS mode {endpoint.tls!r}")
    implicit = endpoint.tls == "implicit"
    start_tls = {"starttls": True, "none": False, "opportunistic": None}.get(endpoint.tls, False)
    client = aiosmtplib.SMTP(hostname=endpoint.host, port=endpoint.port, use_tls=implicit, start_tls=start_tls,
                             tls_context=_tls_context(endpoint) if endpoint.tls != "none" else None,
                             timeout=endpoint.timeout)
    step = "connect"
    try:
        try:
            await client.connect()
        except ssl.SSLError as e:
            raise SendError("tls", f"TLS with {endpoint.host}:{endpoint.port} failed: {e}") from None
        if client.get_transport_info("ssl_object") is not None:
            _check_pin(client, endpoint)
        if credentials is not None:
            step = "auth"
            await _authenticate(client, credentials)
        step = "mail"
        errors, response = await client.sendmail(mail_from, list(recipients), message)
        return Submitted(response=response, refused={k: f"{v.code} {v.message}" for k, v in errors.items()})
    except SendError:
        raise
    except aiosmtplib.SMTPAuthenticationError as e:
        raise SendError("auth", f"{e.code} {e.message}", e.code) from None
    except aiosmtplib.SMTPSenderRefused as e:
        raise SendError("mail", f"sender <{e.sender}> refused: {e.code} {e.message}", e.code) from None
    except aiosmtplib.SMTPRecipientsRefused as e:
        text = "; ".join(f"<{r.recipient}>: {r.code} {r.message}" for r in e.recipients)
        raise SendError("rcpt", f"every recipient was refused: {text}") from None
    except aiosmtplib.SMTPDataError as e:
        raise SendError("data", f"the message was refused: {e.code} {e.message}", e.code) from None
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError, aiosmtplib.SMTPTimeoutError,
            aiosmtplib.SMTPServerDisconnected, OSError) as e:
        if isinstance(e, ssl.SSLError) or isinstance(e.__cause__, ssl.SSLError):
            step = "tls"      # (aiosmtplib wraps a failed implicit-TLS handshake in a connect error)
        raise SendError(step if step != "mail" else "data",
                        f"{endpoint.host}:{endpoint.port}: {e}") from None
    except aiosmtplib.SMTPResponseException as e:
        raise SendError(step, f"{e.code} {e.message}", e.code) from None
    except aiosmtplib.SMTPException as e:       # e.g. STARTTLS required but not offered
        raise SendError("tls" if "TLS" in str(e) else step, str(e)) from None
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except Exception:
                client.close()
