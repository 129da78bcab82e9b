"""Password guessing from many connections at once is throttled across
connections and protocols, and the real user from another address still
gets in at once."""
from __future__ import annotations

import base64
import socket

import pytest

from tests.conftest import RawClient, RunningServer


@pytest.fixture(scope="module")
def guarded(live_store, tmp_path_factory):
    srv = RunningServer(str(tmp_path_factory.mktemp("guarded")), failure_delay=0.05, auth_throttle_max=1.0)
    yield srv
    srv.stop()


def client(host: str, port: int, source: str) -> RawClient:
    c = RawClient.__new__(RawClient)
    c.sock = socket.create_connection((host, port), timeout=30, source_address=(source, 0))
    c.buf = b""
    c.greeting = c.readline()
    return c


def test_fifty_connections_guessing_at_once_get_few_checks(guarded):
    name, password = guarded.add_user()
    throttle = guarded.ctx.authenticator.throttle
    imap = [client(guarded.host, guarded.port, "127.0.0.1") for _ in range(25)]
    pop3 = [client(guarded.host, guarded.pop3_port, "127.0.0.1") for _ in range(25)]
    try:
        for i, c in enumerate(imap):
            c.send(f"g LOGIN {name} wrong{i}\r\n")
        for i, c in enumerate(pop3):
            c.send(f"USER {name}\r\nPASS wrong{i}\r\n")
        for c in imap:
            assert c.read_until_tag("g")[-1].startswith(b"g NO")
        for c in pop3:
            assert c.readline().startswith(b"+OK")
            assert c.readline().startswith(b"-ERR [AUTH]")
    finally:
        for c in imap + pop3:
            c.close()
    # Fifty guesses were answered, but the passwords of only a few were
    # checked: the first ones, then one per slot whose wait doubles; the
    # rest were refused unchecked. (Without the throttle: 50 checks.)
    checked = throttle.failures("127.0.0.1")
    assert checked + throttle.refused == 50
    assert checked <= 12, checked
    assert throttle.delay_after(checked) > guarded.config.failure_delay

    # The real user, from an address with no failures: in at once (no wait).
    c = client(guarded.host, guarded.port, "127.0.0.2")
    try:
        assert c.cmd("a", f"LOGIN {name} {password}")[-1].startswith(b"a OK")
        assert throttle.last_wait == 0
    finally:
        c.close()
    c = client(guarded.host, guarded.pop3_port, "127.0.0.2")
    try:
        c.send(f"AUTH PLAIN {base64.b64encode(f'{chr(0)}{name}{chr(0)}{password}'.encode()).decode()}\r\n")
        assert c.readline().startswith(b"+OK")
    finally:
        c.close()
