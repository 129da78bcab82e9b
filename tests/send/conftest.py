"""Fixtures for the send tests: accounts in the real AccountStore, on a fresh
SQLite database, pointing at the session's Posthouse server."""
from __future__ import annotations

import pytest

from posthouse.accounts.store import AccountStore
from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade


@pytest.fixture
def accounts(server, tmp_path):
    engine = make_engine(None, str(tmp_path))
    upgrade(engine)
    yield AccountStore(engine, server.config.data_dir, server.config)
    engine.dispose()


def add_account(accounts, server, user, **fields):
    name, pw = user
    values = dict(owner=name, login=name, imap_host=server.host, imap_port=server.port, imap_tls="none",
                  smtp_host=server.host, smtp_port=server.submission_port, smtp_tls="none",
                  secret={"password": pw})
    values.update(fields)
    return accounts.add(**values)
