"""Processes starting at once on a fresh database (serve, a tracker, a
command) all find it migrated: none fails on the other's half-made schema."""
from __future__ import annotations

import subprocess
import sys

from posthouse.db.engine import make_engine
from posthouse.db.migrate import current

SCRIPT = """
import sys
from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade
upgrade(make_engine(sys.argv[1] if sys.argv[1] != "-" else None, sys.argv[2]))
"""


def _race(url: str | None, data_dir: str, n: int = 4) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, url or "-", data_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err


def test_upgrades_at_once_on_sqlite(tmp_path):
    _race(None, str(tmp_path))
    assert current(make_engine(None, str(tmp_path))) is not None


def test_upgrades_at_once_on_postgresql(tmp_path, request):
    url = request.getfixturevalue("postgres_url")
    from sqlalchemy import text
    engine = make_engine(url, str(tmp_path))
    with engine.begin() as conn:       # a fresh schema of its own in the session's database
        conn.execute(text("DROP SCHEMA IF EXISTS migrate_race CASCADE"))
        conn.execute(text("CREATE SCHEMA migrate_race"))
    sep = "&" if "?" in url else "?"
    race_url = url + sep + "options=-csearch_path%3Dmigrate_race"
    _race(race_url, str(tmp_path))
    assert current(make_engine(race_url, str(tmp_path))) is not None
