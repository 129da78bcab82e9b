"""`posthouse` run as people run it: a subprocess, from a shell. Whatever
goes wrong is one line that says what and what to do, never a traceback;
Ctrl-C and SIGTERM stop it with one line; mail moves between local users
with the default domains."""
from __future__ import annotations

import imaplib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time

import pytest

from posthouse.cli import build_parser, main as cli_main

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))
OFF = ('[lmtp]\nport = false\n[smtp]\nport = false\n[pop3]\nport = false\ntls_port = false\n'
       '[managesieve]\nport = false\n[web]\nport = false\n')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path) -> dict:
    """No config file or data directory of the machine's, whatever runs the tests."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
               XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_DATA_HOME=str(tmp_path / "xdg-data"),
               PYTHONUNBUFFERED="1")
    env.pop("POSTHOUSE_CONFIG", None)
    env.pop("POSTHOUSE_DATA_DIR", None)
    return env


def _run(tmp_path, *args, stdin=subprocess.DEVNULL, input=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "posthouse", *args], env=_env(tmp_path), stdin=None if input else stdin,
                          input=input, capture_output=True, text=True, timeout=60, cwd=cwd or tmp_path)


def _config(tmp_path, imap_port: int, extra: str = "", submission: str = "port = false\ntls_port = false\n") -> str:
    path = tmp_path / "posthouse.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\nfsync = false\nparse_processes = 1\n{extra}'
                    f'[imap]\nport = {imap_port}\ntls_port = false\n[submission]\n{submission}' + OFF)
    return str(path)


class Server:
    """`posthouse serve` in a session of its own (as from a terminal: Ctrl-C
    goes to its whole process group), its stderr collected line by line."""

    def __init__(self, tmp_path, config: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", config, "serve"],
                                     env=_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(60):
            self.kill()
            raise AssertionError("the server did not start: " + "".join(self.lines))

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if "mail domains:" in line:     # the last line before it waits for a signal
                self._ready.set()
        self._ready.set()

    def stop(self, sig, group: bool = True) -> int:
        (os.killpg if group else os.kill)(self.proc.pid, sig)
        try:
            code = self.proc.wait(timeout=60)
        finally:
            self.kill()
        self._reader.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_with_one_line(tmp_path, sig):
    server = Server(tmp_path, _config(tmp_path, _free_port()))
    assert server.stop(sig) == 0
    out = "".join(server.lines)
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    stopped = [line for line in server.lines if "stopped" in line]
    assert len(stopped) == 1 and sig.name in stopped[0], out
    assert "data directory" in server.lines[0] and str(tmp_path / "data") in server.lines[0], out


def test_a_port_in_use_is_one_line_and_status_1(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = _run(tmp_path, "--config", _config(tmp_path, port), "serve")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert f"port {port}" in lines[0] and "in use" in lines[0] and "[imap]" in lines[0]


def test_a_missing_config_file_is_one_line(tmp_path):
    done = _run(tmp_path, "--config", str(tmp_path / "nowhere.toml"), "serve")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "nowhere.toml" in lines[0], done.stderr


def test_a_data_directory_that_cant_be_made_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    done = _run(tmp_path, "--data-dir", str(tmp_path / "a-file" / "data"), "serve")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "data directory" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_user_add_without_a_terminal_says_to_use_password_stdin(tmp_path):
    done = _run(tmp_path, "--data-dir", str(tmp_path / "data"), "user", "add", "x")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and "--password-stdin" in lines[0], done.stderr


def test_a_bad_config_names_every_key_and_does_not_start(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('max_message_size = "ten megs"\nfsync = "yes"\n[imap]\nprot = 143\ntls_port = 99999\n')
    for args in (("--config", str(path), "serve"), ("config", "check", str(path))):
        done = _run(tmp_path, *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 4, done.stderr
        assert "max_message_size" in lines[1] and "fsync" in lines[2] and "[imap] tls_port" in lines[3]
        assert "[imap] prot (did you mean port?)" in lines[0]


def test_every_command_finds_the_same_store_from_any_directory(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    added = _run(tmp_path, "user", "add", "carol", "--password-stdin", input="pw\n", cwd=tmp_path / "a")
    store = str(tmp_path / "xdg-data" / "posthouse")
    assert added.returncode == 0 and store in added.stdout, added
    listed = _run(tmp_path, "user", "list", cwd=tmp_path / "b")
    assert listed.stdout.split() == ["carol"], listed
    assert not (tmp_path / "a" / "posthouse-data").exists()


def test_version_and_help_for_every_command_and_option(capsys):
    assert subprocess.run([sys.executable, "-m", "posthouse", "--version"], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=SRC)).stdout.startswith("posthouse ")
    import argparse

    def walk(parser, path):
        yield parser, path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, path + [name])

    seen = 0
    for parser, path in walk(build_parser(), []):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"posthouse {' '.join(path)}: {action.dest} has no help text"
        with pytest.raises(SystemExit) as exited:
            cli_main(path + ["--help"])
        assert exited.value.code == 0
        assert "usage: posthouse" in capsys.readouterr().out
        seen += 1
    assert seen >= 6


def test_user_names_that_mail_could_not_reach_are_refused(tmp_path):
    data = str(tmp_path / "data")
    for bad in ("bad name@x", "tab\there", "a@elsewhere.example", "@localhost", "ctl\x01"):
        done = _run(tmp_path, "--data-dir", data, "user", "add", bad, "--password-stdin", input="pw\n")
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, (bad, done.stderr)
    done = _run(tmp_path, "--data-dir", data, "user", "add", "dora@localhost", "--password-stdin", input="pw\n")
    assert done.returncode == 0, done.stderr
    assert _run(tmp_path, "--data-dir", data, "user", "list").stdout.split() == ["dora@localhost"]


def test_two_local_users_write_to_each_other_with_no_domains_configured(tmp_path):
    imap_port, sub_port = _free_port(), _free_port()
    config = _config(tmp_path, imap_port, submission=f"port = {sub_port}\ntls_port = false\n")
    for name in ("alice", "bob"):
        assert _run(tmp_path, "--config", config, "user", "add", name, "--password-stdin",
                    input="s3cret\n").returncode == 0
    server = Server(tmp_path, config)
    try:
        with smtplib.SMTP("127.0.0.1", sub_port, timeout=30) as smtp:
            smtp.login("alice", "s3cret")
            smtp.sendmail("alice@localhost", ["bob@localhost"],
                          "From: alice@localhost\r\nTo: bob@localhost\r\nSubject: hello bob\r\n\r\nHi!\r\n")
        imap = imaplib.IMAP4("127.0.0.1", imap_port, timeout=30)
        try:
            imap.login("bob", "s3cret")
            imap.select("INBOX")
            deadline = time.monotonic() + 30
            while True:
                found = imap.search(None, "SUBJECT", "hello")[1][0].split()
                if found or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert found, "bob has no mail from alice"
            assert b"Hi!" in imap.fetch(found[0], "(BODY.PEEK[TEXT])")[1][0][1]
        finally:
            imap.logout()
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0 and "Traceback" not in "".join(server.lines), "".join(server.lines)
