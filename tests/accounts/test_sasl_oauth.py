"""SASL initial responses against the RFC and provider examples, and OAuth2
token refresh against a small token endpoint on 127.0.0.1 (http.server)."""
from __future__ import annotations

import asyncio
import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from posthouse.accounts import oauth
from posthouse.accounts.oauth import OAuthError, access_token, provider_settings
from posthouse.accounts.sasl import oauth_error, oauthbearer, plain, xoauth2
from posthouse.accounts.store import AccountStore
from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade

# RFC 7628 4.1 (the base64 lines joined)
RFC7628_IR = ("bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRj"
              "Mk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB")
# RFC 7628 4.3: the server's error challenge
RFC7628_ERROR = ("eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJo"
                 "dHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=")
# Google's XOAUTH2 documentation example
GOOGLE_XOAUTH2 = ("dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZ"
                  "Mjl0Q2cBAQ==")


def test_oauthbearer_rfc7628_example():
    ir = oauthbearer("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143)
    assert base64.b64encode(ir).decode() == RFC7628_IR


def test_oauthbearer_escapes_gs2_name():
    assert oauthbearer("a,b=c", "t").startswith(b"n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01")


def test_xoauth2_google_example():
    ir = xoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert base64.b64encode(ir).decode() == GOOGLE_XOAUTH2


def test_plain_with_authzid():
    assert plain("svc", "pw", "alice") == b"alice\0svc\0pw"
    assert plain("alice", "pw") == b"\0alice\0pw"
    with pytest.raises(ValueError):
        plain("a\0b", "pw")
    with pytest.raises(ValueError):
        xoauth2("a\x01", "t")


def test_oauth_error_challenge():
    assert oauth_error(RFC7628_ERROR.encode())["status"] == "invalid_token"
    assert oauth_error(b'{"status":"400"}') == {"status": "400"}
    assert oauth_error(b"garbage") == {}


# -- token refresh ------------------------------------------------------------

class TokenEndpoint:
    """A stand-in OAuth2 token endpoint: refresh_token grants, counted."""

    def __init__(self):
        self.requests: list[dict] = []
        self.valid_refresh = {"rt-1"}
        self.rotate_to: str | None = None
        self.expires_in = 3600
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = dict(urllib.parse.parse_qsl(body))
                endpoint.requests.append(form)
                if form.get("grant_type") != "refresh_token" or form.get("client_id") != "cid":
                    return self._send(400, {"error": "invalid_client"})
                if form.get("refresh_token") not in endpoint.valid_refresh:
                    return self._send(400, {"error": "invalid_grant", "error_description": "Token has been revoked."})
                answer = {"access_token": f"at-{len(endpoint.requests)}", "token_type": "Bearer",
                          "expires_in": endpoint.expires_in}
                if endpoint.rotate_to:
                    answer["refresh_token"] = endpoint.rotate_to
                    endpoint.valid_refresh = {endpoint.rotate_to}
                self._send(200, answer)

            def _send(self, status, data):
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def endpoint():
    e = TokenEndpoint()
    yield e
    e.close()


@pytest.fixture
def store(tmp_path):
    engine = make_engine(None, str(tmp_path))
    upgrade(engine)
    yield AccountStore(engine, str(tmp_path))
    engine.dispose()


def _oauth_account(store, endpoint, provider="corp", **secret):
    return store.add(owner="alice", imap_host="imap.example.net", imap_port=993, login="alice@example.net",
                     auth="oauth2", oauth_provider=provider,
                     secret={"refresh_token": "rt-1", "client_id": "cid", "client_secret": "cs",
                             "token_endpoint": endpoint.url, **secret})


def test_refresh_then_cached(store, endpoint):
    a = _oauth_account(store, endpoint)
    token, settings = asyncio.run(access_token(store, a))
    assert token == "at-1" and settings["mechanism"] == "XOAUTH2"
    assert endpoint.requests[0]["refresh_token"] == "rt-1" and endpoint.requests[0]["client_secret"] == "cs"
    token, _ = asyncio.run(access_token(store, a))
    assert token == "at-1" and len(endpoint.requests) == 1      # cached until expiry


def test_expired_token_refreshed_again(store, endpoint):
    endpoint.expires_in = 30        # under the margin: already stale
    a = _oauth_account(store, endpoint)
    assert asyncio.run(access_token(store, a))[0] == "at-1"
    assert asyncio.run(access_token(store, a))[0] == "at-2"


def test_rotated_refresh_token_stored(store, endpoint):
    endpoint.rotate_to = "rt-2"
    a = _oauth_account(store, endpoint)
    asyncio.run(access_token(store, a))
    assert store.secret(a.id)["refresh_token"] == "rt-2"
    store._tokens.clear()
    endpoint.rotate_to = None
    assert asyncio.run(access_token(store, a))[0] == "at-2"
    assert endpoint.requests[-1]["refresh_token"] == "rt-2"


def test_revoked_refresh_token_says_so(store, endpoint):
    endpoint.valid_refresh = set()
    a = _oauth_account(store, endpoint)
    with pytest.raises(OAuthError, match="invalid_grant.*revoked") as e:
        asyncio.run(access_token(store, a))
    assert e.value.permanent


def test_endpoint_down_is_not_permanent(store, endpoint):
    a = _oauth_account(store, endpoint)
    endpoint.close()
    with pytest.raises(OAuthError, match="can't refresh") as e:
        asyncio.run(access_token(store, a))
    assert not e.value.permanent


def test_provider_settings(tmp_path):
    with pytest.raises(OAuthError, match="client_id"):
        provider_settings(str(tmp_path), "google")
    s = provider_settings(str(tmp_path), "google", {"client_id": "x"})
    assert s["token_endpoint"] == "https://oauth2.googleapis.com/token" and s["scope"] == "https://mail.google.com/"
    s = provider_settings(str(tmp_path), "microsoft", {"client_id": "x"})
    assert "IMAP.AccessAsUser.All" in s["scope"] and "offline_access" in s["scope"]
    with pytest.raises(OAuthError, match="no token endpoint"):
        provider_settings(str(tmp_path), "fastmail", {"client_id": "x"})
    (tmp_path / "oauth2.toml").write_text('[corp]\ntoken_endpoint = "https://sso.corp.test/token"\n'
                                         'client_id = "c1"\nmechanism = "oauthbearer"\n')
    s = provider_settings(str(tmp_path), "corp")
    assert s["client_id"] == "c1" and s["mechanism"] == "OAUTHBEARER"
    (tmp_path / "oauth2.toml").write_text('[corp]\ntoken_endpoint = "http://sso.corp.test/token"\nclient_id = "c"\n')
    with pytest.raises(OAuthError, match="must be https"):
        provider_settings(str(tmp_path), "corp")
    (tmp_path / "oauth2.toml").write_text("[corp\n")
    with pytest.raises(OAuthError, match="can't read"):
        provider_settings(str(tmp_path), "corp")


def test_initial_response_by_mechanism():
    mech, ir = oauth.initial_response({"mechanism": "OAUTHBEARER"}, "u@x", "t", "imap.x", 993)
    assert mech == "OAUTHBEARER" and ir == b"n,a=u@x,\x01host=imap.x\x01port=993\x01auth=Bearer t\x01\x01"
    mech, ir = oauth.initial_response({"mechanism": "XOAUTH2"}, "u@x", "t", "imap.x", 993)
    assert mech == "XOAUTH2" and ir == b"user=u@x\x01auth=Bearer t\x01\x01"
