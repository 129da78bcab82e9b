"""Getting a byte stream to an IMAP server: DNS, TCP, TLS, each failure
reported as an ImapError naming the step."""
from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from dataclasses import dataclass

from .errors import ImapError


@dataclass
class Endpoint:
    host: str
    port: int
    tls: str = "implicit"           # 'implicit' | 'starttls' | 'none'
    verify: bool = True
    pin_sha256: str | None = None   # hex SHA-256 of the server's certificate (DER): trusted instead of CA checks
    ca_file: str | None = None
    timeout: float = 30.0


def normalise_pin(pin: str) -> str:
    return pin.replace(":", "").replace(" ", "").lower()


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """CA and host name checks by default; with a pin (or verify off) the
    chain isn't checked here and the pin is compared after the handshake."""
    ctx = ssl.create_default_context(cafile=endpoint.ca_file)
    if endpoint.pin_sha256 or not endpoint.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def connect_tcp(endpoint: Endpoint):
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(endpoint.timeout):
            infos = await loop.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ImapError("dns", f"cannot resolve {endpoint.host!r}: {e}") from None
    except TimeoutError:
        raise ImapError("dns", f"no answer resolving {endpoint.host!r} in {endpoint.timeout:g}s") from None
    if not infos:
        raise ImapError("dns", f"{endpoint.host!r} has no address")
    last: Exception | None = None
    for family, type_, proto, _name, addr in infos:
        try:
            async with asyncio.timeout(endpoint.timeout):
                return await asyncio.open_connection(addr[0], addr[1], family=family, limit=1 << 20)
        except TimeoutError:
            last = TimeoutError(f"no answer in {endpoint.timeout:g}s")
        except OSError as e:
            last = e
    raise ImapError("tcp", f"cannot connect to {endpoint.host}:{endpoint.port}: {last}")


async def start_tls(writer: asyncio.StreamWriter, endpoint: Endpoint) -> str:
    """Upgrade the stream; return the SHA-256 (hex) of the certificate seen."""
    ctx = tls_context(endpoint)
    try:
        async with asyncio.timeout(endpoint.timeout):
            await writer.start_tls(ctx, server_hostname=endpoint.host)
    except ssl.SSLCertVerificationError as e:
        raise ImapError("tls", f"certificate not trusted: {e.verify_message or e}") from None
    except (ssl.SSLError, OSError) as e:
        raise ImapError("tls", f"TLS handshake failed: {e}") from None
    except TimeoutError:
        raise ImapError("tls", f"TLS handshake took over {endpoint.timeout:g}s") from None
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if not der:
        raise ImapError("tls", "the server sent no certificate")
    seen = hashlib.sha256(der).hexdigest()
    if endpoint.pin_sha256 and normalise_pin(endpoint.pin_sha256) != seen:
        raise ImapError("tls", f"certificate SHA-256 {seen} is not the pinned {normalise_pin(endpoint.pin_sha256)}")
    return seen
