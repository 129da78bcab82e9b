"""Tokens: every /api/v1 route wants one; `posthouse token create` prints one
that works; a revoked or made-up one is refused; only its hash is stored."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import httpx
from sqlalchemy import select

from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade
from posthouse.web.app import create_app
from posthouse.web.tables import api_tokens
from posthouse.web.tokens import TokenStore, hash_token

from .conftest import ServedApp
from .fakes import FakeAccount, FakeAccounts, FakeCrm

ROUTES = [("GET", "/api/v1/contacts"), ("POST", "/api/v1/contacts"), ("GET", "/api/v1/contacts/1"),
          ("PATCH", "/api/v1/contacts/1"), ("DELETE", "/api/v1/contacts/1"), ("POST", "/api/v1/contacts/1/merge"),
          ("GET", "/api/v1/contacts/1/activities"), ("GET", "/api/v1/companies"), ("POST", "/api/v1/companies"),
          ("GET", "/api/v1/companies/1"), ("GET", "/api/v1/activities"), ("GET", "/api/v1/activities/1"),
          ("GET", "/api/v1/activities/1/message"), ("POST", "/api/v1/activities/1/sender-contact"),
          ("GET", "/api/v1/activities/1/attachments/0"), ("POST", "/api/v1/activities/1/attachments/0/document"),
          ("GET", "/api/v1/accounts"), ("GET", "/api/v1/accounts/1"),
          ("GET", "/api/v1/documents?q=x"), ("GET", "/api/v1/documents/1"), ("GET", "/api/v1/documents/1/content"),
          ("DELETE", "/api/v1/documents/1"), ("POST", "/api/v1/contacts/1/documents"),
          ("GET", "/api/v1/contacts/1/documents"), ("POST", "/api/v1/send"), ("POST", "/api/v1/classify"),
          ("GET", "/api/v1/private"), ("POST", "/api/v1/private"), ("DELETE", "/api/v1/private")]
ROUTES += [("GET", "/api/v1/webhooks"), ("POST", "/api/v1/webhooks"), ("GET", "/api/v1/webhooks/1"),
           ("DELETE", "/api/v1/webhooks/1"), ("GET", "/api/v1/webhooks/1/deliveries")]
ROUTES += [("GET", "/api/v1/campaigns"), ("POST", "/api/v1/campaigns"), ("GET", "/api/v1/campaigns/1"),
           ("POST", "/api/v1/campaigns/1/start")]


def test_every_route_wants_a_token(api):
    # (the list above is every route the OpenAPI document describes)
    paths = {(m.upper(), path) for path, ops in api.app.openapi()["paths"].items() for m in ops}
    assert paths == {(m, p.split("?")[0].replace("/1", "/{id}").replace("/0", "/{index}")) for m, p in ROUTES}
    for method, path in ROUTES:
        for headers in ({}, {"Authorization": "Bearer ph_made-up"}, {"Authorization": "Basic YWxpY2U6cHc="},
                        {"Authorization": "Bearer"}):
            r = api.anonymous.request(method, path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer"), (method, path)
            assert "error" in r.json()


def test_only_the_tokens_hash_is_stored(api):
    info, token = api.tokens.create("alice", "hash check")
    with api.engine.connect() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == info.id)).one()
    assert row.token_hash == hash_token(token) and len(row.token_hash) == 64
    assert token not in repr(tuple(row))
    assert api.client(token).get("/api/v1/accounts").status_code == 200
    assert api.tokens.list("alice")[-1].last_used_at is not None


def test_a_revoked_token_is_refused(api):
    info, token = api.tokens.create("alice", "to revoke")
    c = api.client(token)
    try:
        assert c.get("/api/v1/accounts").status_code == 200
        api.tokens.revoke(info.id)
        r = c.get("/api/v1/accounts")
        assert r.status_code == 401 and "revoked" in r.json()["error"]
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    finally:
        c.close()


def _posthouse(data_dir, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", str(data_dir), *args],
                          input=stdin, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, POSTHOUSE_CONFIG=""))


def _in_process(capsys, data_dir, *args) -> tuple[int, str, str]:
    from posthouse.cli import main
    capsys.readouterr()
    code = main(["--data-dir", str(data_dir), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_token_create_prints_a_token_that_works_and_revoke_ends_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("POSTHOUSE_CONFIG", raising=False)
    data = tmp_path / "data"
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert _in_process(capsys, data, "user", "add", "carol", "--password-stdin")[0] == 0
    made = _posthouse(data, "token", "create", "carol", "--name", "ci")     # as an outside check runs it
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and token.startswith("ph_") and len(token) > 40     # the token, only
    code, out, err = _in_process(capsys, data, "token", "create", "nobody")
    assert code == 1 and out == "" and "no user nobody" in err
    code, out, err = _in_process(capsys, data, "token", "list", "carol")
    assert code == 0 and "\tcarol\tci\t" in out and token not in out
    token_id = out.split("\t")[0]

    engine = make_engine(None, str(data))
    upgrade(engine)
    served = ServedApp(create_app(None, engine, FakeCrm(), FakeAccounts(FakeAccount(5, "carol")),
                                  tokens=TokenStore(engine)))
    try:
        with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"}) as c:
            r = c.get("/api/v1/accounts")
            assert r.status_code == 200 and [a["id"] for a in r.json()] == [5]
            code, out, _err = _in_process(capsys, data, "token", "revoke", token_id)
            assert code == 0 and "revoked" in out
            assert c.get("/api/v1/accounts").status_code == 401
        assert _in_process(capsys, data, "token", "revoke", "424242")[0] == 1
        assert _in_process(capsys, data, "token", "revoke", "x")[0] == 2
    finally:
        served.stop()
        engine.dispose()
