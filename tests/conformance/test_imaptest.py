"""Dovecot's imaptest scripts (../shared/conformance/imaptest) against a live Posthouse.

Each script is one test. Scripts Posthouse does not pass yet are listed, with why, in
known_failures.txt: they run as strict xfails, so one that starts passing must leave the list.
"""
from __future__ import annotations

import asyncio
import os

import pytest

from tests.conftest import SHARED

from .imaptest_format import ScriptError, list_scripts
from .imaptest_runner import Account, load, run_script

SCRIPTS_DIR = os.path.join(SHARED, "conformance", "imaptest", "scripts")
HERE = os.path.dirname(__file__)
RESULTS: dict[tuple[str, str], tuple[str, str]] = {}     # (store, script) -> (status, detail)


def _known_failures() -> dict[str, str]:
    known = {}
    with open(os.path.join(HERE, "known_failures.txt")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, why = line.partition(" ")
                known[name] = why.strip()
    return known


KNOWN = _known_failures()
NAMES = list_scripts(SCRIPTS_DIR) if os.path.isdir(SCRIPTS_DIR) else ["(scripts absent)"]


@pytest.fixture(scope="module")
def accounts(server):
    return [Account(*server.add_user("imaptest1", "imaptest-pw")),
            Account(*server.add_user("imaptest2", "imaptest-pw"))]


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN[n])) if n in KNOWN else n
    for n in NAMES])
def test_script(name, server, accounts, live_store, record_property):
    if not os.path.isdir(SCRIPTS_DIR):
        pytest.skip(f"../shared is absent here ({SCRIPTS_DIR} not found)")
    try:
        script = load(SCRIPTS_DIR, name)
    except ScriptError as e:
        RESULTS[(live_store, name)] = ("failed", f"script error: {e}")
    else:
        RESULTS[(live_store, name)] = asyncio.run(run_script(script, server.host, server.port, accounts))
    status, detail = RESULTS[(live_store, name)]
    # (in the test's report, so the summary line has it under pytest-xdist too: conftest.py)
    record_property("imaptest", [live_store, name, status, detail])
    if status == "skipped":
        pytest.skip(detail)
    if status == "failed":
        pytest.fail(f"{name}: {detail}", pytrace=False)
