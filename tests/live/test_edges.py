"""Edges of the protocols: bytes that are not UTF-8 in SMTP, LMTP and
submission commands, POP3 commands with the wrong number of arguments,
aborted TLS handshakes, the TLS profile and the generated certificate."""
from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import socket
import ssl
import struct
import subprocess
import time

import pytest

from ..conftest import RawClient


def smtp_reply(client: RawClient) -> bytes:
    """One (maybe multiline) SMTP reply; its last line."""
    while True:
        line = client.readline()
        if not line or line[3:4] != b"-":
            return line


def smtp_say(client: RawClient, line: bytes) -> bytes:
    client.send(line + b"\r\n")
    return smtp_reply(client)


def no_tracebacks(caplog) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


# -- bytes that are not UTF-8 ---------------------------------------------------------

@pytest.mark.parametrize("service", ["smtp", "lmtp"])
def test_invalid_utf8_in_envelope_commands(server, user, service, caplog):
    port = server.smtp_port if service == "smtp" else server.lmtp_port
    hello = b"EHLO" if service == "smtp" else b"LHLO"
    c = RawClient(server.host, port)
    try:
        assert smtp_say(c, hello + b" \xff\xfe.example").startswith(b"501 5.5.2")
        assert smtp_say(c, hello + b" client.example").startswith(b"250 ")
        assert smtp_say(c, b"MAIL FROM:<\xc3\x28@example.org>").startswith(b"553 5.1.7")
        assert smtp_say(c, b"MAIL FROM:<a@example.org> BODY=8BIT\xff").startswith(b"501 5.5.4")
        assert smtp_say(c, b"MAIL FROM:<a@example.org>").startswith(b"250 ")
        # The reported case: 451 4.3.0 and a traceback before.
        assert smtp_say(c, b"RCPT TO:<\xff\xfe@example.com>").startswith(b"553 5.1.3")
        assert smtp_say(c, b"RCPT TO:<" + user[0].encode() + b"\xed\xa0\x80@example.com>").startswith(b"553 5.1.3")
        assert smtp_say(c, b"RCPT TO:<" + user[0].encode() + b"@example.com> NOTIFY=\xff").startswith(b"501 5.5.4")
        assert smtp_say(c, b"VRFY \xff").startswith(b"501 5.5.2")
        # Real UTF-8 (SMTPUTF8) is still an address: unknown here, so 550.
        assert smtp_say(c, "RCPT TO:<jörg@example.com>".encode()).startswith(b"550 5.1.1")
        assert smtp_say(c, b"RCPT TO:<" + user[0].encode() + b"@example.com>").startswith(b"250 ")
        assert smtp_say(c, b"QUIT").startswith(b"221")
    finally:
        c.close()
    no_tracebacks(caplog)


def test_invalid_utf8_in_submission_auth(server, user, caplog):
    c = RawClient(server.host, server.submission_port)
    try:
        assert smtp_say(c, b"EHLO client.example").startswith(b"250 ")
        assert smtp_say(c, b"AUTH PLAIN \xff\xfe").startswith(b"501 5.5.2")
        assert smtp_say(c, b"AUTH LOGIN \xff").startswith(b"501 5.5.2")
        assert smtp_say(c, b"AUTH \xffPLAIN").startswith(b"501 5.5.2")
        assert smtp_say(c, b"MAIL FROM:<\xff@example.com>").startswith(b"553 5.1.7")
        # Challenge responses: base64 of bytes that are not UTF-8, and raw garbage.
        assert smtp_say(c, b"AUTH LOGIN").startswith(b"334 ")
        assert smtp_say(c, base64.b64encode(b"\xff\xfe")).startswith(b"334 ")
        assert smtp_say(c, base64.b64encode(b"\xff")).startswith(b"535 5.7.8")
        assert smtp_say(c, b"AUTH PLAIN").startswith(b"334")
        assert smtp_say(c, base64.b64encode(b"\x00\xff\x00\xfe")).startswith(b"535 5.7.8")
        assert smtp_say(c, b"AUTH LOGIN").startswith(b"334 ")
        assert smtp_say(c, b"\xff\xfe").startswith(b"501 5.5.2")
        assert smtp_say(c, b"QUIT").startswith(b"221")
    finally:
        c.close()
    no_tracebacks(caplog)


