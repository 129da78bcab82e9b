"""The connection test run before an account is saved: each step in turn
(DNS, TCP, TLS and the certificate, greeting, login, capabilities, then the
SMTP side), stopping at the first that fails, and saying exactly what failed
in the server's own words where it has any."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import ssl
from dataclasses import dataclass, field

from ..imap_client import ImapConnection, ImapError, LoginFailed
from ..imap_client.transport import normalise_pin
from .oauth import OAuthError
from .secrets import SecretsError
from .session import login, open_session  # noqa: F401  (open_session: the contract names it here too)

REQUIRED = ("IMAP4REV1", "IMAP4REV2")       # either
REPORTED = ("CONDSTORE", "QRESYNC", "NOTIFY", "IDLE", "OBJECTID")


@dataclass
class Problem:
    step: str       # dns | tcp | tls | greeting | login | capability | smtp
    text: str

    def __str__(self) -> str:
        return f"{self.step}: {self.text}"


@dataclass
class ProbeResult:
    problems: list[Problem] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    cert_sha256: str | None = None          # of the IMAP server's certificate, when TLS was used
    capabilities: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, step: str, text: str) -> "ProbeResult":
        self.problems.append(Problem(step, text))
        return self


async def probe(store, account, secret: dict | None = None, *, timeout: float = 15.0) -> ProbeResult:
    """Test account (saved or not; `secret` for one not saved yet)."""
    result = ProbeResult()
    endpoint = store.endpoint(account)
    endpoint.timeout = timeout
    if not await _reach(account.imap_host, account.imap_port, timeout, result, "imap"):
        return result
    try:
        conn = await ImapConnection.open(endpoint)
    except ImapError as e:
        result.fail(e.step, e.message)
        if e.step == "tls" and "certificate" in e.message:
            await _offer_pin(endpoint, result)
        return result
    try:
        result.cert_sha256 = conn.peer_cert_sha256
        if conn.peer_cert_sha256:
            how = "pinned certificate" if endpoint.pin_sha256 else "certificate verified"
            result.info.append(f"tls: {endpoint.tls}, {how}, SHA-256 {conn.peer_cert_sha256}")
        else:
            result.info.append("tls: none (plain text)")
        try:
            await login(conn, store, account, secret)
        except LoginFailed as e:
            code = f"[{e.code}] " if e.code else ""
            return result.fail("login", f"{account.login} refused: the server said: NO {code}{e.text}")
        except (OAuthError, SecretsError) as e:
            return result.fail("login", str(e))
        except ImapError as e:
            return result.fail(e.step, e.message)
        result.info.append(f"login: {account.login} ok ({account.auth})")
        caps = conn.capabilities
        result.capabilities = caps
        if not any(c in caps for c in REQUIRED):
            result.fail("capability", "the server offers neither IMAP4rev1 nor IMAP4rev2 (it offers: "
                        + (" ".join(sorted(caps)) or "nothing") + ")")
        result.info.append("extensions: " + ", ".join(f"{c} {'yes' if c in caps else 'no'}" for c in REPORTED))
        await conn.logout()
    finally:
        conn.close()
    if result.ok and account.smtp_host:
        await probe_smtp(store, account, secret, result, timeout)
    return result


async def _reach(host: str, port: int, timeout: float, result: ProbeResult, side: str) -> bool:
    """DNS, then a TCP connection (closed again): their own steps, so a typo
    in the host name and a firewall don't look alike."""
    prefix = "" if side == "imap" else f"{side} "
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except socket.gaierror as e:
        result.fail(prefix + "dns", f"can't resolve {host}: {e.strerror or e}")
        return False
    except (UnicodeError, ValueError) as e:
        result.fail(prefix + "dns", f"{host!r} is not a valid host name: {e}")
        return False
    except asyncio.TimeoutError:
        result.fail(prefix + "dns", f"no answer resolving {host} in {timeout:g} s")
        return False
    errors = []
    for family, _type, _proto, _name, address in infos:
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(address[0], address[1], family=family), timeout)
        except asyncio.TimeoutError:
            errors.append(f"{address[0]}: no answer in {timeout:g} s")
            continue
        except OSError as e:        # (asyncio's "Connect call failed" hides the reason in errno)
            errors.append(f"{address[0]}: {os.strerror(e.errno) if e.errno else e}")
            continue
        writer.close()
        return True
    result.fail(prefix + "tcp", f"can't connect to {host} port {port}: " + "; ".join(errors))
    return False


async def _offer_pin(endpoint, result: ProbeResult) -> None:
    """The certificate wasn't trusted: fetch it without checks and offer its
    fingerprint to pin, with what it says about itself."""
    try:
        der = await fetch_certificate(endpoint)
    except (OSError, ssl.SSLError, asyncio.TimeoutError, ValueError):
        return
    if der is None:
        return
    fingerprint = hashlib.sha256(der).hexdigest()
    result.cert_sha256 = fingerprint
    about = _describe_cert(der)
    if endpoint.pin_sha256 and normalise_pin(endpoint.pin_sha256) != fingerprint:
        result.fail("tls", f"the server now shows certificate SHA-256 {fingerprint}{about}; if that change "
                    f"is expected, pin it instead: --trust-fingerprint {fingerprint}")
    else:
        result.fail("tls", f"the server's certificate has SHA-256 {fingerprint}{about}; if you trust it, "
                    f"pin it: --trust-fingerprint {fingerprint}")


