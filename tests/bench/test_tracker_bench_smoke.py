"""The tracker benchmarks (bench/tracker_*.py), run tiny so that they can't rot.

Nothing here asserts on a timing: only that each benchmark runs to the end
against real servers on 127.0.0.1 and prints its figures.
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


def bench(name: str, *args: str, timeout: float = 300) -> str:
    pytest.importorskip("posthouse.tracker.engine")      # the tracker itself (issue 22)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", name), *args],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def need_dovecot():
    if not shutil.which("dovecot") and os.getuid() != 0:
        pytest.skip("Dovecot is not installed and can't be installed without root")


def test_tracker_sync_bench():
    shared_path("tools", "gen_mbox.py")          # skips when ../shared is absent
    need_dovecot()
    if not shutil.which("mbsync"):
        pytest.skip("mbsync (isync) is not installed")
    out = bench("tracker_sync.py", "--messages", "200", "--timeout", "120")
    assert re.search(r"tracker\s+[\d.]+ s\s+\d+ msg/s\s+peak RSS\s+[\d.]+ MiB", out), out
    assert re.search(r"mbsync\s+[\d.]+ s\s+\d+ msg/s\s+peak RSS\s+[\d.]+ MiB", out), out
    assert "tracker / mbsync: time" in out, out
    assert "CRM database: 200 messages, 200 places" in out, out


def test_tracker_latency_bench():
    need_dovecot()
    out = bench("tracker_latency.py", "--messages", "5", "--timeout", "120")
    for provider in ("posthouse (NOTIFY)", "dovecot   (IDLE  )"):
        line = next((l for l in out.splitlines() if l.strip().startswith(provider.split()[0])
                     and "p99" in l), None)
        assert line is not None, out
        assert re.search(r"p50\s+\d+ ms .* p99\s+\d+ ms", line) and "missed 0" in line, line


def test_tracker_scale_bench():
    out = bench("tracker_scale.py", "--accounts", "5", "--samples", "20", "--settle", "1",
                "--poll-interval", "1", "--messages-per-account", "2")
    assert re.search(r"-> [-\d.]+ KiB per account", out), out
    assert "connections held: 5 to the IMAP port" in out, out
    assert re.search(r"p50 \d+ ms\s+p99 \d+ ms .* missed 0", out), out
    assert "CRM database: 2 messages, 10 places" in out, out