# -- POP3 arguments are exact (RFC 1939) ------------------------------------------------

def pop3_say(client: RawClient, line: bytes) -> bytes:
    client.send(line + b"\r\n")
    return client.readline()


def test_pop3_commands_take_exactly_their_arguments(server, caplog):
    from .test_pop3 import deliver
    name, password = server.add_user(password="pass with spaces")
    deliver(server, (name, password), "arity")
    c = RawClient(server.host, server.pop3_port)
    try:
        for line in (b"CAPA x", b"STLS now", b"USER", b"USER a b", b"APOP a", b"APOP a b c",
                     b"AUTH PLAIN a b", b"QUIT now"):
            assert pop3_say(c, line).startswith(b"-ERR"), line
        assert pop3_say(c, b"CAPA").startswith(b"+OK")
        while c.readline() != b".\r\n":
            pass
        assert pop3_say(c, b"USER " + name.encode()).startswith(b"+OK")
        # PASS takes the whole rest of the line: a password may hold spaces.
        assert pop3_say(c, b"PASS " + password.encode()).startswith(b"+OK")
        for line in (b"STAT 1", b"LIST 1 1", b"RETR 1 1", b"RETR", b"DELE 1 1", b"DELE", b"NOOP x",
                     b"RSET x", b"TOP 1", b"TOP 1 0 0", b"UIDL 1 1", b"QUIT now", b"RETR \xff"):
            assert pop3_say(c, line).startswith(b"-ERR"), line
        assert pop3_say(c, b"STAT").startswith(b"+OK 1 ")
        assert pop3_say(c, b"LIST 1").startswith(b"+OK 1 ")
        assert pop3_say(c, b"UIDL 1").startswith(b"+OK 1 ")
        assert pop3_say(c, b"NOOP").startswith(b"+OK")
        assert pop3_say(c, b"QUIT").startswith(b"+OK")
    finally:
        c.close()
    no_tracebacks(caplog)


# -- aborted TLS handshakes: one INFO line, no traceback ---------------------------------

def _client_hello() -> bytes:
    """The first flight of a real TLS client, to stop right after."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _starttls(sock: socket.socket, service: str) -> None:
    """Speak the service's plain-text part up to its STARTTLS 'go ahead'."""
    f = sock.makefile("rb")
    if service == "sieve":
        while not f.readline().startswith(b"OK"):
            pass
        sock.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"OK")
        return
    f.readline()
    if service in ("smtp", "submission"):
        sock.sendall(b"EHLO client.example\r\n")
        while f.readline()[3:4] == b"-":
            pass
        sock.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220")
    elif service == "imap":
        sock.sendall(b"a STARTTLS\r\n")
        assert f.readline().startswith(b"a OK")
    else:
        sock.sendall(b"STLS\r\n")
        assert f.readline().startswith(b"+OK")


def _handshake_lines(caplog, peer: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "TLS handshake with" in r.getMessage() and peer in r.getMessage()]


@pytest.mark.parametrize("service,tls", [
    ("imap", True), ("pop3", True), ("submission", True),
    ("imap", False), ("pop3", False), ("smtp", False), ("submission", False), ("sieve", False)])
@pytest.mark.parametrize("how", ["garbage", "hello-then-reset"])
def test_aborted_tls_handshake_is_one_info_line(server, caplog, service, tls, how):
    caplog.set_level(logging.INFO)
    ports = {("imap", True): server.tls_port, ("pop3", True): server.pop3_tls_port,
             ("submission", True): server.submission_tls_port, ("imap", False): server.port,
             ("pop3", False): server.pop3_port, ("smtp", False): server.smtp_port,
             ("submission", False): server.submission_port, ("sieve", False): server.sieve_port}
    sock = socket.create_connection((server.host, ports[service, tls]), timeout=10)
    peer = "%s:%d" % sock.getsockname()[:2]
    try:
        if not tls:
            _starttls(sock, service)
        if how == "garbage":
            sock.sendall(b"\x16\x03\x01\x00\x10this is not TLS at all" * 4)
            sock.recv(1024)             # the server's alert, or the close
        else:
            sock.sendall(_client_hello())
            sock.recv(1024)             # the server's hello: the handshake is under way
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()                    # with SO_LINGER 0: a reset mid-handshake
    deadline = time.monotonic() + 10    # (a bound on waiting for the log, not a check of time)
    while not _handshake_lines(caplog, peer) and time.monotonic() < deadline:
        time.sleep(0.02)
    [line] = _handshake_lines(caplog, peer)
    assert line.levelno == logging.INFO and line.exc_info is None
    no_tracebacks(caplog)


