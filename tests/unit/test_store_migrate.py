"""`posthouse migrate --to postgresql://...`: a SQLite store copied into
PostgreSQL keeps every mailbox, UID, UIDVALIDITY, MODSEQ, flag, quota, Sieve
script, subscription and its expunge history; new mail continues after it."""
from __future__ import annotations

import contextlib
import io
import time

import pytest

from posthouse import cli
from posthouse.mime.message import parse_message
from posthouse.store.sqlite.backend import SQLiteStore
from tests.conftest import postgres_database


def message(body: str, subject: str = "s") -> bytes:
    return (f"From: a@example.com\r\nSubject: {subject}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def _fill(st: SQLiteStore) -> None:
    alice = st.create_user("alice", "hash-a", [("INBOX", None), ("Sent", "\\Sent"), ("Work", None)])
    bob = st.create_user("Bob", "hash-b", [("INBOX", None)])
    inbox = st.get_mailbox(alice.id, "INBOX").id
    work = st.get_mailbox(alice.id, "Work").id
    raws = [message(f"note {i} grüße", f"subject {i}") for i in range(6)] + [message("big " * 5000)]
    st.append_many(inbox, [(r, parse_message(r), frozenset({"$Label", "\\Seen"} if i % 2 else set()),
                            1_700_000_000.0 + i) for i, r in enumerate(raws)])
    st.store_flags(inbox, [2, 3], "add", frozenset({"\\Flagged"}))
    st.expunge(inbox, [1, 4])
    st.copy(inbox, [2, 7], work)
    st.copy(inbox, [3], work, move=True)
    st.append_many(st.get_mailbox(bob.id, "INBOX").id, [(raws[0], parse_message(raws[0]), frozenset(), 1.0)])
    st.create_mailbox(alice.id, "Lists/2024")
    st.delete_mailbox(alice.id, "Lists")           # stays as a \Noselect name for its child
    st.rename_mailbox(alice.id, "Work", "Projects")
    st.set_subscribed(alice.id, "Projects", True)
    st.set_quota("alice", 10_000_000, 500)
    st.set_quota("Bob", None, "none")
    st.put_script(alice.id, "main", 'require "fileinto"; fileinto "Projects";')
    st.put_script(alice.id, "spare", "keep;")
    st.activate_script(alice.id, "main")
    st.signing_key(inbox)
    st.claim_recent(inbox, 5)


def _snapshot(st) -> dict:
    out = {"users": st.list_users()}
    for name in out["users"]:
        user = st.get_user(name)
        out[name] = {"user": user, "quota": st.get_quota(user.id), "scripts": st.list_scripts(user.id),
                     "active": st.active_script(user.id), "subscriptions": st.subscriptions(user.id),
                     "boxes": {}}
        for box in st.list_mailboxes(user.id, noselect_too=True):
            info, entries = st.load_index(box.id)
            data = st.message_data(box.id, [e.uid for e in entries])
            out[name]["boxes"][box.name] = {
                "info": info, "entries": entries, "counts": st.mailbox_counts(box.id),
                "vanished": st.vanished_since(box.id, 0), "urlauth": st.urlauth_key(box.id),
                "bytes": {uid: st.read_blob(d.blob_key) for uid, d in data.items()},
                "meta": {uid: (d.envelope, d.bodystructure, d.parts_json, d.header_size, d.internaldate)
                         for uid, d in data.items()},
                "fields": st.search_fields(box.id, [e.uid for e in entries]),
                "found": st.search_body(box.id, None, "GRÜSSE") | st.search_body(box.id, None, "grüße"),
            }
    return out


def _migrate(data_dir: str, url: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["--data-dir", data_dir, "migrate", "--to", url])
    return rc, out.getvalue() + err.getvalue()


def test_migrate_copies_everything_and_new_mail_continues(tmp_path):
    from posthouse.store.postgres.backend import PostgresStore
    url = postgres_database()
    src = SQLiteStore(str(tmp_path), fsync=False, inline_max=1000)      # the big message is a file
    _fill(src)
    before = _snapshot(src)
    src.close()

    rc, text = _migrate(str(tmp_path), url)
    assert rc == 0, text
    assert "copied 2 users" in text
    dst = PostgresStore(url)
    try:
        assert _snapshot(dst) == before
        alice = dst.get_user("ALICE")
        inbox = dst.get_mailbox(alice.id, "INBOX")
        # New mail takes the next UID and a higher MODSEQ; new ids are new.
        raw = message("after the move")
        [result] = dst.append_many(inbox.id, [(raw, parse_message(raw), frozenset(), time.time())])
        assert result.uid == inbox.uidnext and result.uidvalidity == inbox.uidvalidity
        assert result.events[0].entry.modseq == inbox.highestmodseq + 1
        carol = dst.create_user("carol", "h", [("INBOX", None)])
        assert carol.id > max(dst.get_user(n).id for n in ("alice", "Bob"))
        assert dst.create_mailbox(alice.id, "Fresh").uidvalidity > max(
            b.uidvalidity for b in dst.list_mailboxes(alice.id, True) if b.name != "Fresh")
    finally:
        dst.close()

    # Into a store with users already: refused, nothing changed.
    rc, text = _migrate(str(tmp_path), url)
    assert rc == 1 and "users already" in text


def test_migrate_wants_a_postgresql_url(tmp_path):
    rc, text = _migrate(str(tmp_path), "sqlite:///x")
    assert rc == 2 and "postgresql://" in text


@pytest.fixture(autouse=True)
def _quiet_cli(monkeypatch):
    monkeypatch.delenv("POSTHOUSE_CONFIG", raising=False)


def test_backup_of_a_store_in_postgresql_points_to_its_tools(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('database_url = "postgresql://nobody@127.0.0.1:1/none"\n')
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["--config", str(config), "--data-dir", str(tmp_path), "backup", str(tmp_path / "b")])
    assert rc == 1 and "pg_dump" in err.getvalue()
