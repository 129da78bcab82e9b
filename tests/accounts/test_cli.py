"""`posthouse account` in-process against the conftest server: --local with the
service identity, a remote account behind a pinned self-signed certificate,
and each failing step refusing to save, one line per problem."""
from __future__ import annotations

import hashlib
import io
import socket
import ssl
import sys

import pytest

from posthouse.cli import main


@pytest.fixture
def cfg(server, tmp_path):
    path = tmp_path / "posthouse.toml"
    path.write_text(f'''data_dir = "{server.config.data_dir}"
domains = ["example.com", "mail.test"]
fsync = false
database_url = "sqlite:///{tmp_path}/crm.sqlite3"

[imap]
port = {server.port}
tls_port = {server.tls_port}

[submission]
port = {server.submission_port}
tls_port = {server.submission_tls_port}
''')
    return str(path)


def run(cfg, *argv, stdin: str = "", capsys=None, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["--config", cfg, "account", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def fingerprint(server) -> str:
    with open(server.config.path("tls/cert.pem")) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def test_local_add_list_status_remove(cfg, server, user, capsys, monkeypatch):
    code, out, err = run(cfg, "add", user[0], "--local", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    assert "added for " + user[0] in out and "login: " + user[0] + " ok (service)" in out
    account_id = int(out.split("account ")[1].split()[0])
    code, out, _ = run(cfg, "list", user[0], capsys=capsys)
    assert code == 0 and f"{account_id}\t{user[0]}\tlocal\t" in out and "\tactive" in out
    code, out, _ = run(cfg, "status", str(account_id), capsys=capsys)
    assert code == 0 and f"account {account_id}" in out and ": active" in out
    code, _, err = run(cfg, "add", user[0], "--local", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 1 and "already has account" in err
    code, out, _ = run(cfg, "remove", str(account_id), capsys=capsys)
    assert code == 0 and "removed" in out
    code, _, err = run(cfg, "remove", str(account_id), capsys=capsys)
    assert code == 1 and f"no account {account_id}" in err
    code, out, _ = run(cfg, "list", user[0], capsys=capsys)
    assert "no accounts" in out


def test_local_needs_a_user(cfg, capsys, monkeypatch):
    with pytest.raises(SystemExit) as e:
        run(cfg, "add", "nobody-like-this", "--local", capsys=capsys, monkeypatch=monkeypatch)
    assert "no Posthouse user 'nobody-like-this'" in str(e.value.code)


def test_remote_self_signed_needs_the_pin(cfg, server, user, capsys, monkeypatch):
    pin = fingerprint(server)
    args = ["add", user[0], "--imap", f"127.0.0.1:{server.tls_port}", "--login", user[0], "--password-stdin",
            "--since", "all", "--address", "Me@Example.org"]
    code, out, err = run(cfg, *args, stdin=user[1] + "\n", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 1 and "account not saved: tls:" in err and f"--trust-fingerprint {pin}" in err
    assert all(line.startswith("posthouse: account not saved: ") for line in err.strip().splitlines())
    code, out, _ = run(cfg, "list", user[0], capsys=capsys)
    assert "no accounts" in out
    code, out, err = run(cfg, *args, "--trust-fingerprint", ":".join(pin[i:i + 2] for i in range(0, 64, 2)),
                         stdin=user[1] + "\n", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    assert "since the beginning" in out


def test_remote_starttls_with_smtp(cfg, server, user, capsys, monkeypatch):
    code, out, err = run(cfg, "add", user[0], "--imap", f"127.0.0.1:{server.port}", "--tls", "starttls",
                         "--login", user[0], "--password-stdin", "--trust-fingerprint", fingerprint(server),
                         "--smtp", f"127.0.0.1:{server.submission_port}", "--since", "2026-01-01",
                         stdin=user[1] + "\n", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    assert "smtp: 127.0.0.1" in out and "since 2026-01-01" in out


def test_wrong_password(cfg, server, user, capsys, monkeypatch):
    code, _, err = run(cfg, "add", user[0], "--imap", f"127.0.0.1:{server.port}", "--tls", "none",
                       "--login", user[0], "--password-stdin", stdin="wrong\n", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 1 and "account not saved: login:" in err and "AUTHENTICATIONFAILED" in err


def test_closed_port_and_unknown_host(cfg, user, capsys, monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    code, _, err = run(cfg, "add", user[0], "--imap", f"127.0.0.1:{port}", "--login", "x", "--password-stdin",
                       stdin="pw\n", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 1 and "account not saved: tcp: can't connect to 127.0.0.1 port" in err
    code, _, err = run(cfg, "add", user[0], "--imap", "imap.no-such-place.invalid", "--login", "x",
                       "--password-stdin", stdin="pw\n", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 1 and "account not saved: dns: can't resolve imap.no-such-place.invalid" in err


@pytest.mark.parametrize("argv, message", [
    (["--login", "x", "--password-stdin"], "--imap HOST[:PORT] is needed"),
    (["--imap", "h:99999", "--login", "x", "--password-stdin"], "bad port"),
    (["--imap", "h", "--login", "x", "--password-stdin", "--since", "yesterday"], "--since 'yesterday'"),
    (["--imap", "h", "--login", "x", "--password-stdin", "--trust-fingerprint", "abc"], "64 hex digits"),
    (["--imap", "h", "--login", "x", "--oauth2", "fastmail", "--refresh-token-stdin", "--client-id", "c"],
     "no token endpoint"),
    (["--local", "--imap", "h"], "--local connects"),
])
def test_bad_arguments(cfg, user, capsys, monkeypatch, argv, message):
    code, _, err = run(cfg, "add", user[0], *argv, stdin="pw\n", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 2 and message in err


def test_status_of_nothing(cfg, capsys):
    code, _, err = run(cfg, "status", "424242", capsys=capsys)
    assert code == 1 and "no account 424242" in err


def test_parse_host_port():
    from posthouse.accounts.cli import parse_host_port
    assert parse_host_port("imap.example.net", 993) == ("imap.example.net", 993)
    assert parse_host_port("imap.example.net:143", 993) == ("imap.example.net", 143)
    assert parse_host_port("[::1]:993", None) == ("::1", 993)
    assert parse_host_port("::1", 993) == ("::1", 993)


def test_oauth2_refreshes_then_reports_the_servers_refusal(cfg, server, user, capsys, monkeypatch):
    """Our server offers no XOAUTH2: the refresh happens (the stand-in token
    endpoint sees it) and the login step reports the server's words."""
    from tests.accounts.standins import TokenEndpoint
    endpoint = TokenEndpoint()
    try:
        code, _, err = run(cfg, "add", user[0], "--imap", f"127.0.0.1:{server.port}", "--tls", "none",
                           "--login", user[0], "--oauth2", "corp", "--refresh-token-stdin", "--client-id", "cid",
                           "--token-endpoint", endpoint.url, stdin="rt-1\n", capsys=capsys, monkeypatch=monkeypatch)
    finally:
        endpoint.close()
    assert [r["refresh_token"] for r in endpoint.requests] == ["rt-1"]
    assert code == 1 and "account not saved: login:" in err and "Unsupported authentication mechanism" in err


def test_local_over_tls_when_plaintext_is_off(cfg, server, user, capsys, monkeypatch):
    """plaintext_auth = "never": --local goes to the implicit TLS port with
    this server's own certificate pinned."""
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write('plaintext_auth = "never"\n' + text)
    code, out, err = run(cfg, "add", user[0], "--local", capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    assert f"tls: implicit, pinned certificate, SHA-256 {fingerprint(server)}" in out
    assert f"127.0.0.1:{server.tls_port} (TLS)" in out
    assert f"smtp: 127.0.0.1 port {server.submission_tls_port} (implicit), login ok" in out


def test_status_shows_tracker_progress(cfg, server, user, capsys, monkeypatch):
    """After a real tracker has followed the account for a while, status
    shows each folder's progress from the tracker's own tables."""
    import asyncio
    import imaplib
    import time
    from posthouse.config import Config
    from posthouse.crmside import open_crm_side
    from posthouse.tracker.engine import Tracker, account_status
    with imaplib.IMAP4("127.0.0.1", server.port) as imap:
        imap.login(*user)
        for n in range(3):
            imap.append("INBOX", None, None, f"From: a@x.example\r\nSubject: {n}\r\n\r\nhi\r\n".encode())
    code, out, err = run(cfg, "add", user[0], "--local", "--since", "all", capsys=capsys, monkeypatch=monkeypatch)
    account_id = int(out.split("account ")[1].split()[0])
    side = open_crm_side(Config.load(cfg))

    async def follow():
        tracker = Tracker(side.engine, side.accounts, side.crm)
        task = asyncio.create_task(tracker.run())
        deadline = time.monotonic() + 30
        while not any(f["name"] == "INBOX" and f["backfill_done"]
                      for f in account_status(side.engine, account_id)["folders"]):
            assert time.monotonic() < deadline, "the tracker did not sync INBOX"
            await asyncio.sleep(0.1)
        await tracker.stop()
        await task
    asyncio.run(follow())
    side.close()
    code, out, _ = run(cfg, "status", str(account_id), capsys=capsys)
    assert code == 0
    assert "  INBOX: 3/3 messages, synced" in out, out
