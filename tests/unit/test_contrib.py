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
