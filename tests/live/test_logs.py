"""Logs a person can read: one line per delivery, one per login and per
logout on every protocol, none of aiosmtpd's per-command INFO lines, no
deprecation warning at a submission login; `log_format = "json"` lines parse."""
from __future__ import annotations

import imaplib
import json
import logging
import os
import poplib
import smtplib
import socket
import subprocess
import sys
import time

import pytest

from posthouse.logfmt import JsonFormatter

from ..conftest import RunningServer
from .test_durability import _free_port

N = 5


def _message(i: int, sender: str = "a@example.org") -> bytes:
    return (f"From: {sender}\r\nTo: b@example.com\r\nSubject: log {i}\r\n"
            f"Message-ID: <log{i}@example.org>\r\n\r\nbody {i}\r\n").encode()


def _wait_for(predicate, timeout: float = 15.0) -> None:
    """Logout lines come once the server has seen the connection end: poll, bounded."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def _events(records, event: str, protocol: str | None = None) -> list:
    out = []
    for r in records:
        fields = getattr(r, "fields", None) or {}
        if fields.get("event") == event and (protocol is None or fields.get("protocol") == protocol):
            out.append(fields)
    return out


@pytest.fixture
def logged(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    srv = RunningServer(str(tmp_path / "data"))
    try:
        yield srv, caplog
    finally:
        srv.stop()


def test_one_line_per_delivery_login_and_logout(logged):
    srv, caplog = logged
    name, password = srv.add_user()
    with smtplib.LMTP(srv.host, srv.lmtp_port, timeout=10) as lmtp:
        for i in range(N):
            lmtp.sendmail("a@example.org", [name], _message(i))

    imap = imaplib.IMAP4(srv.host, srv.port)
    imap.login(name, password)
    imap.logout()
    with pytest.raises(imaplib.IMAP4.error):
        bad = imaplib.IMAP4(srv.host, srv.port)
        try:
            bad.login(name, "wrong")
        finally:
            bad.logout()

    pop = poplib.POP3(srv.host, srv.pop3_port, timeout=10)
    pop.user(name)
    pop.pass_(password)
    pop.quit()

    with smtplib.SMTP(srv.host, srv.submission_port, timeout=10) as sub:
        sub.login(name, password)
        sub.sendmail(name, [f"{name}@example.com"], _message(N, f"{name}@example.com"))

    sieve = socket.create_connection((srv.host, srv.sieve_port), timeout=10)
    f = sieve.makefile("rb")
    while not f.readline().startswith(b"OK"):
        pass
    import base64
    token = base64.b64encode(f"\0{name}\0{password}".encode()).decode()
    sieve.sendall(f'AUTHENTICATE "PLAIN" "{token}"\r\nLOGOUT\r\n'.encode())
    assert f.readline().startswith(b"OK")
    f.readline()
    sieve.close()

    protocols = ("imap", "pop3", "submission", "managesieve")
    _wait_for(lambda: all(_events(caplog.records, "logout", p) for p in protocols))
    records = list(caplog.records)

    deliveries = _events(records, "delivery")
    assert len(deliveries) == N + 1, [r.getMessage() for r in records]
    lmtp_lines = deliveries[:N]
    for d in lmtp_lines:
        assert d["to"] == name and d["from"] == "a@example.org" and d["size"] > 0 and d["ms"] >= 0
        assert d["result"] in (f"{name}:accepted", f"{name}:delivered") and len(d["id"]) == 16
    for p in protocols:
        logins, logouts = _events(records, "login", p), _events(records, "logout", p)
        assert len(logins) == 1 and len(logouts) == 1, (p, [r.getMessage() for r in records])
        assert logins[0]["user"] == name and logins[0]["peer"].startswith("127.0.0.1:") and logins[0]["tls"] == "no"
        assert logouts[0]["user"] == name and logouts[0]["seconds"] >= 0
    failed = _events(records, "login-failed")
    assert [(x["protocol"], x["user"]) for x in failed] == [("imap", name)]

    # aiosmtpd's own chatter stays out; no deprecation warning (its login_data setter's).
    assert not [r for r in records if r.name == "mail.log" and r.levelno < logging.WARNING]
    assert not [r for r in records if "deprecat" in r.getMessage().lower()], \
        [r.getMessage() for r in records if "deprecat" in r.getMessage().lower()]

    # The text line says it all; the JSON form of the same record parses, with the fields.
    line = next(r for r in records if getattr(r, "fields", {}).get("event") == "delivery").getMessage()
    assert line.startswith("delivery id=") and f"to={name}" in line and " ms=" in line
    obj = json.loads(JsonFormatter().format(next(r for r in records if getattr(r, "fields", {}).get("event") == "login")))
    assert obj["level"] == "INFO" and obj["logger"] == "posthouse.login" and obj["user"] == name
    assert obj["message"].startswith("login ") and "time" in obj


def test_json_log_format_from_the_config(tmp_path):
    """`posthouse serve` with log_format = "json": every line of its log is one JSON object."""
    data = str(tmp_path / "data")
    subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", data, "user", "add", "ann",
                    "--password-stdin"], input=b"pw\n", check=True, stdout=subprocess.DEVNULL)
    port, lmtp_port = _free_port(), _free_port()
    cfg = tmp_path / "posthouse.toml"
    cfg.write_text(f'data_dir = "{data}"\nfsync = false\nparse_processes = 0\nlog_format = "json"\n'
                   f'[imap]\nport = {port}\ntls_port = false\n[lmtp]\nport = {lmtp_port}\n[smtp]\nport = false\n'
                   '[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
                   '[submission]\nport = false\ntls_port = false\n[web]\nport = false\n')
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", str(cfg), "serve"],
                                env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.DEVNULL, stderr=err)
    try:
        _wait_for(lambda: b"IMAP listening" in log_path.read_bytes() or proc.poll() is not None, 30)
        with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=10) as lmtp:
            for i in range(3):
                lmtp.sendmail("a@example.org", ["ann"], _message(i))
        imap = imaplib.IMAP4("127.0.0.1", port)
        imap.login("ann", "pw")
        imap.logout()
        _wait_for(lambda: b'"logout"' in log_path.read_bytes())
    finally:
        proc.terminate()
        proc.wait(30)
    lines = log_path.read_text().splitlines()
    objects = [json.loads(line) for line in lines]      # every line parses
    assert all({"time", "level", "logger", "message"} <= set(o) for o in objects)
    events = [o.get("event") for o in objects]
    assert events.count("delivery") == 3 and events.count("login") == 1 and events.count("logout") == 1, lines
    assert not [o for o in objects if o["logger"] == "mail.log"], lines
