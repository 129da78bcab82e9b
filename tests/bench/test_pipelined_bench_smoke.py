"""The pipelined benchmarks (bench/capacity.py, bench/fanout.py), run small
(seconds) so that they can't rot. Nothing asserts on a timing: only that every
server answered every command of the mix, and every IDLE session saw the
new message."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def servers() -> str:
    """Dovecot beside Posthouse when it is here (or can be installed: root)."""
    return "posthouse,dovecot" if shutil.which("dovecot") or os.getuid() == 0 else "posthouse"


def run(script: str, tmp_path, *args: str) -> dict:
    out = tmp_path / "figures.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", script), "--quick", "--json", str(out),
                        *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(out.read_text())


def test_capacity_quick_run(tmp_path):
    wanted = servers().split(",")
    figures = run("capacity.py", tmp_path, "--servers", ",".join(wanted))
    assert [row["server"] for row in figures["rows"]] == wanted
    for row in figures["rows"]:
        # Every kind of command of the mix was answered OK, none NO or BAD.
        assert all(ok > 0 and no == bad == 0 for ok, no, bad in row["whole_run"].values()), row
        assert row["cmd_s"] > 0 and row["failed_s"] == 0 and not row["no_bad"], row
        assert row["gone"] == 0, row
        assert row["cpu_us"] > 0 and row["server_cores"] > 0 and row["gen_cores"] > 0, row


def test_fanout_quick_run(tmp_path):
    wanted = servers().split(",")
    figures = run("fanout.py", tmp_path, "--servers", ",".join(wanted))
    assert [row["server"] for row in figures["rows"]] == wanted
    for row in figures["rows"]:
        assert row["missed"] == 0, row
        for one in row["rounds"]:
            assert len(one["delays"]) == row["sessions"] and one["closed"] == 0, row
