"""`posthouse cert show`: the server's certificate, and what a client needs to
trust it: its path (a CA file for the client), its names, its validity and
its fingerprints, in the forms clients take for pinning."""
from __future__ import annotations

import hashlib
import os
import sys


def certificate_path(config) -> tuple[str, bool]:
    """The certificate the server uses, and whether it is the generated one."""
    if config.tls_cert:
        return config.tls_cert, False
    return config.path("tls/cert.pem"), True


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def describe(pem: bytes) -> dict:
    """The first certificate of a PEM file: subject, names, validity, fingerprints."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(pem)
    der = cert.public_bytes(Encoding.DER)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)] + \
                [f"IP:{a}" for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    sha256 = hashlib.sha256(der).digest()
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "names": names,
        "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc,
        "sha256": colon_hex(sha256),
        # offlineimap's cert_fingerprint: hex of the DER's SHA-256 (or SHA-1..512),
        # colons allowed; fetchmail 6.4's sslfingerprint: the DER's MD5, colon hex, upper case.
        "offlineimap": sha256.hex(),
        "fetchmail": colon_hex(hashlib.md5(der, usedforsecurity=False).digest()),
    }


def cmd_cert(args) -> int:
    from .config import load_config
    from .tls import _names, ensure_self_signed, server_name

    config = load_config(args.config, args.data_dir)
    path, generated = certificate_path(config)
    hostname = server_name(config.hostname)
    note = ""
    if generated:
        if not os.path.exists(path):
            # As `posthouse serve` would make it, so it can be pinned before the first start.
            ensure_self_signed(path, config.path("tls/key.pem"), hostname)
            note = "made now, as `posthouse serve` would"
        elif not _names(path, hostname):
            note = f"does not name {hostname}: `posthouse serve` replaces it at its next start"
    try:
        with open(path, "rb") as f:
            info = describe(f.read())
    except OSError as e:
        print(f"posthouse: can't read the certificate {path}: {e.strerror}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"posthouse: {path} is not a PEM certificate: {e}", file=sys.stderr)
        return 1
    print(f"path:        {os.path.abspath(path)}")
    print(f"kind:        {'self-signed, generated' if generated else 'configured ([tls] cert)'}"
          + (f"; {note}" if note else ""))
    print(f"subject:     {info['subject']}")
    if info["issuer"] != info["subject"]:
        print(f"issuer:      {info['issuer']}")
    print(f"names:       {', '.join(info['names']) or '(none)'}")
    print(f"valid:       {info['not_before']:%Y-%m-%d %H:%M:%S} UTC to {info['not_after']:%Y-%m-%d %H:%M:%S} UTC")
    print(f"SHA-256:     {info['sha256']}")
    print(f"offlineimap: cert_fingerprint = {info['offlineimap']}")
    print(f"fetchmail:   sslfingerprint \"{info['fetchmail']}\"   (MD5, as fetchmail 6.4 compares it)")
    return 0


def register(subparsers) -> None:
    cert = subparsers.add_parser("cert", help="show the TLS certificate (path, names, fingerprints for pinning)",
                                 description="show: the certificate's path, names, validity and the SHA-256 "
                                             "fingerprint, with each client's pin (made first if missing).")
    cert.add_argument("action", choices=["show"], help="what to do")
    cert.set_defaults(func=cmd_cert)
