"""contrib/: the systemd unit passes `systemd-analyze verify`, and the example
config for it loads with the project's loader, on the standard ports."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from posthouse.config import Config

CONTRIB = os.path.join(os.path.dirname(__file__), "..", "..", "contrib")


def test_example_config_loads_with_the_standard_ports():
    cfg = Config.load(os.path.join(CONTRIB, "posthouse.toml"))
    assert cfg.data_dir == "/var/lib/posthouse"
    assert (cfg.imap_port, cfg.imap_tls_port, cfg.pop3_port, cfg.pop3_tls_port) == (143, 993, 110, 995)
    assert (cfg.submission_port, cfg.submission_tls_port, cfg.smtp_port, cfg.lmtp_port) == (587, 465, 25, 24)
    assert cfg.managesieve_port == 4190 and cfg.lmtp_socket == "/run/posthouse/lmtp"
    assert cfg.log_format in ("text", "json")


def _unit() -> str:
    with open(os.path.join(CONTRIB, "posthouse.service")) as f:
        return f.read()


def test_unit_runs_as_its_user_with_the_data_dir_and_hardening():
    unit = _unit()
    lines = {line.strip() for line in unit.splitlines()}
    for wanted in ("User=posthouse", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes",
                   "ProtectSystem=strict", "ReadWritePaths=/var/lib/posthouse", "StateDirectory=posthouse",
                   "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "ProtectKernelTunables=yes",
                   "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
                   "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "LockPersonality=yes",
                   "MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service", "Restart=on-failure",
                   "KillSignal=SIGTERM", "ExecStart=/usr/bin/posthouse --config /etc/posthouse/posthouse.toml serve"):
        assert wanted in lines, wanted
    assert any(line.startswith("TimeoutStopSec=") for line in lines)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify also wants ExecStart's program to exist: here, this Python running posthouse.
    unit = _unit().replace("/usr/bin/posthouse", f"{sys.executable} -m posthouse")
    path = tmp_path / "posthouse.service"
    path.write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "posthouse.service" not in r.stderr, r.stdout + r.stderr


_MDWE_START = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:     # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux 6.3)
    sys.exit(77)
os.execv(sys.executable, [sys.executable, "-m", "posthouse"] + sys.argv[1:])
"""


def test_server_runs_without_writable_executable_memory(tmp_path):
    """MemoryDenyWriteExecute=yes, as the kernel's PR_SET_MDWE has it (inherited
    by the store process and the parse workers): TLS with the key exchange
    groups set through ctypes, delivery, parsing, login, all still work."""
    import imaplib
    import smtplib
    import ssl
    import time

    from .test_durability import _free_port

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_MDWE is Linux's")
    data = tmp_path / "data"
    subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", str(data), "user", "add", "ann",
                    "--password-stdin"], input=b"pw\n", check=True, stdout=subprocess.DEVNULL)
    tls_port, lmtp_port = _free_port(), _free_port()
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'data_dir = "{data}"\nfsync = false\nparse_processes = 1\ndelivery_journal = false\n'
                   f'[imap]\nport = {_free_port()}\ntls_port = {tls_port}\n[lmtp]\nport = {lmtp_port}\n[smtp]\nport = false\n'
                   '[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
                   '[submission]\nport = false\ntls_port = false\n[web]\nport = false\n')
    proc = subprocess.Popen([sys.executable, "-c", _MDWE_START, "--config", str(cfg), "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                lmtp_client = smtplib.LMTP("127.0.0.1", lmtp_port, timeout=5)
                break
            except OSError:
                time.sleep(0.1)
        if proc.poll() == 77:
            pytest.skip("this kernel has no PR_SET_MDWE")
        assert proc.poll() is None, proc.stderr.read().decode()
        with lmtp_client as lmtp:
            assert lmtp.sendmail("a@example.org", ["ann"], b"Subject: mdwe\r\n\r\nbody\r\n") == {}
        ctx = ssl.create_default_context(cafile=str(data / "tls" / "cert.pem"))
        imap = imaplib.IMAP4_SSL("127.0.0.1", tls_port, ssl_context=ctx)
        imap.login("ann", "pw")
        imap.select("INBOX")
        assert b"Subject: mdwe" in imap.fetch("1", "(BODY.PEEK[HEADER])")[1][0][1]
        imap.logout()
    finally:
        proc.terminate()
        proc.wait(30)