async def fetch_certificate(endpoint) -> bytes | None:
    """The server's certificate (DER), taken without verifying it (through
    STARTTLS when that is how the endpoint speaks TLS)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    async def run():
        if endpoint.tls == "implicit":
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port, ssl=ctx,
                                                           server_hostname=endpoint.host)
        else:
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
            await reader.readline()                         # greeting
            writer.write(b"P1 STARTTLS\r\n")
            while not (line := await reader.readline()).startswith(b"P1 ") and line:
                pass
            if not line.upper().startswith(b"P1 OK"):
                writer.close()
                return None
            await writer.start_tls(ctx, server_hostname=endpoint.host)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            return ssl_object.getpeercert(binary_form=True) if ssl_object else None
        finally:
            writer.close()
    return await asyncio.wait_for(run(), endpoint.timeout)


def _describe_cert(der: bytes) -> str:
    try:
        from cryptography import x509
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
        until = cert.not_valid_after_utc.strftime("%Y-%m-%d")
    except Exception:
        return ""
    who = "self-signed" if subject == issuer else f"issued by {issuer}"
    return f" ({subject}, {who}, valid until {until})"


# -- the SMTP side ---------------------------------------------------------------

def _smtp_context(account) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if account.kind == "local" or (account.tls_pin and account.smtp_host == account.imap_host):
        ctx.check_hostname = False      # the pin is compared after the handshake
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def probe_smtp(store, account, secret, result: ProbeResult, timeout: float) -> None:
    import aiosmtplib
    host, port, tls = account.smtp_host, account.smtp_port, account.smtp_tls or "starttls"
    if not await _reach(host, port, timeout, result, "smtp"):
        return
    ctx = _smtp_context(account)
    smtp = aiosmtplib.SMTP(hostname=host, port=port, use_tls=tls == "implicit", start_tls=False,
                           tls_context=ctx, timeout=timeout)
    step = "smtp tls" if tls == "implicit" else "smtp greeting"
    try:
        await smtp.connect()
        step = "smtp ehlo"
        await smtp.ehlo()
        if tls == "starttls":
            step = "smtp tls"
            if not smtp.supports_extension("starttls"):
                return result.fail(step, f"{host} does not offer STARTTLS")
            await smtp.starttls(tls_context=ctx)
            step = "smtp ehlo"
            await smtp.ehlo()
        if tls != "none":
            step = "smtp tls"
            _check_smtp_pin(smtp, account)
        step = "smtp auth"
        if not smtp.supports_extension("auth"):
            return result.fail(step, f"{host} offers no AUTH (after {'STARTTLS' if tls == 'starttls' else 'EHLO'})")
        mechanism, data = await _smtp_auth_data(store, account, secret)
        response = await smtp.execute_command(b"AUTH", mechanism.encode(), base64.b64encode(data) or b"=")
        if response.code == 334:        # an error challenge (XOAUTH2's JSON): an empty reply gets the verdict
            response = await smtp.execute_command(b"")
        if response.code != 235:
            return result.fail(step, f"{account.login} refused: the server said: {response.code} {response.message}")
        result.info.append(f"smtp: {host} port {port} ({tls}), login ok")
    except aiosmtplib.SMTPException as e:
        text = getattr(e, "message", None) or str(e)
        code = getattr(e, "code", None)
        result.fail(step, f"{code} {text}" if code else text)
    except ssl.SSLCertVerificationError as e:
        result.fail("smtp tls", f"certificate not trusted: {e.verify_message or e}")
    except (ssl.SSLError, OSError) as e:
        result.fail(step, str(e))
    except (OAuthError, SecretsError, ValueError) as e:
        result.fail(step, str(e))
    finally:
        try:
            await smtp.quit()
        except Exception:
            smtp.close()


class _PinMismatch(ValueError):
    pass


def _check_smtp_pin(smtp, account) -> None:
    if account.kind == "local" or not (account.tls_pin and account.smtp_host == account.imap_host):
        return
    ssl_object = smtp.transport.get_extra_info("ssl_object") if smtp.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    seen = hashlib.sha256(der).hexdigest() if der else None
    if seen != normalise_pin(account.tls_pin):
        raise _PinMismatch(f"certificate SHA-256 {seen} is not the pinned {normalise_pin(account.tls_pin)}")


async def _smtp_auth_data(store, account, secret) -> tuple[str, bytes]:
    from ..auth.service_identity import SERVICE_NAME, ServiceIdentity
    from .oauth import access_token, initial_response
    from .sasl import plain
    if account.auth == "service":
        return "PLAIN", plain(SERVICE_NAME, ServiceIdentity(store.data_dir).secret(), authzid=account.login)
    if account.auth == "oauth2":
        token, settings = await access_token(store, account, secret)
        return initial_response(settings, account.login, token, account.smtp_host, account.smtp_port)
    password = (secret if secret is not None else store.secret(account.id)).get("password") or ""
    return "PLAIN", plain(account.login, password)
