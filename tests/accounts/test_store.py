"""AccountStore on SQLite: rows, encrypted secrets, the key file, own addresses."""
from __future__ import annotations

import os
import stat
from datetime import date

import pytest
from sqlalchemy import text

from posthouse.accounts.secrets import SecretsError
from posthouse.accounts.store import AccountError, AccountStore


class _Config:
    domains = ["example.com", "mail.test"]


@pytest.fixture
def store(accounts_engine, tmp_path):
    return AccountStore(accounts_engine, str(tmp_path), _Config())


def _add(store, **over):
    fields = dict(owner="alice", kind="imap", imap_host="imap.example.net", imap_port=993, login="alice@example.net",
                  auth="password", secret={"password": "hunter2"}, addresses=["Alice@Example.net"],
                  since=date(2026, 1, 2))
    fields.update(over)
    return store.add(**fields)


def test_add_get_list_remove(store):
    a = _add(store)
    assert a.id and a.owner == "alice" and a.imap_tls == "implicit" and a.privacy == "snippet"
    assert a.state == "active" and a.state_reason == "" and a.since == date(2026, 1, 2)
    assert a.addresses == ["alice@example.net"]
    b = _add(store, owner="bob", login="bob", secret=None, since=None)
    assert [x.id for x in store.list()] == [a.id, b.id]
    assert [x.id for x in store.list("bob")] == [b.id]
    assert store.get(a.id) == a
    store.set_state(a.id, "needs_attention", "login refused: bad password")
    assert store.get(a.id).state == "needs_attention"
    assert store.get(a.id).state_reason == "login refused: bad password"
    store.remove(a.id)
    assert store.get(a.id) is None
    with pytest.raises(AccountError):
        store.remove(a.id)


def test_bad_fields_refused(store):
    with pytest.raises(AccountError, match="imap_tls"):
        _add(store, imap_tls="ssl")
    with pytest.raises(AccountError, match="privacy"):
        _add(store, privacy="everything")
    with pytest.raises(AccountError, match="port"):
        _add(store, imap_port=70000)
    with pytest.raises(AccountError, match="unknown"):
        _add(store, colour="blue")
    with pytest.raises(AccountError, match="state"):
        store.set_state(_add(store).id, "sleepy")


def test_secret_encrypted_with_a_key_file_not_in_the_db(store, tmp_path):
    a = _add(store)
    assert store.secret(a.id) == {"password": "hunter2"}
    key = tmp_path / "secrets.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT secret FROM accounts WHERE id = :id"), {"id": a.id}).scalar()
    assert b"hunter2" not in bytes(stored) and key.read_bytes().strip() not in bytes(stored)
    if (tmp_path / "crm.sqlite3").exists():
        db = b"".join((tmp_path / name).read_bytes() for name in ("crm.sqlite3", "crm.sqlite3-wal")
                      if (tmp_path / name).exists())
        assert b"hunter2" not in db and key.read_bytes().strip() not in db
    store.set_secret(a.id, {"password": "new one"})
    assert store.secret(a.id) == {"password": "new one"}


def test_wrong_key_says_so(store, tmp_path):
    a = _add(store)
    from cryptography.fernet import Fernet
    (tmp_path / "secrets.key").write_bytes(Fernet.generate_key())
    other = AccountStore(store.engine, str(tmp_path))
    with pytest.raises(SecretsError, match=r"the key in .*secrets.key doesn't match the stored secrets"):
        other.secret(a.id)


def test_unreadable_or_damaged_key(store, tmp_path):
    a = _add(store)
    (tmp_path / "secrets.key").write_bytes(b"not a key")
    with pytest.raises(SecretsError, match="damaged"):
        AccountStore(store.engine, str(tmp_path)).secret(a.id)
    os.remove(tmp_path / "secrets.key")
    os.mkdir(tmp_path / "secrets.key")      # (unreadable even as root)
    with pytest.raises(SecretsError, match="can't read the secrets key"):
        AccountStore(store.engine, str(tmp_path)).secret(a.id)


def test_own_addresses(store):
    _add(store)
    _add(store, owner="bob@mail.test", kind="local", imap_host="127.0.0.1", imap_tls="none", login="bob@mail.test",
         auth="service", secret=None, addresses=[])
    store.local_users = lambda: ["carol"]
    own = store.own_addresses()
    assert {"alice@example.net", "alice@example.com", "alice@mail.test", "bob@mail.test",
            "carol@example.com", "carol@mail.test"} <= own
    assert "bob@mail.test@example.com" not in own


def test_package_exports():
    """web/ finds open_session on the package (importlib + getattr)."""
    import importlib
    package = importlib.import_module("posthouse.accounts")
    from posthouse.accounts.session import open_session
    assert getattr(package, "open_session") is open_session
    assert getattr(package, "AccountStore") is AccountStore
    with pytest.raises(AttributeError):
        getattr(package, "no_such_name")


def test_own_addresses_include_every_user_of_the_mail_store(server, accounts_engine, tmp_path):
    """Colleagues without accounts: read from the running server's store."""
    colleague, _ = server.add_user()
    store = AccountStore(accounts_engine, str(tmp_path), server.config)
    own = store.own_addresses()
    assert {f"{colleague}@example.com", f"{colleague}@mail.test"} <= own
