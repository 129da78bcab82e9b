"""Certificates clients accept: offlineimap3 and fetchmail (Debian's) connect
to 127.0.0.1 over implicit TLS trusting the generated certificate as their CA
file, and pinning it by the fingerprint `posthouse cert show` prints."""
from __future__ import annotations

import imaplib
import os
import re
import shutil
import subprocess
import sys

import pytest

needs_offlineimap = pytest.mark.skipif(shutil.which("offlineimap") is None,
                                       reason="offlineimap (Debian offlineimap3) not installed")
needs_fetchmail = pytest.mark.skipif(shutil.which("fetchmail") is None,
                                     reason="fetchmail (Debian package) not installed")

MSG = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: %s\r\nMessage-ID: <%s@cert>\r\n\r\nbody\r\n"


def cert_show(server, tmp_path) -> dict:
    """`posthouse cert show` for the test server's data directory and name: its lines by label."""
    cfg = tmp_path / "cert.toml"
    cfg.write_text(f'data_dir = "{server.config.data_dir}"\nhostname = "{server.config.hostname}"\n')
    r = subprocess.run([sys.executable, "-m", "posthouse", "--config", str(cfg), "cert", "show"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in r.stdout.splitlines())}


def test_cert_show_prints_path_names_and_fingerprints(server, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    shown = cert_show(server, tmp_path)
    path = server.config.path("tls/cert.pem")
    assert shown["path"] == os.path.abspath(path)
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    assert shown["SHA-256"] == ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))
    assert shown["subject"] == "CN=mx.test"
    assert shown["names"] == "DNS:mx.test, DNS:localhost, DNS:127.0.0.1, DNS:::1, IP:127.0.0.1, IP:::1"
    assert "UTC to" in shown["valid"] and "replaces" not in shown["kind"]
    assert shown["offlineimap"] == "cert_fingerprint = " + cert.fingerprint(hashes.SHA256()).hex()
    assert shown["fetchmail"].startswith('sslfingerprint "' + ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.MD5())))


def test_cert_show_names_a_configured_certificate_and_a_missing_one(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'data_dir = "{tmp_path}/d"\n[tls]\ncert = "{tmp_path}/none.pem"\nkey = "{tmp_path}/none.key"\n')
    r = subprocess.run([sys.executable, "-m", "posthouse", "--config", str(cfg), "cert", "show"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "none.pem" in r.stderr and "Traceback" not in r.stderr


def _offlineimap(tmp_path, server, user, ssl_lines: str):
    name, pw = user
    rc = tmp_path / "offlineimaprc"
    rc.write_text(f"""[general]
accounts = t
metadata = {tmp_path}/meta

[Account t]
localrepository = L
remoterepository = R

[Repository L]
type = Maildir
localfolders = {tmp_path}/Mail

[Repository R]
type = IMAP
remotehost = 127.0.0.1
remoteport = {server.tls_port}
remoteuser = {name}
remotepass = {pw}
ssl = yes
{ssl_lines}
folderfilter = lambda name: name == 'INBOX'
""")
    return subprocess.run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"],
                          capture_output=True, text=True, timeout=120)


def _inbox_files(tmp_path) -> int:
    return sum(len(os.listdir(tmp_path / "Mail" / "INBOX" / sub)) for sub in ("cur", "new"))


@needs_offlineimap
@pytest.mark.parametrize("how", ["cafile", "fingerprint"])
def test_offlineimap_trusts_the_generated_certificate(server, user, tmp_path, how):
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    c.append("INBOX", None, None, MSG % (b"cert", b"cert"))
    c.logout()
    shown = cert_show(server, tmp_path)
    lines = (f"sslcacertfile = {shown['path']}" if how == "cafile" else shown["offlineimap"])
    r = _offlineimap(tmp_path, server, user, lines)
    assert r.returncode == 0 and "ERROR" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert _inbox_files(tmp_path) == 1


@needs_offlineimap
def test_offlineimap_refuses_a_wrong_pin(server, user, tmp_path):
    r = _offlineimap(tmp_path, server, user, "cert_fingerprint = " + "00" * 32)
    assert "does not match configured fingerprint" in r.stdout + r.stderr


def _fetchmail(tmp_path, server, user, ssl_options: str):
    out = tmp_path / "mail.out"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(f'poll 127.0.0.1 service {server.pop3_tls_port} protocol POP3 uidl\n'
                  f'  user "{user[0]}" password "{user[1]}" keep ssl {ssl_options} '
                  f'mda "cat >> {out}"\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    # Its own lock file: as root, fetchmail's default is one for the whole machine
    # (/var/run/fetchmail.pid), and tests run in parallel.
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-i", str(tmp_path / "ids"),
                        "--pidfile", str(tmp_path / "fetchmail.pid")],
                       env=env, capture_output=True, text=True, timeout=60)
    got = out.read_bytes().count(b"Subject: ") if out.exists() else 0
    return r, got


@needs_fetchmail
@pytest.mark.parametrize("how", ["cafile", "fingerprint"])
def test_fetchmail_trusts_the_generated_certificate(server, user, tmp_path, how):
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    c.append("INBOX", None, None, MSG % (b"fetch", b"fetch"))
    c.logout()
    shown = cert_show(server, tmp_path)
    if how == "cafile":
        options = f'sslcertck sslcertfile "{shown["path"]}"'
    else:
        # fetchmail 6.4 checks the chain by default (sslcertck); a pin stands instead of it.
        options = "no sslcertck " + re.match(r'sslfingerprint "[0-9A-F:]+"', shown["fetchmail"]).group(0)
    r, got = _fetchmail(tmp_path, server, user, options)
    assert r.returncode == 0 and got == 1, r.stdout + r.stderr
    assert "certificate verification" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr


@needs_fetchmail
def test_fetchmail_refuses_a_wrong_pin(server, user, tmp_path):
    r, got = _fetchmail(tmp_path, server, user, 'no sslcertck sslfingerprint "' + ":".join(["00"] * 16) + '"')
    assert r.returncode != 0 and got == 0


def test_a_generated_certificate_without_the_loopback_dns_name_is_replaced(tmp_path):
    """One made by the version before (127.0.0.1 as an IP name only, which
    offlineimap and fetchmail don't read) is set aside for one they accept."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from posthouse.tls import ensure_self_signed

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
           .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                          critical=False)
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    cert, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(old)
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    ensure_self_signed(str(cert), str(keyfile), "localhost")
    assert (tmp_path / "cert.pem.old").read_bytes() == old
    san = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert "127.0.0.1" in san.get_values_for_type(x509.DNSName)
    made = cert.read_bytes()
    ensure_self_signed(str(cert), str(keyfile), "localhost")
    assert cert.read_bytes() == made        # kept from now on (clients may pin it)
