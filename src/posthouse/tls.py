"""TLS contexts (Mozilla's "intermediate" profile); a self-signed certificate
for a local run when none is configured."""
from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import ssl
import sys

log = logging.getLogger("posthouse")

# Mozilla's "intermediate" server profile: TLS 1.2 and 1.3 only; for TLS 1.2
# ECDHE key exchange with AEAD ciphers only (AES-GCM, ChaCha20-Poly1305: no
# CBC, no static RSA, no finite-field DHE); TLS 1.3's default suites (all AEAD).
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"])
GROUPS = "X25519:P-256:P-384"

_SSL_CTRL_SET_GROUPS_LIST = 92      # OpenSSL's SSL_CTX_set1_groups_list() is this SSL_CTX_ctrl()


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    if not restrict_groups(ctx, GROUPS):
        # OpenSSL's own list stays: X25519, P-256, X448, P-521, P-384 and
        # FFDHE of 2048 bits and more, none of them weak.
        log.debug("TLS: key exchange groups left at OpenSSL's defaults")
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


def restrict_groups(ctx: ssl.SSLContext, groups: str) -> bool:
    """Limit the key exchange groups to `groups`; whether that was possible.

    Python's ssl has set_groups() only from 3.15 (set_ecdh_curve() takes one
    curve: P-256 alone would cost X25519 clients a round trip, X25519 alone
    would lock out clients without it). Before that, the context's SSL_CTX is
    given the list through OpenSSL's SSL_CTX_ctrl, the call behind
    SSL_CTX_set1_groups_list(), found in the very libssl the ssl module
    uses. The other ways set every context of the process, and only before
    ssl is first imported (OPENSSL_CONF, a system openssl.cnf)."""
    setter = getattr(ctx, "set_groups", None)
    if setter is not None:
        setter(groups)
        return True
    try:
        return _set_groups_list(ctx, groups)
    except (OSError, AttributeError, ValueError):
        return False


def _set_groups_list(ctx: ssl.SSLContext, groups: str) -> bool:
    import ctypes
    import _ssl

    # CPython's SSLContext object is PyObject_HEAD and then the SSL_CTX
    # pointer; a build with Py_TRACE_REFS (sys.getobjects) has a longer head.
    if sys.implementation.name != "cpython" or hasattr(sys, "getobjects") or ssl.OPENSSL_VERSION_INFO < (1, 1, 1):
        return False
    lib = ctypes.CDLL(_ssl.__file__)     # its symbols, and those of the libssl it links
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
    ssl_ctx = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    # The pointer is the context's own if OpenSSL reports the options Python set.
    if not ssl_ctx or lib.SSL_CTX_get_options(ssl_ctx) != int(ctx.options):
        return False
    return lib.SSL_CTX_ctrl(ssl_ctx, _SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode()) == 1


def server_name(hostname: str) -> str:
    """The name the server gives itself: the configured one, else the host's."""
    return hostname or socket.getfqdn()


def ensure_self_signed(cert_path: str, key_path: str, hostname: str = "localhost") -> None:
    """A self-signed pair at these paths, for a run without a configured
    certificate. One made earlier is kept while it names `hostname` (clients
    may have pinned it, as fetchmail's sslfingerprint does); one that does not
    (made before the name was put in, or the name changed, or one without
    127.0.0.1 as a DNS name) could not pass a client's name check anyway: it is moved aside (*.old) and a new one made."""
    if os.path.exists(cert_path) and os.path.exists(key_path):
        if _names(cert_path, hostname):
            return
        for path in (cert_path, key_path):
            os.replace(path, path + ".old")
        log.warning("TLS: the self-signed certificate %s did not name %s; a new one is made (the old one is "
                    "kept as %s.old)", cert_path, hostname, cert_path)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    # The loopback addresses as DNS names too, beside the IP names: offlineimap3
    # and fetchmail 6.4 match the name they were given against the DNS names and
    # the CN only, so with an IP SAN alone they refuse "127.0.0.1".
    dns = [hostname] + ([] if hostname.lower() == "localhost" else ["localhost"]) + list(LOOPBACK_NAMES)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(d) for d in dns]
                + [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]), critical=False)
            # Key identifiers: a chain builder links certificates by them, and
            # strict verifiers (OpenSSL's X509_STRICT, Python 3.13's default
            # context) refuse a certificate without the authority's.
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    os.makedirs(os.path.dirname(cert_path) or ".", exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


LOOPBACK_NAMES = ("127.0.0.1", "::1")


def _names(cert_path: str, hostname: str) -> bool:
    """Whether the certificate's SAN has hostname, and 127.0.0.1 (see
    ensure_self_signed), as DNS names."""
    from cryptography import x509
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    dns = {n.lower() for n in names.get_values_for_type(x509.DNSName)}
    return hostname.lower() in dns and LOOPBACK_NAMES[0] in dns