# -- the TLS profile (Mozilla "intermediate") and the generated certificate ---------------

def _tls_ports(server) -> dict[str, int]:
    return {"imap": server.tls_port, "pop3": server.pop3_tls_port, "submission": server.submission_tls_port}


def _client(maximum=None, minimum=None, ciphers=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def _handshake(server, port: int, ctx: ssl.SSLContext, name: str = "localhost"):
    with socket.create_connection((server.host, port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=name) as tls:
            return tls.version(), tls.cipher()[0]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest.mark.parametrize("service", ["imap", "pop3", "submission"])
def test_tls_profile_is_mozilla_intermediate(server, service):
    port = _tls_ports(server)[service]
    # CBC suites (still offered by Python's default server ciphers) are refused.
    cbc = _client(maximum=ssl.TLSVersion.TLSv1_2,
                  ciphers="ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA")
    with pytest.raises(ssl.SSLError):
        _handshake(server, port, cbc)
    # So is TLS 1.1 (the client allowed to try it: security level 0).
    old = _client(minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        _handshake(server, port, old)
    # What is negotiated is AEAD: TLS 1.3 by default, ECDHE with GCM or ChaCha20 in TLS 1.2.
    version, cipher = _handshake(server, port, _client())
    assert version == "TLSv1.3" and cipher in ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
                                               "TLS_CHACHA20_POLY1305_SHA256")
    version, cipher = _handshake(server, port, _client(maximum=ssl.TLSVersion.TLSv1_2))
    assert version == "TLSv1.2" and cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher)
    chacha = _client(maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-CHACHA20-POLY1305")
    assert _handshake(server, port, chacha)[1] == "ECDHE-ECDSA-CHACHA20-POLY1305"


def test_key_exchange_groups_are_x25519_p256_p384(server):
    from posthouse.tls import GROUPS, restrict_groups
    assert restrict_groups(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), GROUPS)   # possible on this Python
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl program to offer single groups")

    def offer(group: str, version: str) -> str | None:
        """The key exchange the server chose when offered only group; None: refused."""
        run = subprocess.run([openssl, "s_client", "-connect", f"{server.host}:{server.tls_port}", version,
                              "-groups", group], input=b"", capture_output=True, timeout=20)
        chosen = [line for line in run.stdout.decode().splitlines() if line.startswith("Server Temp Key:")]
        return chosen[0] if run.returncode == 0 and chosen else None
    for group, shown in (("X25519", "X25519"), ("P-256", "prime256v1"), ("P-384", "secp384r1")):
        assert shown in (offer(group, "-tls1_3") or ""), group
    for group in ("P-521", "X448", "ffdhe2048"):
        assert offer(group, "-tls1_3") is None, group
    # In TLS 1.2 the client's groups also name the curves its ECDSA
    # certificates may use (RFC 8422 5.1): the server's is P-256.
    assert "X25519" in (offer("X25519:P-256", "-tls1_2") or "")
    assert "prime256v1" in (offer("P-521:P-256", "-tls1_2") or "")


def test_generated_certificate_names_the_host_and_verifies(server):
    from cryptography import x509
    path = server.config.path("tls/cert.pem")
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # The loopback addresses as DNS names too, for offlineimap3 and fetchmail (test_cert_clients.py).
    assert set(san.get_values_for_type(x509.DNSName)) == {"mx.test", "localhost", "127.0.0.1", "::1"}
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest      # self-signed: its own key is the authority's
    # As offlineimap and fetchmail check it: the certificate as the CA, the name verified.
    for strict in (False, True):
        for name in ("localhost", "mx.test", "127.0.0.1"):
            ctx = ssl.create_default_context(cafile=path)
            if strict:
                ctx.verify_flags |= ssl.VERIFY_X509_STRICT      # Python 3.13's default
            for port in _tls_ports(server).values():
                assert _handshake(server, port, ctx, name)[0] == "TLSv1.3"
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, server.tls_port, ssl.create_default_context(cafile=path), "other.test")


