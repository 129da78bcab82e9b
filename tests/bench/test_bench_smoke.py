"""The benchmark harness, run small (seconds) so that it can't rot.

Nothing here asserts on a timing: only that every workload ran against both
servers and printed a figure for each.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import shared_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_quick_run(tmp_path):
    shared_path("tools", "gen_mbox.py")          # skips when ../shared is absent
    if not shutil.which("dovecot") and os.getuid() != 0:
        pytest.skip("Dovecot is not installed and can't be installed without root")
    results = tmp_path / "RESULTS.md"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick",
                        "--results", str(results)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = [l for l in r.stdout.splitlines() if " ratio " in l]
    sections = {l.split()[0] for l in lines}
    assert sections == {"load", "idle", "delivery", "mixed", "large", "big"}, r.stdout
    for line in lines:
        assert "failed" not in line, line
        # Every row has a Posthouse and a Dovecot figure.
        assert re.search(r"posthouse\s+[\d,.]+ ", line) and re.search(r"dovecot\s+[\d,.]+ ", line), line
    for name in ("SEARCH BODY", "SORT (DATE)", "UID FETCH 1:* (FLAGS)", "memory per session",
                 "all sessions see EXISTS", "server memory growth"):
        assert any(name in l for l in lines), name
    table = results.read_text()
    assert table.startswith("# Benchmark results") and "| workload |" in table and "Dovecot" in table
