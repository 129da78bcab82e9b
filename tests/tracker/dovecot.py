"""A private Dovecot (Debian's package) on 127.0.0.1 for the tracker's tests,
run the way the benchmarks run it (bench/servers.py): its own base_dir,
passwd-file and sdbox mail in a temporary directory, as an unprivileged user."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

DOVECOT = "/usr/sbin/dovecot"
USERS = [f"dove{i}" for i in range(1, 13)]


class Dovecot:
    def __init__(self, workdir: str):
        from bench.servers import PASSWORD, DovecotServer
        self.server = DovecotServer(workdir, USERS, max_sessions=50)
        self.host, self.port, self.password = "127.0.0.1", self.server.port, PASSWORD
        self._free = iter(USERS)

    def user(self) -> tuple[str, str]:
        try:
            return next(self._free), self.password
        except StopIteration:
            raise RuntimeError("tests/tracker/dovecot.py: add users to USERS") from None

    def restart(self):
        self.server.restart()

    def stop(self):
        self.server.stop()


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory):
    if not os.path.exists(DOVECOT) or not shutil.which("dovecot"):
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd)")
    # Dovecot's mail processes run as an unprivileged user: pytest's own
    # temporary directories (0700, root's) are closed to it.
    workdir = tempfile.mkdtemp(prefix="posthouse-dovecot-")
    os.chmod(workdir, 0o755)
    server = Dovecot(workdir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

