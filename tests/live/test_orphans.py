"""A server killed with SIGKILL leaves no process behind: its store process,
its parse workers and the multiprocessing resource tracker all end too."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from .test_durability import _free_port, _start
from .test_store_death import children_of, cmdline


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_server_leaves_no_process_behind(tmp_path):
    data = str(tmp_path / "data")
    subprocess.run([sys.executable, "-m", "posthouse", "--data-dir", data, "user", "add", "o",
                    "--password-stdin"], input=b"pw\n", check=True, stdout=subprocess.DEVNULL)
    proc = _start(data, _free_port(), _free_port(), _free_port())
    try:
        # The store process, the parse workers (started at once) and their resource tracker.
        deadline = time.monotonic() + 20
        family = []
        while time.monotonic() < deadline:
            family = descendants(proc.pid)
            lines = [cmdline(p) for p in family]
            if (any("posthouse.store.process" in c for c in lines) and any("spawn_main" in c for c in lines)
                    and any("resource_tracker" in c for c in lines)):
                break
            time.sleep(0.05)
        assert any("posthouse.store.process" in cmdline(p) for p in family), family
        assert any("spawn_main" in cmdline(p) for p in family), [cmdline(p) for p in family]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in family):
        time.sleep(0.05)
    left = [(p, cmdline(p)[:120]) for p in family if alive(p)]
    for pid, _ in left:
        os.kill(pid, signal.SIGKILL)    # (leave nothing behind, even failing)
    assert not left, f"still running after the server was killed: {left}"
