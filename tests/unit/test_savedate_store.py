"""SAVEDATE (RFC 8514) in the store: kept per mailbox row, and added to older stores."""
from __future__ import annotations

import sqlite3
import time

from posthouse.mime.message import parse_message
from posthouse.store.sqlite.backend import SQLiteStore
from posthouse.store.sqlite.schema import SCHEMA_VERSION

RAW = b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"


def _open(path):
    st = SQLiteStore(str(path), fsync=False)
    return st


def test_append_copy_and_move_each_save_the_message_anew(open_store):
    st = open_store()
    user = st.create_user("u", "h", [("INBOX", None), ("Other", None)])
    inbox, other = st.get_mailbox(user.id, "INBOX").id, st.get_mailbox(user.id, "Other").id
    st.append_many(inbox, [(RAW, parse_message(RAW), [], 1_000_000_000.0)])
    saved = st.save_dates(inbox)[1]
    assert saved is not None and saved != 1_000_000_000.0      # not the internal date
    st.copy(inbox, [1], other)
    st.copy(inbox, [1], other, move=True)
    moved = st.save_dates(other)
    assert set(moved) == {1, 2} and all(v is not None and v >= saved for v in moved.values())
    assert st.save_dates(other, [2, 7]) == {2: moved[2]}
    st.close()


def test_a_store_from_before_savedate_is_upgraded_in_place(tmp_path):
    st = _open(tmp_path)
    user = st.create_user("u", "h", [("INBOX", None)])
    inbox = st.get_mailbox(user.id, "INBOX").id
    st.append_many(inbox, [(RAW, parse_message(RAW), [], time.time())])
    st.close()
    # Make it what an older Posthouse left: no savedate column, user_version 0.
    db = sqlite3.connect(tmp_path / "index.sqlite3")
    db.execute("ALTER TABLE messages DROP COLUMN savedate")
    db.execute("PRAGMA user_version=0")
    db.commit()
    db.close()
    st = _open(tmp_path)
    assert st.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert st.save_dates(inbox) == {1: None}           # unknown for the old row
    st.append_many(inbox, [(RAW + b"x", parse_message(RAW + b"x"), [], time.time())])
    assert st.save_dates(inbox)[2] is not None
    st.close()
    st = _open(tmp_path)            # opening again changes nothing
    assert st.save_dates(inbox)[1] is None
    st.close()
