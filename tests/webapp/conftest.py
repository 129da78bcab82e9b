"""A real `posthouse serve` (IMAP, LMTP and the web app on loopback ports, the
tracker off) with users alice and bob, each with their Posthouse mailbox
connected (`posthouse account add USER --local`), and Debian's Chromium
driven by Playwright (skipped when either is missing)."""
from __future__ import annotations

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

CHROMIUM = "/usr/bin/chromium"
DOMAIN = "example.test"
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class WebServer:
    url: str
    config: str
    imap_port: int
    lmtp_port: int
    tmp: str

    def deliver(self, to: str, message: bytes) -> None:
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=30) as lmtp:
            lmtp.sendmail("sender@elsewhere.example", [f"{to}@{DOMAIN}"], message)


def _cli(config: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "posthouse", "--config", config, *args], input=stdin,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def start_server(tmp: str, *, tracker: bool | str = False, extra_config: str = "",
                 web: str = "") -> tuple[WebServer, subprocess.Popen, object]:
    """As _start_server, again on other ports if a port it picked was taken
    meanwhile (another test process picks free ports too)."""
    for attempt in range(3):
        try:
            return _start_server(tmp, tracker=tracker, extra_config=extra_config, web=web)
        except _PortTaken:
            if attempt == 2:
                raise
            shutil.rmtree(os.path.join(tmp, "data"), ignore_errors=True)     # (its users are made again)


class _PortTaken(AssertionError):
    pass


def _start_server(tmp: str, *, tracker: bool | str = False, extra_config: str = "",
                  web: str = "") -> tuple[WebServer, subprocess.Popen, object]:
    """tracker: True: the activity tracker on (following the accounts every
    second); a string: the [tracker] section's body; extra_config: more TOML
    sections, appended; web: more keys for the [web] section."""
    if tracker is True:
        tracker = "enabled = true\npoll_interval = 1\nsweep_interval = 2\n"
    elif not tracker:
        tracker = "enabled = false\n"
    web_port, imap_port, lmtp_port = free_port(), free_port(), free_port()
    config = os.path.join(tmp, "posthouse.toml")
    with open(config, "w") as f:
        f.write(f'data_dir = "{tmp}/data"\nfsync = false\nparse_processes = 0\nstore_process = false\n'
                f'failure_delay = 0.2\ndomains = ["{DOMAIN}"]\n'
                f'[imap]\nport = {imap_port}\ntls_port = false\n[lmtp]\nport = {lmtp_port}\n[smtp]\nport = false\n'
                '[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
                f'[submission]\nport = false\ntls_port = false\n[web]\nport = {web_port}\n{web}[tracker]\n{tracker}'
                + extra_config)
    for name, password in PASSWORDS.items():
        _cli(config, "user", "add", name, "--password-stdin", stdin=password + "\n")
    log = open(os.path.join(tmp, "serve.log"), "w+")
    proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", config, "serve"],
                            stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 60
        while "web listening" not in open(log.name).read():
            if proc.poll() is not None and "already in use" in open(log.name).read():
                raise _PortTaken(open(log.name).read())
            assert proc.poll() is None and time.monotonic() < deadline, open(log.name).read()
            time.sleep(0.1)
        for name in PASSWORDS:
            _cli(config, "account", "add", name, "--local")
    except BaseException:
        stop_server(proc, log)
        raise
    return WebServer(f"http://127.0.0.1:{web_port}", config, imap_port, lmtp_port, tmp), proc, log


def stop_server(proc, log) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("webapp"))
    server, proc, log = start_server(tmp)
    yield server
    stop_server(proc, log)
    text = open(log.name).read()
    assert "Traceback" not in text, text[-5000:]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip("Debian's chromium is not installed")
    executable = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Exception as e:      # a chromium that can't start here: skip, don't fail
            pytest.skip(f"chromium could not be started: {e}")
        yield browser
        browser.close()


def serve_again(server: WebServer) -> tuple[subprocess.Popen, object]:
    """`posthouse serve` once more on a stopped server's config and data (a restart)."""
    log = open(os.path.join(server.tmp, "serve.log"), "a+")
    start = log.tell()
    proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", server.config, "serve"],
                            stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 60
    while True:
        with open(log.name) as f:
            f.seek(start)
            if "web listening" in f.read():
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc, log)
            raise AssertionError(open(log.name).read()[-3000:])
        time.sleep(0.1)
    return proc, log


# The tracker on, with short timings: live updates fed by its facts.
LIVE_TRACKER = "enabled = true\npoll_interval = 0.5\nsweep_interval = 3\n"


@pytest.fixture(scope="module")
def live_webserver(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("webapp-live"))
    server, proc, log = start_server(tmp, tracker=LIVE_TRACKER)
    yield server
    stop_server(proc, log)
    text = open(log.name).read()
    assert "Traceback" not in text, text[-5000:]
