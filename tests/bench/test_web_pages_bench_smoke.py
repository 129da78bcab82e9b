"""bench/web_pages.py run tiny so that it can't rot: a real serve, a few
hundred messages, a few dozen activities, 3 users for a second per page.
Nothing here asserts on a timing: only that it runs to the end and prints
its figures (every page answering 200)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_web_pages_bench():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "web_pages.py"), "--messages", "120",
                        "--activities", "30", "--users", "3", "--duration", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "the contact has 30 activities" in out, out
    lines = [l for l in out.splitlines() if re.search(r"p50 \d+ ms, p90 \d+ ms, p99 \d+ ms, worst \d+ ms", l)]
    assert len(lines) == 3, out
    assert not any("errors" in l for l in lines), out
    assert all("goal p99 < 300 ms" in l for l in lines), out
