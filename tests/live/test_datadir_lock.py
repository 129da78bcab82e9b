"""One server per data directory: a second `posthouse serve` on it refuses to
start, naming the first one's pid; admin commands still work beside it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from .test_durability import _free_port, _start


def _config(path: str, data_dir: str, port: int, lmtp_port: int) -> str:
    with open(path, "w") as f:
        f.write(f'data_dir = "{data_dir}"\nfsync = false\nparse_processes = 0\n'
                f'[imap]\nport = {port}\ntls_port = false\n[lmtp]\nport = {lmtp_port}\n[smtp]\nport = false\n'
                '[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
                '[submission]\nport = false\ntls_port = false\n[web]\nport = false\n')
    return path


def test_a_second_server_on_one_data_directory_refuses_to_start(tmp_path):
    data = str(tmp_path / "data")
    subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", data, "user", "add", "one",
                    "--password-stdin"], input=b"pw\n", check=True, stdout=subprocess.DEVNULL)
    port = _free_port()
    first = _start(data, port, _free_port(), _free_port())
    second = None
    try:
        other = _config(str(tmp_path / "other.toml"), data, _free_port(), _free_port())
        refused = subprocess.run([sys.executable, "-m", "posthouse", "--config", other, "serve"],
                                 capture_output=True, timeout=60)
        assert refused.returncode != 0
        lines = refused.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and data in lines[0], lines
        assert first.poll() is None

        # Admin commands open the store beside the running server.
        added = subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", data, "user", "add", "two",
                                "--password-stdin"], input=b"pw\n", capture_output=True, timeout=60)
        assert added.returncode == 0, added.stderr
        listed = subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", data, "user", "list"],
                                capture_output=True, timeout=60)
        assert b"two" in listed.stdout

        # The lock ends with its holder, however it ends.
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", other, "serve"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            second.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        assert second.poll() is None, second.stderr.read()
        with open(os.path.join(data, "serve.lock")) as f:
            assert f.read().strip() == str(second.pid)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
