"""submit()'s other logins against an SMTP sink on 127.0.0.1 (aiosmtpd):
XOAUTH2 with a token from a callable, and PLAIN with an authorization identity
(a service acting as the user)."""
from __future__ import annotations

import asyncio
import base64
import socket

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from posthouse.send.smtp import Credentials, SendError, SmtpEndpoint, submit


class Sink:
    def __init__(self):
        self.logins: list[tuple] = []
        self.messages: list[tuple] = []

    async def auth_XOAUTH2(self, server, args):
        raw = base64.b64decode(args[1]).decode()
        fields = dict(f.split("=", 1) for f in raw.split("\x01") if "=" in f)
        ok = fields.get("auth") == "Bearer good-token"
        self.logins.append(("XOAUTH2", fields.get("user"), fields.get("auth")))
        if not ok:
            await server.challenge_auth(base64.b64encode(b'{"status":"401"}').decode(), encode_to_b64=False)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=fields.get("user"))

    async def auth_PLAIN(self, server, args):
        authzid, authcid, password = base64.b64decode(args[1]).split(b"\0")
        self.logins.append(("PLAIN", authzid.decode(), authcid.decode(), password.decode()))
        if password != getattr(self, "service_secret", b"svc-secret"):
            return AuthResult(success=False, handled=False)      # (aiosmtpd answers 535)
        return AuthResult(success=True, auth_data=authzid.decode())

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((session.auth_data, envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 OK"


@pytest.fixture
def sink():
    handler = Sink()
    with socket.socket() as s:      # a free port (the controller's own readiness check can't use port 0)
        s.bind(("127.0.0.1", 0))
        handler.port = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port, auth_require_tls=False,
                            auth_required=True)
    controller.start()
    yield handler
    controller.stop()


def endpoint(sink):
    return SmtpEndpoint(host="127.0.0.1", port=sink.port, tls="none", timeout=10)


MSG = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: t\r\n\r\nbody\r\n"


def test_xoauth2_with_a_token_from_a_callable(sink):
    calls = []

    async def token():
        calls.append(1)
        return "good-token"
    asyncio.run(submit(endpoint(sink), Credentials(login="a@example.com", access_token=token),
                       "a@example.com", ["b@example.org"], MSG))
    assert calls == [1]
    assert sink.logins == [("XOAUTH2", "a@example.com", "Bearer good-token")]
    assert sink.messages == [("a@example.com", "a@example.com", ["b@example.org"], MSG)]


def test_xoauth2_refused_token_is_an_auth_error(sink):
    async def token():
        return "expired"
    with pytest.raises(SendError) as e:
        asyncio.run(submit(endpoint(sink), Credentials(login="a@example.com", access_token=token),
                           "a@example.com", ["b@example.org"], MSG))
    assert e.value.step == "auth" and sink.messages == []


def test_plain_with_an_authorization_identity(sink):
    asyncio.run(submit(endpoint(sink), Credentials(login="posthouse-service", password="svc-secret", authzid="jane"),
                       "jane@example.com", ["b@example.org"], MSG))
    assert sink.logins == [("PLAIN", "jane", "posthouse-service", "svc-secret")]
    assert sink.messages[0][:2] == ("jane", "jane@example.com")
    with pytest.raises(SendError) as e:
        asyncio.run(submit(endpoint(sink), Credentials(login="posthouse-service", password="nope", authzid="jane"),
                           "jane@example.com", ["b@example.org"], MSG))
    assert e.value.step == "auth"


# -- send() picks the login from the account ----------------------------------------------
from posthouse.accounts.store import AccountStore  # noqa: E402
from posthouse.auth.service_identity import SERVICE_NAME, ServiceIdentity  # noqa: E402
from posthouse.config import Config  # noqa: E402
from posthouse.db.engine import make_engine  # noqa: E402
from posthouse.db.migrate import upgrade  # noqa: E402
from posthouse.send import send  # noqa: E402
from posthouse.send.sent import submission_route  # noqa: E402


@pytest.fixture
def accounts(tmp_path):
    engine = make_engine(None, str(tmp_path))
    upgrade(engine)
    yield AccountStore(engine, str(tmp_path), Config(data_dir=str(tmp_path)))
    engine.dispose()


def test_send_from_an_oauth2_account_uses_the_access_token(sink, accounts):
    account = accounts.add(owner="jane", auth="oauth2", oauth_provider="google", login="a@example.com", imap_host="imap.gmail.com",
                           imap_port=993, smtp_host="127.0.0.1", smtp_port=sink.port, smtp_tls="none",
                           secret={"refresh_token": "r"})
    asked = []

    async def token():
        asked.append(1)
        return "good-token"
    result = asyncio.run(send(accounts, account, MSG, access_token=token))
    assert asked == [1] and result.appended is None          # (Gmail files its own copy)
    assert sink.messages == [("a@example.com", "a@example.com", ["b@example.org"], MSG)]


def test_oauth2_account_without_usable_settings_is_an_auth_error(sink, accounts):
    account = accounts.add(owner="jane", auth="oauth2", oauth_provider="google", login="a@example.com", imap_host="imap.gmail.com",
                           imap_port=993, smtp_host="127.0.0.1", smtp_port=sink.port, smtp_tls="none", secret={})
    with pytest.raises(SendError) as e:
        asyncio.run(send(accounts, account, MSG))
    assert e.value.step == "auth" and "no OAuth2 access token" in str(e.value) and sink.messages == []


def test_local_account_logs_in_as_the_service_acting_as_the_user(sink, accounts, tmp_path):
    sink.service_secret = ServiceIdentity(str(tmp_path)).secret().encode()
    account = accounts.add(kind="local", auth="service", owner="jane", login="jane", imap_host="127.0.0.1",
                           imap_port=1, imap_tls="none", smtp_host="127.0.0.1", smtp_port=sink.port, smtp_tls="none")
    result = asyncio.run(send(accounts, account, MSG))
    assert sink.logins == [("PLAIN", "jane", SERVICE_NAME, sink.service_secret.decode())]
    assert sink.messages[0][0] == "jane"
    assert "no copy filed" in result.sent_note and result.appended is None     # (no IMAP on port 1)


def test_local_accounts_without_smtp_submit_to_this_servers_submission_port(accounts):
    config = Config(data_dir=accounts.data_dir, submission_host="0.0.0.0", submission_port=1587)
    accounts.config = config
    account = accounts.add(kind="local", auth="service", owner="jane", login="jane", imap_host="127.0.0.1",
                           imap_port=143, imap_tls="none")
    endpoint, credentials = submission_route(accounts, account)
    assert (endpoint.host, endpoint.port, endpoint.tls, endpoint.verify) == ("127.0.0.1", 1587, "opportunistic", False)
    assert (credentials.login, credentials.authzid) == (SERVICE_NAME, "jane")
    accounts.config = Config(data_dir=accounts.data_dir, submission_port=None, submission_tls_port=1465)
    endpoint, _ = submission_route(accounts, account)
    assert (endpoint.port, endpoint.tls) == (1465, "implicit")


def test_who_files_the_sent_copy(accounts):
    from posthouse.send.sent import files_sent_itself
    local = accounts.add(kind="local", auth="service", owner="jane", login="jane", imap_host="127.0.0.1",
                         imap_port=143, imap_tls="none", smtp_host="127.0.0.1", smtp_port=587, smtp_tls="none")
    assert files_sent_itself(accounts, local) is None
    accounts.config = Config(data_dir=accounts.data_dir, submission_save_sent=True)
    assert "submission_save_sent" in files_sent_itself(accounts, local)
    for host, itself in (("imap.gmail.com", True), ("imap.googlemail.com", True), ("gmail.com", True),
                         ("notgmail.com", False), ("imap.fastmail.com", False)):
        account = accounts.add(owner="jane", login="j", imap_host=host, imap_port=993, secret={"password": "p"})
        assert bool(files_sent_itself(accounts, account)) is itself, host