def test_certificate_of_an_earlier_version_is_replaced_only_without_the_name(tmp_path):
    from posthouse.tls import ensure_self_signed
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    ensure_self_signed(cert, key, "localhost")       # as earlier versions made it: localhost only
    first = open(cert, "rb").read()
    ensure_self_signed(cert, key, "localhost")
    assert open(cert, "rb").read() == first          # it names the host: kept (clients may pin it)
    ensure_self_signed(cert, key, "mail.example.com")
    assert open(cert, "rb").read() != first and open(cert + ".old", "rb").read() == first
    second = open(cert, "rb").read()
    ensure_self_signed(cert, key, "MAIL.example.com")
    assert open(cert, "rb").read() == second


# -- greetings under load: the mechanisms (the figures are in the report) -----------------

def test_every_listener_has_a_deep_accept_queue(server):
    """asyncio's default backlog of 100 overflowed under 200 reconnecting
    clients: the kernel dropped handshakes and clients waited 1-3 s (TCP
    retransmission) for the greeting. The kernel's own figure is checked."""
    from posthouse.net import LISTEN_BACKLOG
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("no ss (iproute2) to read a listening socket's backlog")
    ports = [server.port, server.tls_port, server.pop3_port, server.pop3_tls_port, server.smtp_port,
             server.lmtp_port, server.submission_port, server.submission_tls_port, server.sieve_port]
    listing = subprocess.run([ss, "-ltnH"], capture_output=True, text=True, timeout=20).stdout
    backlog = {}
    for line in listing.splitlines():
        fields = line.split()         # State Recv-Q Send-Q(= the backlog) Local Peer
        backlog[fields[3]] = int(fields[2])
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())
    assert {p: backlog.get(f"127.0.0.1:{p}") for p in ports} == {p: min(LISTEN_BACKLOG, somaxconn) for p in ports}


def test_imap_greeting_is_written_when_the_connection_is_made(server):
    """No await between accept and greeting: it is in the socket's buffer
    when connection_made returns, before a busy loop runs anything else."""
    from posthouse.imap.server import Connection, ImapServer

    class Transport(asyncio.Transport):
        def __init__(self):
            super().__init__()
            self.data, self.closed = b"", False

        def get_extra_info(self, name, default=None):
            return {"peername": ("127.0.0.1", 9), "sockname": ("127.0.0.1", 143)}.get(name, default)

        def write(self, data):
            self.data += data

        def is_closing(self):
            return self.closed

        def close(self):
            self.closed = True

    async def connect() -> bytes:
        imap = ImapServer(server.ctx)
        conn = Connection(server.config, False, imap._start)
        transport = Transport()
        conn.connection_made(transport)
        written = transport.data            # before any await
        conn.connection_lost(None)          # the session ends
        await asyncio.gather(*imap._tasks)
        return written
    assert server.call(connect()).startswith(b"* OK [CAPABILITY IMAP4rev1 ")


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_implicit_tls_listener_takes_every_handshake(tmp_path, loop_kind):
    """Clients that send their ClientHello at once, as they all do: with the
    handshake started from a task, uvloop let some arrive before the TLS
    layer was in place and those handshakes hung."""
    import threading
    from posthouse.net import listen_tcp
    from posthouse.tls import ensure_self_signed, server_context
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    ensure_self_signed(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), "localhost")
    context = server_context(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))

    class Hello(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(b"hello\r\n")

    server = loop.run_until_complete(listen_tcp(Hello, "127.0.0.1", 0, context, "test"))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        port = server.sockets[0].getsockname()[1]
        for _ in range(30):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                with _client().wrap_socket(sock, server_hostname="localhost") as tls:
                    assert tls.recv(7) == b"hello\r\n"
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
