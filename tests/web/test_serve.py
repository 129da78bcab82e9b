"""`posthouse serve` starts the web app after the mail listeners, says where
("web listening on http://HOST:PORT", its last line), answers on it, and
SIGTERM still stops the whole server cleanly; a port in use is one clear line."""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp_path, web_port: int, extra: str = "") -> str:
    path = tmp_path / "posthouse.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\nfsync = false\nparse_processes = 0\nstore_process = false\n'
                    f'{extra}'
                    f'[imap]\nport = {_free_port()}\ntls_port = false\n[lmtp]\nport = false\n[smtp]\nport = false\n'
                    '[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
                    f'[submission]\nport = false\ntls_port = false\n[web]\nport = {web_port}\n')
    return str(path)


def _posthouse(config, *args, **kw):
    return subprocess.run([sys.executable, "-m", "posthouse", "--config", config, *args], capture_output=True,
                          text=True, timeout=60, **kw)


def test_serve_runs_the_api_and_sigterm_stops_it(tmp_path, capsys, monkeypatch):
    from posthouse.cli import main
    port = _free_port()
    config = _config(tmp_path, port)
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert main(["--config", config, "user", "add", "dora", "--password-stdin"]) == 0
    capsys.readouterr()
    assert main(["--config", config, "token", "create", "dora"]) == 0
    token = capsys.readouterr().out.strip()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", config, "serve"],
                            stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 30
        while "web listening" not in (tmp_path / "serve.log").read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        lines = [line for line in (tmp_path / "serve.log").read_text().splitlines() if " INFO " in line]
        assert lines[-1].endswith(f"web listening on http://127.0.0.1:{port}"), lines
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            assert c.get("/api/v1/openapi.json").status_code == 200
            refused = c.get("/api/v1/accounts")
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            r = c.get("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"})
            # (200 once the account store is there; 503 in a build without it: never 401, never 500)
            assert r.status_code in (200, 503), r.text
            # A user deleted since: their tokens are refused.
            assert main(["--config", config, "user", "del", "dora"]) == 0
            r = c.get("/api/v1/accounts", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401 and "no longer exists" in r.json()["error"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        text = (tmp_path / "serve.log").read_text()
        assert "posthouse stopped (SIGTERM)" in text and "Traceback" not in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_a_web_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = _posthouse(_config(tmp_path, port), "serve")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("posthouse:")]
    assert len(errors) == 1 and f"127.0.0.1 port {port}" in errors[0] and "in use" in errors[0] \
        and "[web]" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_database_that_cant_be_used_is_one_clear_line(tmp_path):
    # (a PostgreSQL database_url holds the mail store and the CRM: the store is opened first)
    dead = _free_port()     # nothing listens there
    done = _posthouse(_config(tmp_path, _free_port(), f'database_url = "postgresql://nobody@127.0.0.1:{dead}/crm"\n'),
                      "serve")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line or line.startswith("posthouse:")]
    assert len(errors) == 1 and "database" in errors[0] and f"port {dead}" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_crm_database_that_cant_be_used_is_one_clear_line(tmp_path):
    # The mail store on SQLite, the CRM in a database that can't be opened.
    done = _posthouse(_config(tmp_path, _free_port(), 'database_url = "sqlite:////nonexistent-dir/crm.sqlite3"\n'),
                      "serve")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("posthouse:")]
    assert len(errors) == 1 and "CRM database" in errors[0] and "database_url" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
