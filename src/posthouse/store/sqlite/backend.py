"""The embedded store: SQLite (WAL, synchronous=FULL) for metadata, files for bytes.

Every method runs on the store thread. A method that changes mail commits
before it returns, so a caller that answers OK afterwards has made the change
durable first.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time

from ..api import (AppendResult, CopyResult, DeliveryFacts, FlagsChanged, IndexEntry, MailboxExists,
                   MailboxGone, MailboxHasChildren, MailboxInfo, MessageAdded, MessageData, MessagesExpunged, merged_flags,
                   NoSuchMailbox, NoSuchUser, Outbound, OverQuota, Quota, SearchFields, Store, StoreError, User, UserExists)
from ..blobs import BlobStore
from ...mime.message import SEARCH_TEXT_VERSION
from ..parsing import normalize_and_parse
from .schema import create_schema, upgrade

log = logging.getLogger("posthouse.store")

_MB_COLS = "id, user_id, name, uidvalidity, uidnext, highestmodseq, special_use, first_recent_uid, noselect"
_MB_COLS_OF_M = ", ".join("m." + c.strip() for c in _MB_COLS.split(","))     # the same, of mailboxes m


def _flags_text(flags) -> str:
    return " ".join(sorted(flags))


def _flags_set(text: str) -> frozenset:
    return frozenset(text.split()) if text else frozenset()


class SQLiteStore(Store):
    # Changes that need not be on disk before the client hears OK: flags,
    # expunges and \Recent claims (as in Dovecot, whose index writes are not
    # fsynced). They commit without an fsync, so a crash of the process loses
    # none of them and a power cut at most the last moments of them; the next
    # durable commit (any new mail) makes them durable too. New mail, copies,
    # moves and mailbox changes always commit with fsync.
    # Filing an arrival is lazy too: its record in the arrivals journal is
    # durable already, and files it again after a crash (delivery/journal.py).
    LAZY = frozenset({"store_flags", "expunge", "claim_recent", "file_arrivals", "take_recent"})
    # Calls that only read: they ask for no fsync either.
    READS = frozenset({"get_user", "user_by_id", "list_users", "list_mailboxes", "get_mailbox", "subscriptions",
                       "mailbox_counts", "load_index", "message_data", "search_fields", "search_body", "sort_data",
                       "search_field", "thread_data", "vanished_since", "urlauth_key",
                       "read_blob", "get_quota", "active_script", "delivery_facts", "get_script",
                       "list_scripts", "due_outbound", "next_outbound_time", "filed_arrivals",
                       "last_filed_arrival", "save_dates", "changes_since"})
    # Reads by a unique key, cheaper than the hop to the database thread and
    # back (~100 us): the caller runs them on a read connection of its own.
    QUICK = frozenset({"get_user", "user_by_id", "get_mailbox", "get_quota", "active_script", "delivery_facts"})
    # Reads that may scan a whole mailbox: on reader threads, so a big search
    # or index load doesn't hold up every commit. (Short reads stay on the
    # database thread: handing results back from more threads costs more in
    # GIL waits than it saves, measured on the mixed load.)
    LONG_READS = frozenset({"load_index", "search_fields", "search_field", "search_body", "sort_data",
                            "thread_data", "vanished_since", "message_data", "save_dates", "changes_since"})

    def __init__(self, data_dir: str, fsync: bool = True, inline_max: int = 128 * 1024,
                 quota_storage: int | None = None, quota_messages: int | None = None):
        os.makedirs(data_dir, exist_ok=True)
        # How to open this store again elsewhere (the store process does).
        self.open_args = {"data_dir": data_dir, "fsync": fsync, "inline_max": inline_max,
                          "quota_storage": quota_storage, "quota_messages": quota_messages}
        self.blobs = BlobStore(os.path.join(data_dir, "blobs"), fsync=fsync)
        if swept := self.blobs.sweep_temporary():
            log.info("removed %d temporary files left by writes that did not finish", swept)
        # Messages up to inline_max bytes live in the database: one fsync (the
        # commit's) makes them durable, where a file costs two more.
        self.inline_max = inline_max
        self._db_path = os.path.join(data_dir, "index.sqlite3")
        self._local = threading.local()
        self.db = sqlite3.connect(self._db_path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.fsync = fsync
        self._sync_mode = "FULL" if fsync else "OFF"
        self.db.execute("PRAGMA synchronous=" + self._sync_mode)
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=10000")
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(blobs)")}
        if "body_text" in columns:
            raise StoreError(f"{data_dir} holds a store from an early development version of Posthouse; "
                             "move it aside and start with an empty data directory")
        create_schema(self.db)
        upgrade(self.db)
        # The limits of users who have none of their own (None: no limit).
        self.quota_defaults = (quota_storage, quota_messages)
        self._count_usage()
        self._readers: list[sqlite3.Connection] = []
        self._dead_keys: list[str] = []     # blob files to remove once the transaction commits
        self._current_sync = self._sync_mode
        self._pending_bytes = self.db.execute("SELECT coalesce(sum(size), 0) FROM text_pending").fetchone()[0]
        self._texts_current = self._texts_are_current()
        self._expunges_unchecked: dict[int, int] = {}   # mailbox id -> expunges since its history was measured

    def close(self) -> None:
        for conn in self._readers:
            conn.close()
        self.db.close()

    # -- transactions ----------------------------------------------------------
    def _tx(self):
        return _Transaction(self)

    def run_batch(self, calls, durable: bool = True) -> list[tuple[bool, object]]:
        """Group commit: run calls (no-argument callables) in one transaction,
        each in its own savepoint, so one COMMIT (one fsync) makes all of them
        durable while a failing call undoes only itself. Returns (ok, result
        or exception) per call; nothing is returned before the commit.
        durable=False: the calls are all of the LAZY kind; commit without fsync."""
        out = []
        self._set_sync(self._sync_mode if durable else ("NORMAL" if self.fsync else "OFF"))
        if len(calls) == 1:
            # Alone, a call needs no savepoint of its own: failing, it undoes the transaction.
            try:
                with self._tx():
                    return [(True, calls[0]())]
            except Exception as e:
                return [(False, e)]
        with self._tx():
            for call in calls:
                try:
                    with self._tx():
                        out.append((True, call()))
                except Exception as e:      # handed to the caller, as if it had run alone
                    out.append((False, e))
        return out

    # Text moved into the body index per transaction (bounds how long a request
    # can wait behind it), and how much may wait before the store moves it
    # even while busy (bounds the instr() scan a body search does of it).
    INDEX_CHUNK_BYTES = 512 * 1024
    PENDING_MAX_BYTES = 8 * 1024 * 1024

    # Expunge history (QRESYNC) kept per mailbox: past MAX records, the oldest
    # are forgotten down to KEEP, and the mailbox's floor rises to the last
    # MODSEQ forgotten. Measured after every CHECK_EVERY expunges in a mailbox.
    EXPUNGE_HISTORY_MAX = 50_000
    EXPUNGE_HISTORY_KEEP = 25_000
    EXPUNGE_CHECK_EVERY = 1_000

    def idle_work(self) -> bool:
        """A little deferred work, run when nothing else waits; True if more remains."""
        if self._index_pending():
            return True
        if self._trim_expunge_history():
            return True
        if self._remake_old_texts():
            return True
        ids = [r[0] for r in self.db.execute("SELECT id FROM text_garbage LIMIT 50")]
        if not ids:
            return False
        marks = ",".join("?" * len(ids))
        self._set_sync("NORMAL" if self.fsync else "OFF")     # nothing here needs an fsync
        with self._tx():
            self.db.execute(f"DELETE FROM body_text WHERE rowid IN ({marks})", ids)
            self.db.execute(f"DELETE FROM text_garbage WHERE id IN ({marks})", ids)
        return len(ids) == 50

    def busy_work(self) -> None:
        """Between batches of calls: while too much text waits, index it before
        taking more work, so a store that is never idle keeps its body scans
        short (bulk loads are held to the pace of indexing)."""
        # The running total may overstate the backlog (an expunge before indexing
        # drops texts without lowering it): then indexing just starts a little early.
        while self._pending_bytes >= self.PENDING_MAX_BYTES:
            if not self._index_pending():
                break

    def _index_pending(self) -> bool:
        """Move the oldest waiting texts, about INDEX_CHUNK_BYTES of them, into
        the body index; True if any moved."""
        ids, total = [], 0
        for text_id, size in self.db.execute("SELECT id, size FROM text_pending ORDER BY id"):
            ids.append(text_id)
            total += size
            if total >= self.INDEX_CHUNK_BYTES:
                break
        if not ids:
            self._pending_bytes = 0
            return False
        # Needs no fsync: a crash just leaves the texts waiting (the move is one transaction).
        self._set_sync("NORMAL" if self.fsync else "OFF")
        with self._tx():
            self.db.execute("INSERT INTO body_text(rowid, text) SELECT id, text FROM text_pending "
                            "WHERE id BETWEEN ? AND ?", (ids[0], ids[-1]))
            self.db.execute("DELETE FROM text_pending WHERE id BETWEEN ? AND ?", (ids[0], ids[-1]))
        self._pending_bytes = max(0, self._pending_bytes - total)
        return True

    # -- search texts made by an older parser --------------------------------------
    REMAKE_WINDOW = 500      # blob ids looked at per step of idle work,
    REMAKE_PARSES = 20       # and messages parsed again at most (~1 ms each)

    def _texts_are_current(self) -> bool:
        """Whether every search text was made by this parser (SEARCH_TEXT_VERSION);
        a store without messages is current by definition."""
        row = self.db.execute("SELECT value FROM meta WHERE key='search_text_version'").fetchone()
        if row is None and self.db.execute("SELECT 1 FROM blobs LIMIT 1").fetchone() is None:
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('search_text_version', ?)",
                            (SEARCH_TEXT_VERSION,))
            return True
        if row is not None and row[0] >= SEARCH_TEXT_VERSION:
            return True
        # Blobs after this one are made by this parser: the work ends there.
        self.db.execute("INSERT OR IGNORE INTO meta(key, value) SELECT 'search_text_until', coalesce(max(id), 0) "
                        "FROM blobs")
        return False

    def _remake_old_texts(self) -> bool:
        """One step of making the search texts of an older store again, when
        idle: the messages with parts other than text/plain (HTML, application/,
        message/ ...) among the next blob ids are parsed again and
        their changed texts go back through text_pending. True if any step was
        taken; the version is recorded when all are done."""
        if self._texts_current:
            return False
        row = self.db.execute("SELECT value FROM meta WHERE key='search_text_after'").fetchone()
        after = row[0] if row else 0
        top = self.db.execute("SELECT value FROM meta WHERE key='search_text_until'").fetchone()[0]
        self._set_sync("NORMAL" if self.fsync else "OFF")     # a crash just does the step again
        with self._tx():
            if after >= top:
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('search_text_version', ?)",
                                (SEARCH_TEXT_VERSION,))
                self.db.execute("DELETE FROM meta WHERE key IN ('search_text_after', 'search_text_until')")
                self._texts_current = True
                return True
            end = min(top, after + self.REMAKE_WINDOW)
            rows = self.db.execute(
                "SELECT b.id, b.key, d.data FROM blobs b LEFT JOIN blob_bytes d ON d.id = b.id "
                "WHERE b.id > ? AND b.id <= ? AND (CAST(b.bodystructure AS TEXT) LIKE '%html%' "
                "OR CAST(b.bodystructure AS TEXT) LIKE '%\"application\"%' "
                "OR CAST(b.bodystructure AS TEXT) LIKE '%\"message\"%') "
                "ORDER BY b.id LIMIT ?", (after, end, self.REMAKE_PARSES)).fetchall()
            if len(rows) == self.REMAKE_PARSES:
                end = rows[-1][0]
            for blob_id, key, data in rows:
                try:
                    raw = data if data is not None else self.blobs.read(key)
                    text = normalize_and_parse(raw, True)[1].body_text.lower()
                except Exception:       # a missing file, a parser bug: that one keeps its old text
                    log.warning("search text of blob %s not made again", blob_id, exc_info=True)
                    continue
                self._replace_text(blob_id, text)
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('search_text_after', ?)", (end,))
        return True

    def _replace_text(self, blob_id: int, text: str) -> None:
        size = len(text.encode("utf-8", "surrogatepass"))
        pending = self.db.execute("SELECT size FROM text_pending WHERE id=?", (blob_id,)).fetchone()
        if pending is not None:
            self.db.execute("UPDATE text_pending SET size=?, text=? WHERE id=?", (size, text, blob_id))
            self._pending_bytes += size - pending[0]
            return
        old = self.db.execute("SELECT text FROM body_text WHERE rowid=?", (blob_id,)).fetchone()
        if old is not None and old[0] == text:
            return
        if old is not None:
            self.db.execute("DELETE FROM body_text WHERE rowid=?", (blob_id,))
        self.db.execute("INSERT INTO text_pending(id, size, text) VALUES (?,?,?)", (blob_id, size, text))
        self._pending_bytes += size

    def _note_expunges(self, mailbox_id: int, count: int) -> None:
        self._expunges_unchecked[mailbox_id] = self._expunges_unchecked.get(mailbox_id, 0) + count

    def _trim_expunge_history(self) -> bool:
        """Trim one mailbox's expunge history if it is over its bound; True if one was looked at."""
        due = next((m for m, n in self._expunges_unchecked.items() if n >= self.EXPUNGE_CHECK_EVERY), None)
        if due is None:
            return False
        del self._expunges_unchecked[due]
        cutoff = self.db.execute(
            "SELECT modseq FROM expunged WHERE mailbox_id=? ORDER BY modseq DESC LIMIT 1 OFFSET ?",
            (due, self.EXPUNGE_HISTORY_MAX)).fetchone()
        if cutoff is None:
            return True
        # The KEEP newest stay (those sharing the cutoff's MODSEQ go with it).
        cutoff = self.db.execute(
            "SELECT modseq FROM expunged WHERE mailbox_id=? ORDER BY modseq DESC LIMIT 1 OFFSET ?",
            (due, self.EXPUNGE_HISTORY_KEEP)).fetchone()[0]
        self._set_sync("NORMAL" if self.fsync else "OFF")     # a crash just leaves more history
        with self._tx():
            self.db.execute("DELETE FROM expunged WHERE mailbox_id=? AND modseq <= ?", (due, cutoff))
            self.db.execute("INSERT INTO expunge_floor VALUES (?, ?) ON CONFLICT(mailbox_id) "
                            "DO UPDATE SET modseq = max(modseq, excluded.modseq)", (due, cutoff))
        return True

    def _set_sync(self, mode: str) -> None:
        if mode != self._current_sync:
            self.db.execute("PRAGMA synchronous=" + mode)
            self._current_sync = mode

    def _count_usage(self) -> None:
        """Quota rows for users that have none (a store made before quotas existed)."""
        self.db.execute(
            """INSERT INTO quota(user_id, storage, messages)
               SELECT u.id,
                      (SELECT coalesce(sum(b.size), 0) FROM mailboxes x JOIN messages m ON m.mailbox_id = x.id
                         JOIN blobs b ON b.id = m.blob_id WHERE x.user_id = u.id),
                      (SELECT count(*) FROM mailboxes x JOIN messages m ON m.mailbox_id = x.id
                         WHERE x.user_id = u.id)
               FROM users u WHERE u.id NOT IN (SELECT user_id FROM quota)""")

    def _limits(self, storage_limit, message_limit) -> tuple:
        storage_default, message_default = self.quota_defaults
        storage = storage_default if storage_limit is None else (None if storage_limit < 0 else storage_limit)
        messages = message_default if message_limit is None else (None if message_limit < 0 else message_limit)
        return storage, messages

    def _charge(self, user_id: int, storage: int, messages: int, enforce: bool = True) -> None:
        """Add to a user's usage, within this transaction; an increase past a
        limit raises OverQuota (and the caller's transaction undoes everything).
        A decrease always succeeds, so an over-quota user can still clean up;
        so does mail already accepted (enforce=False)."""
        if not storage and not messages:
            return
        row = self.db.execute(
            "UPDATE quota SET storage = storage + ?, messages = messages + ? WHERE user_id = ? "
            "RETURNING storage, messages, storage_limit, message_limit",
            (storage, messages, user_id)).fetchone()
        if row is None or (storage <= 0 and messages <= 0) or not enforce:
            return
        storage_limit, message_limit = self._limits(row[2], row[3])
        if storage > 0 and storage_limit is not None and row[0] > storage_limit:
            raise OverQuota("Quota exceeded (storage)")
        if messages > 0 and message_limit is not None and row[1] > message_limit:
            raise OverQuota("Quota exceeded (number of messages)")

    def get_quota(self, user_id):
        row = self.db.execute("SELECT storage, messages, storage_limit, message_limit FROM quota "
                              "WHERE user_id=?", (user_id,)).fetchone()
        if row is None:
            raise NoSuchUser("no such user")
        return Quota(row[0], row[1], *self._limits(row[2], row[3]))

    def set_quota(self, name, storage_limit, message_limit):
        """Limits for one user: a number, None (unchanged), "default" or "none"."""
        def value(v):
            return {"default": None, "none": -1}[v] if isinstance(v, str) else v
        user = self.get_user(name)
        if user is None:
            raise NoSuchUser(f"no user {name}")
        with self._tx():
            if storage_limit is not None:
                self.db.execute("UPDATE quota SET storage_limit=? WHERE user_id=?", (value(storage_limit), user.id))
            if message_limit is not None:
                self.db.execute("UPDATE quota SET message_limit=? WHERE user_id=?", (value(message_limit), user.id))

    # -- sieve scripts --------------------------------------------------------
    def put_script(self, user_id, name, script):
        with self._tx():
            self.db.execute("INSERT INTO sieve_scripts(user_id, name, script) VALUES (?,?,?) "
                            "ON CONFLICT(user_id, name) DO UPDATE SET script=excluded.script",
                            (user_id, name, script))

    def get_script(self, user_id, name):
        row = self.db.execute("SELECT script FROM sieve_scripts WHERE user_id=? AND name=?",
                              (user_id, name)).fetchone()
        return row[0] if row else None

    def list_scripts(self, user_id):
        return [(r[0], bool(r[1])) for r in self.db.execute(
            "SELECT name, active FROM sieve_scripts WHERE user_id=? ORDER BY name", (user_id,))]

    def activate_script(self, user_id, name):
        """Make name the active script (None: none is active)."""
        with self._tx():
            if name is not None and self.get_script(user_id, name) is None:
                raise StoreError(f"No script named {name}")
            self.db.execute("UPDATE sieve_scripts SET active = (name IS ?) WHERE user_id=?", (name, user_id))

    def delete_script(self, user_id, name):
        with self._tx():
            row = self.db.execute("SELECT active FROM sieve_scripts WHERE user_id=? AND name=?",
                                  (user_id, name)).fetchone()
            if row is None:
                raise StoreError(f"No script named {name}")
            if row[0]:
                raise StoreError("The active script can't be deleted; deactivate it first")
            self.db.execute("DELETE FROM sieve_scripts WHERE user_id=? AND name=?", (user_id, name))

    def rename_script(self, user_id, old, new):
        with self._tx():
            if self.get_script(user_id, old) is None:
                raise StoreError(f"No script named {old}")
            if self.get_script(user_id, new) is not None:
                raise StoreError(f"A script named {new} exists")
            self.db.execute("UPDATE sieve_scripts SET name=? WHERE user_id=? AND name=?", (new, user_id, old))

    def active_script(self, user_id):
        row = self.db.execute("SELECT script FROM sieve_scripts WHERE user_id=? AND active",
                              (user_id,)).fetchone()
        return row[0] if row else None

    def delivery_facts(self, name):
        # One statement: one read transaction, one consistent view.
        row = self.db.execute(
            "SELECT u.id, u.name, u.password, q.storage, q.messages, q.storage_limit, q.message_limit, "
            "(SELECT script FROM sieve_scripts WHERE user_id = u.id AND active), "
            + _MB_COLS_OF_M +
            " FROM users u LEFT JOIN quota q ON q.user_id = u.id "
            "LEFT JOIN mailboxes m ON m.user_id = u.id AND m.name = 'INBOX' "
            "WHERE u.name = ?", (name,)).fetchone()
        if row is None:
            return None
        quota = Quota(row[3] or 0, row[4] or 0, *self._limits(row[5], row[6]))
        inbox = MailboxInfo(*row[8:]) if row[8] is not None else None
        return DeliveryFacts(User(*row[:3]), quota, row[7], inbox)

    # -- the outbound queue -----------------------------------------------------
    def enqueue(self, user_id, sender, recipients, data, now):
        with self._tx():
            cur = self.db.execute(
                "INSERT INTO outbound(user_id, sender, recipients, data, created, next_attempt) VALUES (?,?,?,?,?,?)",
                (user_id, sender, json.dumps(recipients), data, now, now))
            return cur.lastrowid

    def due_outbound(self, now, limit):
        rows = self.db.execute(
            "SELECT id, user_id, sender, recipients, data, created, attempts, last_error FROM outbound "
            "WHERE next_attempt <= ? ORDER BY next_attempt LIMIT ?", (now, limit))
        return [Outbound(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def outbound_attempted(self, item_id, remaining, next_attempt, error):
        """After a try: done (no recipients remain, or next_attempt is None: given
        up), or to be tried again at next_attempt for the remaining ones."""
        with self._tx():
            if not remaining or next_attempt is None:
                self.db.execute("DELETE FROM outbound WHERE id=?", (item_id,))
            else:
                self.db.execute("UPDATE outbound SET recipients=?, attempts=attempts+1, next_attempt=?, "
                                "last_error=? WHERE id=?", (json.dumps(remaining), next_attempt, error, item_id))

    def next_outbound_time(self):
        return self.db.execute("SELECT min(next_attempt) FROM outbound").fetchone()[0]

    def vacation_due(self, user_id, sender, handle, days, now):
        """Whether sender should get a vacation reply now; if so, note it so the
        next one waits days (RFC 5230 4.1)."""
        with self._tx():
            row = self.db.execute("SELECT until FROM vacation_replies WHERE user_id=? AND sender=? AND handle=?",
                                  (user_id, sender, handle)).fetchone()
            if row is not None and row[0] > now:
                return False
            self.db.execute("INSERT OR REPLACE INTO vacation_replies VALUES (?,?,?,?)",
                            (user_id, sender, handle, now + days * 86400))
            return True

    def _forget_blobs(self, keys) -> None:
        self._dead_keys.extend(keys)

    def _after_commit(self) -> None:
        keys, self._dead_keys = self._dead_keys, []
        for key in keys:
            # The same content may have arrived again after the expunge, in the same batch.
            if self.db.execute("SELECT 1 FROM blobs WHERE key=?", (key,)).fetchone() is None:
                self.blobs.delete(key)

    def _next_uidvalidity(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='uidvalidity'").fetchone()
        value = max(int(time.time()), (row[0] + 1) if row else 0)
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('uidvalidity', ?)", (value,))
        return value

    def _fresh_id(self, table: str) -> int:
        """An id for a new user or mailbox that this database has never given
        before. (A rowid would reuse a deleted highest one, and ids outlive
        their rows in memory: a session's user, the open mailboxes, names
        remembered for SELECT. None of these may ever reach another's data.)"""
        key = "last_id_" + table
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        top = self.db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        value = max(top, row[0] if row else 0) + 1
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
        return value

    def _mailbox_row(self, user_id: int, name: str, noselect_too: bool = False) -> MailboxInfo:
        """The mailbox of that name; a \\Noselect name (noselect_too=False) is
        no mailbox: nothing can be selected, appended to or copied there."""
        row = self.db.execute(f"SELECT {_MB_COLS} FROM mailboxes WHERE user_id=? AND name=?",
                              (user_id, name)).fetchone()
        if row is None or (row[-1] and not noselect_too):
            raise NoSuchMailbox("Mailbox doesn't exist: " + name)
        return MailboxInfo(*row)

    def _mailbox_by_id(self, mailbox_id: int) -> MailboxInfo:
        row = self.db.execute(f"SELECT {_MB_COLS} FROM mailboxes WHERE id=?", (mailbox_id,)).fetchone()
        if row is None:
            raise NoSuchMailbox("Mailbox doesn't exist")
        return MailboxInfo(*row)

    def _bump_modseq(self, mailbox_id: int) -> int:
        row = self.db.execute("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id=? "
                              "RETURNING highestmodseq", (mailbox_id,)).fetchone()
        if row is None:
            raise NoSuchMailbox("Mailbox doesn't exist")
        return row[0]

    def _make_room(self, mailbox_id: int, count: int) -> tuple[int, int, int, int]:
        """For new messages: their first UID and their MODSEQ, taken in one
        statement (delivery's commonest write), with the mailbox's user and
        UIDVALIDITY: (user_id, uidvalidity, first_uid, modseq)."""
        row = self.db.execute(
            "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1 WHERE id=? "
            "RETURNING user_id, uidvalidity, uidnext - ?, highestmodseq", (count, mailbox_id, count)).fetchone()
        if row is None:
            raise NoSuchMailbox("Mailbox doesn't exist")
        return row

    def _take_uids(self, mailbox_id: int, count: int) -> int:
        first = self.db.execute("SELECT uidnext FROM mailboxes WHERE id=?", (mailbox_id,)).fetchone()[0]
        self.db.execute("UPDATE mailboxes SET uidnext = uidnext + ? WHERE id=?", (count, mailbox_id))
        return first

    def _release_blobs(self, blob_ids) -> list[str]:
        """Drop one reference from each blob; return the keys of blob files now
        unused (a blob kept in the database goes with its row: no file to remove)."""
        dead = []
        for blob_id in blob_ids:
            self.db.execute("UPDATE blobs SET refs = refs - 1 WHERE id=?", (blob_id,))
            row = self.db.execute(
                "SELECT b.key, d.id IS NULL FROM blobs b LEFT JOIN blob_bytes d ON d.id = b.id "
                "WHERE b.id=? AND b.refs <= 0", (blob_id,)).fetchone()
            if row:
                self.db.execute("DELETE FROM blobs WHERE id=?", (blob_id,))
                if row[1]:
                    dead.append(row[0])
        return dead

    # -- users --------------------------------------------------------------
    def create_user(self, name, password_hash, mailboxes):
        with self._tx():
            try:
                cur = self.db.execute("INSERT INTO users(id, name, password, created) VALUES (?,?,?,?)",
                                      (self._fresh_id("users"), name, password_hash, time.time()))
            except sqlite3.IntegrityError:
                raise UserExists(f"user {name} exists") from None
            user_id = cur.lastrowid
            self.db.execute("INSERT INTO quota(user_id) VALUES (?)", (user_id,))
            for mbox, special in mailboxes:
                self._insert_mailbox(user_id, mbox, special)
                self.db.execute("INSERT OR IGNORE INTO subscriptions VALUES (?,?)", (user_id, mbox))
        return User(user_id, name, password_hash)

    # Message data for up to this many messages (what a client shows of a
    # mailbox at a time) is a quick read; more goes to a reader thread, so a
    # FETCH 1:* doesn't hold the event loop while it reads.
    QUICK_MESSAGES = 10

    def is_quick(self, method: str, args: tuple) -> bool:
        """Whether this read runs right on the caller's thread (see quick())."""
        if method in self.QUICK:
            return True
        return method == "message_data" and len(args[1]) <= self.QUICK_MESSAGES

    def quick(self, method: str, *args):
        """A read is_quick() allows, right here on the calling thread (see reading())."""
        return getattr(self.reading(), method)(*args)

    def reading(self) -> SQLiteStore:
        """This store as seen through the calling thread's own read-only
        connection. QUICK and LONG_READS run on it, off the database thread: in
        WAL mode a reader never waits for a commit (and its fsync), and it sees
        every change committed before it starts."""
        view = getattr(self._local, "view", None)
        if view is None:
            view = self._local.view = _ReadingView(self, self._reader())
        return view

    def get_user(self, name):
        row = self.db.execute("SELECT id, name, password FROM users WHERE name=?", (name,)).fetchone()
        return User(*row) if row else None

    def user_by_id(self, user_id):
        row = self.db.execute("SELECT id, name, password FROM users WHERE id=?", (user_id,)).fetchone()
        return User(*row) if row else None

    def set_password(self, name, password_hash):
        with self._tx():
            cur = self.db.execute("UPDATE users SET password=? WHERE name=?", (password_hash, name))
            if cur.rowcount == 0:
                raise NoSuchUser(f"no user {name}")

    def delete_user(self, name):
        user = self.get_user(name)
        if user is None:
            raise NoSuchUser(f"no user {name}")
        events, dead = [], []
        with self._tx():
            for (mbox_id,) in self.db.execute("SELECT id FROM mailboxes WHERE user_id=?", (user.id,)).fetchall():
                dead += self._drop_mailbox(mbox_id)
                events.append(MailboxGone(mbox_id))
            self.db.execute("DELETE FROM users WHERE id=?", (user.id,))
            self._forget_blobs(dead)
        return events

    def list_users(self):
        return [r[0] for r in self.db.execute("SELECT name FROM users ORDER BY name")]

    # -- mailboxes ----------------------------------------------------------
    def _insert_mailbox(self, user_id, name, special_use=None) -> MailboxInfo:
        try:
            cur = self.db.execute(
                "INSERT INTO mailboxes(id, user_id, name, uidvalidity, special_use) VALUES (?,?,?,?,?)",
                (self._fresh_id("mailboxes"), user_id, name, self._next_uidvalidity(), special_use))
        except sqlite3.IntegrityError:
            raise MailboxExists("Mailbox already exists") from None
        return self._mailbox_by_id(cur.lastrowid)

    def list_mailboxes(self, user_id, noselect_too: bool = False):
        """The user's mailboxes; with noselect_too, the \\Noselect names as well (for LIST)."""
        rows = self.db.execute(f"SELECT {_MB_COLS} FROM mailboxes WHERE user_id=? ORDER BY name", (user_id,))
        return [MailboxInfo(*r) for r in rows if noselect_too or not r[-1]]

    def get_mailbox(self, user_id, name):
        return self._mailbox_row(user_id, name)

    def create_mailbox(self, user_id, name, special_use=None):
        with self._tx():
            # Superior names are created too (RFC 9051 6.3.4).
            parts = name.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent and self.db.execute("SELECT 1 FROM mailboxes WHERE user_id=? AND name=?",
                                              (user_id, parent)).fetchone() is None:
                    self._insert_mailbox(user_id, parent)
            # A \Noselect name created again is a new mailbox: new id, new UIDVALIDITY.
            self.db.execute("DELETE FROM mailboxes WHERE user_id=? AND name=? AND noselect",
                            (user_id, name))
            return self._insert_mailbox(user_id, name, special_use)

    def _drop_mailbox(self, mailbox_id) -> list[str]:
        rows = self.db.execute("SELECT m.blob_id, b.size FROM messages m JOIN blobs b ON b.id = m.blob_id "
                               "WHERE m.mailbox_id=?", (mailbox_id,)).fetchall()
        blob_ids = [r[0] for r in rows]
        user_id = self._mailbox_by_id(mailbox_id).user_id
        self._charge(user_id, -sum(r[1] for r in rows), -len(rows))
        self.db.execute("DELETE FROM messages WHERE mailbox_id=?", (mailbox_id,))
        self.db.execute("DELETE FROM expunged WHERE mailbox_id=?", (mailbox_id,))
        self.db.execute("DELETE FROM expunge_floor WHERE mailbox_id=?", (mailbox_id,))
        self.db.execute("DELETE FROM mailboxes WHERE id=?", (mailbox_id,))
        return self._release_blobs(blob_ids)

    def delete_mailbox(self, user_id, name):
        """Delete a mailbox and its messages. One with children leaves its name
        behind as \\Noselect, for them (RFC 9051 6.3.5), until it is deleted
        when it has none."""
        with self._tx():
            info = self._mailbox_row(user_id, name, noselect_too=True)
            children = self._children(user_id, name)
            if info.noselect and children:
                raise MailboxHasChildren("Mailbox has children and no messages: delete them first")
            self._forget_blobs(self._drop_mailbox(info.id))
            if children:
                self.db.execute("UPDATE mailboxes SET noselect=1 WHERE id=?",
                                (self._insert_mailbox(user_id, name).id,))
        return [MailboxGone(info.id)]

    def rename_mailbox(self, user_id, old, new):
        events = []
        with self._tx():
            info = self._mailbox_row(user_id, old, noselect_too=True)
            if self.db.execute("SELECT 1 FROM mailboxes WHERE user_id=? AND name=?", (user_id, new)).fetchone():
                raise MailboxExists("Target mailbox already exists")
            if old == "INBOX":
                # Renaming INBOX moves its messages to the new name; INBOX stays, empty.
                target = self._insert_mailbox(user_id, new)
                uids = [r[0] for r in self.db.execute(
                    "SELECT uid FROM messages WHERE mailbox_id=? ORDER BY uid", (info.id,))]
                if uids:
                    events += self._copy_in_tx(info.id, uids, target.id, move=True).events
                return events
            parts = new.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent == old or parent.startswith(old + "/"):
                    raise StoreError("Can't rename a mailbox under itself")
                if self.db.execute("SELECT 1 FROM mailboxes WHERE user_id=? AND name=?",
                                   (user_id, parent)).fetchone() is None:
                    self._insert_mailbox(user_id, parent)
            for mb in [info] + self._children(user_id, old):
                renamed = new + mb.name[len(old):]
                # A renamed mailbox is a new mailbox to clients: new UIDVALIDITY.
                self.db.execute("UPDATE mailboxes SET name=?, uidvalidity=? WHERE id=?",
                                (renamed, self._next_uidvalidity(), mb.id))
                if self.db.execute("DELETE FROM subscriptions WHERE user_id=? AND name=?",
                                   (user_id, mb.name)).rowcount:
                    self.db.execute("INSERT OR IGNORE INTO subscriptions VALUES (?,?)", (user_id, renamed))
                events.append(MailboxGone(mb.id))
        return events

    def _children(self, user_id, name) -> list[MailboxInfo]:
        # substr, not LIKE: mailbox names are case-sensitive and may hold % or _.
        prefix = name + "/"
        rows = self.db.execute(f"SELECT {_MB_COLS} FROM mailboxes WHERE user_id=? AND substr(name, 1, ?) = ?",
                               (user_id, len(prefix), prefix)).fetchall()
        return [MailboxInfo(*r) for r in rows]

    def subscriptions(self, user_id):
        return {r[0] for r in self.db.execute("SELECT name FROM subscriptions WHERE user_id=?", (user_id,))}

    def set_subscribed(self, user_id, name, subscribed):
        with self._tx():
            if subscribed:
                self.db.execute("INSERT OR IGNORE INTO subscriptions VALUES (?,?)", (user_id, name))
            else:
                self.db.execute("DELETE FROM subscriptions WHERE user_id=? AND name=?", (user_id, name))

    def mailbox_counts(self, mailbox_id):
        info = self._mailbox_by_id(mailbox_id)
        row = self.db.execute(
            """SELECT count(*), coalesce(sum(b.size), 0),
                      coalesce(sum(instr(' ' || m.flags || ' ', ' \\Seen ') = 0), 0),
                      coalesce(sum(instr(' ' || m.flags || ' ', ' \\Deleted ') > 0), 0),
                      coalesce(sum(m.uid >= ?), 0),
                      coalesce(sum(b.size * (instr(' ' || m.flags || ' ', ' \\Deleted ') > 0)), 0)
               FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id=?""",
            (info.first_recent_uid, mailbox_id)).fetchone()
        return {"MESSAGES": row[0], "SIZE": row[1], "UNSEEN": row[2], "DELETED": row[3],
                "RECENT": row[4], "DELETED-STORAGE": (row[5] + 1023) // 1024, "UIDNEXT": info.uidnext, "UIDVALIDITY": info.uidvalidity,
                "HIGHESTMODSEQ": info.highestmodseq}

    def take_recent(self, mailbox_id, upto_uid) -> int:
        """Claim \\Recent for the UIDs below upto_uid, for one session of any
        process: the first UID it gets (those from it on, below upto_uid)."""
        with self._tx():
            row = self.db.execute("SELECT first_recent_uid FROM mailboxes WHERE id=?", (mailbox_id,)).fetchone()
            if row is None:
                return upto_uid
            if upto_uid > row[0]:
                self.db.execute("UPDATE mailboxes SET first_recent_uid=? WHERE id=?", (upto_uid, mailbox_id))
            return row[0]

    def claim_recent(self, mailbox_id, first_recent_uid):
        with self._tx():
            self.db.execute("UPDATE mailboxes SET first_recent_uid=max(first_recent_uid, ?) WHERE id=?",
                            (first_recent_uid, mailbox_id))

    # -- messages -----------------------------------------------------------
    def load_index(self, mailbox_id, from_uid: int = 0):
        # The mailbox first, its messages after: every UID below its uidnext
        # is then among the messages read, or was expunged before (what the
        # shared index relies on to show UIDs in ascending order).
        info = self._mailbox_by_id(mailbox_id)
        rows = self.db.execute(
            """SELECT m.uid, m.flags, m.modseq, b.size, m.internaldate, b.sent_date
               FROM messages m JOIN blobs b ON b.id = m.blob_id
               WHERE m.mailbox_id=? AND m.uid >= ? ORDER BY m.uid""", (mailbox_id, from_uid))
        flagsets: dict[str, frozenset] = {}     # parse each distinct flags text once
        out = []
        for uid, fl, ms, size, idate, sent in rows:
            flags = flagsets.get(fl)
            if flags is None:
                flags = flagsets[fl] = _flags_set(fl)
            out.append(IndexEntry(uid, flags, ms, size, idate, sent))
        return info, out

    def changes_since(self, mailbox_id, modseq: int, from_uid: int):
        """What changed in a mailbox after MODSEQ modseq, for an index that
        knows it up to there and every UID below from_uid: (info, entries of
        the messages from from_uid on or changed since, ascending by UID, UIDs
        expunged since, ascending). The expunged are None if that history was
        forgotten (the caller reads the whole mailbox). info is read first:
        everything up to its highestmodseq is in what follows."""
        info = self._mailbox_by_id(mailbox_id)
        rows = self.db.execute(
            """SELECT m.uid, m.flags, m.modseq, b.size, m.internaldate, b.sent_date
               FROM messages m JOIN blobs b ON b.id = m.blob_id
               WHERE m.mailbox_id=? AND (m.uid >= ? OR m.modseq > ?) ORDER BY m.uid""",
            (mailbox_id, from_uid, modseq))
        entries = [IndexEntry(uid, _flags_set(fl), ms, size, idate, sent) for uid, fl, ms, size, idate, sent in rows]
        return info, entries, self.vanished_since(mailbox_id, modseq)

    def wants_file(self, raw: bytes) -> bool:
        return len(raw) > self.inline_max

    def _blob_id(self, raw: bytes, parsed) -> int:
        key = self.blobs.key_for(raw)
        row = self.db.execute("SELECT id FROM blobs WHERE key=?", (key,)).fetchone()
        if row:
            self.db.execute("UPDATE blobs SET refs = refs + 1 WHERE id=?", (row[0],))
            return row[0]
        inline = None
        if self.wants_file(raw):
            self.blobs.put(raw)     # durable before the row that points at it
        else:
            inline = raw
        p = parsed
        cur = self.db.execute(
            """INSERT INTO blobs(key, size, refs, envelope, body, bodystructure, parts, header_size,
                   sent_date, subject, from_, to_, cc, bcc, message_id, in_reply_to, refs_header,
                   sort_keys)
               VALUES (?,?,1,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (key, len(raw), p.envelope, p.body, p.bodystructure, json.dumps(p.parts), p.header_size,
             p.sent_date, p.subject, p.from_, p.to, p.cc, p.bcc, p.message_id, p.in_reply_to,
             p.references, json.dumps(p.sort_keys, ensure_ascii=False)))
        if inline is not None:
            self.db.execute("INSERT INTO blob_bytes(id, data) VALUES (?,?)", (cur.lastrowid, inline))
        text = p.body_text.lower()
        size = len(text.encode("utf-8", "surrogatepass"))
        self.db.execute("INSERT INTO text_pending(id, size, text) VALUES (?,?,?)", (cur.lastrowid, size, text))
        self._pending_bytes += size
        return cur.lastrowid

    def append(self, mailbox_id, raw, parsed, flags, internaldate):
        return self.append_many(mailbox_id, [(raw, parsed, flags, internaldate)])[0]

    def append_many(self, mailbox_id, items, enforce_quota: bool = True) -> list[AppendResult]:
        """Append several messages in one transaction (MULTIAPPEND is all or
        nothing). enforce_quota=False: mail already accepted, charged anyway."""
        with self._tx():
            user_id, uidvalidity, first, modseq = self._make_room(mailbox_id, len(items))
            # Over quota: the transaction undoes it all, UIDs included (no blob row is left either).
            self._charge(user_id, sum(len(item[0]) for item in items), len(items), enforce_quota)
            blob_ids = [self._blob_id(raw, parsed) for raw, parsed, _f, _d in items]
            results = []
            for i, ((raw, parsed, flags, idate), blob_id) in enumerate(zip(items, blob_ids)):
                uid = first + i
                self.db.execute("INSERT INTO messages VALUES (?,?,?,?,?,?,?)",
                                (mailbox_id, uid, blob_id, modseq, _flags_text(flags), idate, time.time()))
                entry = IndexEntry(uid, frozenset(flags), modseq, len(raw), idate, parsed.sent_date)
                results.append(AppendResult(uidvalidity, uid, [MessageAdded(mailbox_id, entry)]))
        return results

    def append_raw(self, mailbox_id, items) -> list[AppendResult]:
        """append_many of messages as they came, (raw, flags, internaldate,
        binary): parsed here, so the store process, not the server's event
        loop, spends the time (see StoreService.append)."""
        return self.append_many(mailbox_id, [(*normalize_and_parse(raw, binary), flags, idate)
                                             for raw, flags, idate, binary in items])

    def imported_already(self, user_id, sources) -> set:
        """Which of these source keys (transfer/importer.py) were imported for the user."""
        have = set()
        sources = list(sources)
        for i in range(0, len(sources), 500):
            chunk = sources[i:i + 500]
            have.update(r[0] for r in self.db.execute(
                f"SELECT source FROM imported WHERE user_id=? AND source IN ({','.join('?' * len(chunk))})",
                (user_id, *chunk)))
        return have

    def import_messages(self, user_id, mailbox_id, items) -> list[AppendResult]:
        """Append (source key, raw, parsed, flags, internaldate) items not
        imported for the user before, and note them imported, in one
        transaction: an import stopped at any point and run again adds each
        message once. Quotas are charged, not enforced (the admin decides)."""
        with self._tx():
            have = self.imported_already(user_id, [item[0] for item in items])
            new = [item for item in items if item[0] not in have]
            if not new:
                return []
            results = self.append_many(mailbox_id, [item[1:] for item in new], enforce_quota=False)
            self.db.executemany("INSERT OR IGNORE INTO imported(user_id, source) VALUES (?,?)",
                                [(user_id, item[0]) for item in new])
        return results

    # Arrivals from several journals (one per worker), each with its own
    # sequence numbers: the journal is the last argument of these calls.
    ARRIVAL_JOURNALS = True

    @staticmethod
    def _filed_where(journal: int) -> tuple[str, tuple]:
        if journal:
            return "arrivals_filed_by WHERE journal=? AND", (journal,)
        return "arrivals_filed WHERE", ()

    def file_arrival(self, seq, raw, parsed, targets, internaldate, journal: int = 0) -> list[AppendResult]:
        """File a message accepted through the arrivals journal: into each
        (user_id, mailbox_id, flags) of targets, with the record's sequence
        number, in one transaction. Filed already: nothing (a replay). A
        mailbox gone meanwhile: its user's INBOX; the user gone: nowhere.
        Quotas were checked when the mail was accepted: not again."""
        with self._tx():
            table, key = self._filed_where(journal)
            if self.db.execute(f"SELECT 1 FROM {table} seq=?", (*key, seq)).fetchone():
                return []
            if parsed is None and targets:
                raw, parsed = normalize_and_parse(raw)
            results = []
            for user_id, mailbox_id, flags in targets:
                row = self.db.execute("SELECT 1 FROM mailboxes WHERE id=? AND user_id=?",
                                      (mailbox_id, user_id)).fetchone()
                if row is None:
                    row = self.db.execute("SELECT id FROM mailboxes WHERE user_id=? AND name='INBOX'",
                                          (user_id,)).fetchone()
                    if row is None:
                        log.warning("arrival %d: user %d no longer exists; not filed for them", seq, user_id)
                        continue
                    mailbox_id = row[0]
                results += self.append_many(mailbox_id, [(raw, parsed, flags, internaldate)], enforce_quota=False)
            if journal:
                self.db.execute("INSERT INTO arrivals_filed_by(journal, seq) VALUES (?, ?)", (journal, seq))
            else:
                self.db.execute("INSERT INTO arrivals_filed(seq) VALUES (?)", (seq,))
        return results

    def file_arrivals(self, arrivals, journal: int = 0) -> list[list[AppendResult]]:
        """file_arrival of each (seq, raw, parsed, targets, internaldate), in one transaction."""
        with self._tx():
            return [self.file_arrival(*arrival, journal=journal) for arrival in arrivals]

    def filed_arrivals(self, first_seq: int, journal: int = 0) -> set[int]:
        """The sequence numbers from first_seq on that are filed."""
        table, key = self._filed_where(journal)
        return {r[0] for r in self.db.execute(f"SELECT seq FROM {table} seq >= ?", (*key, first_seq))}

    def last_filed_arrival(self, journal: int = 0) -> int:
        table, key = self._filed_where(journal)
        return self.db.execute(f"SELECT coalesce(max(seq), 0) FROM {table} 1", key).fetchone()[0]

    def prune_arrivals(self, below_seq: int, journal: int = 0) -> None:
        """Forget the filing of records the journal no longer holds. Durable:
        its commit makes every filing before it durable too, so the journal
        may then drop their records."""
        table, key = self._filed_where(journal)
        with self._tx():
            self.db.execute(f"DELETE FROM {table} seq < ?", (*key, below_seq))

    def store_flags(self, mailbox_id, uids, mode, flags, unchanged_since=None):
        """Change flags; returns (events, uids refused by UNCHANGEDSINCE)."""
        if not uids:
            return [], []
        events, failed = [], []
        with self._tx():
            modseq = None
            for uid, old_text, old_modseq in self._rows(mailbox_id, uids, "m.uid, m.flags, m.modseq"):
                if unchanged_since is not None and old_modseq > unchanged_since:
                    failed.append(uid)
                    continue
                new_flags = merged_flags(_flags_set(old_text), mode, flags)
                if new_flags is None:
                    continue
                if modseq is None:
                    modseq = self._bump_modseq(mailbox_id)
                self.db.execute("UPDATE messages SET flags=?, modseq=? WHERE mailbox_id=? AND uid=?",
                                (_flags_text(new_flags), modseq, mailbox_id, uid))
                events.append(FlagsChanged(mailbox_id, uid, new_flags, modseq))
        return events, failed

    def _rows(self, mailbox_id, uids, cols, with_blob: bool = False, with_bytes: bool = False):
        """Rows of the given messages (m.*, b.* when with_blob, d.data when
        with_bytes), by UID, in chunks."""
        join = " JOIN blobs b ON b.id = m.blob_id" if with_blob else ""
        if with_bytes:
            join += " LEFT JOIN blob_bytes d ON d.id = m.blob_id"
        if len(uids) > 2000:
            # Many messages (a search over a big mailbox): one range scan, filtered
            # here, costs far less than thousands of IN lookups.
            wanted = set(uids)
            rows = self.db.execute(
                f"SELECT {cols} FROM messages m{join} WHERE m.mailbox_id=? AND m.uid BETWEEN ? AND ? "
                "ORDER BY m.uid", (mailbox_id, min(uids), max(uids)))
            return [r for r in rows if r[0] in wanted]
        out = []
        for i in range(0, len(uids), 500):
            chunk = uids[i:i + 500]
            out += self.db.execute(
                f"SELECT {cols} FROM messages m{join} "
                f"WHERE m.mailbox_id=? AND m.uid IN ({','.join('?' * len(chunk))}) ORDER BY m.uid",
                (mailbox_id, *chunk)).fetchall()
        return out

    def expunge(self, mailbox_id, uids):
        if not uids:
            return []
        with self._tx():
            rows = self._rows(mailbox_id, uids, "m.uid, m.blob_id, b.size", True)
            if not rows:
                return []
            self._charge(self._mailbox_by_id(mailbox_id).user_id, -sum(r[2] for r in rows), -len(rows))
            modseq = self._bump_modseq(mailbox_id)
            gone = [r[0] for r in rows]
            for uid in gone:
                self.db.execute("DELETE FROM messages WHERE mailbox_id=? AND uid=?", (mailbox_id, uid))
                self.db.execute("INSERT OR REPLACE INTO expunged VALUES (?,?,?)", (mailbox_id, uid, modseq))
            self._note_expunges(mailbox_id, len(gone))
            self._forget_blobs(self._release_blobs([r[1] for r in rows]))
        return [MessagesExpunged(mailbox_id, gone, modseq)]

    def copy(self, src_id, uids, dst_id, move=False):
        with self._tx():
            return self._copy_in_tx(src_id, uids, dst_id, move)

    def _copy_in_tx(self, src_id, uids, dst_id, move):
        dst = self._mailbox_by_id(dst_id)
        rows = self._rows(src_id, uids, "m.uid, m.blob_id, m.flags, m.internaldate, b.size, b.sent_date", True)
        if not rows:
            return CopyResult(dst.uidvalidity, [], [], [])
        src_user = self._mailbox_by_id(src_id).user_id
        if not move or src_user != dst.user_id:
            # A move within one user's mailboxes uses nothing more.
            self._charge(dst.user_id, sum(r[4] for r in rows), len(rows))
            if move:
                self._charge(src_user, -sum(r[4] for r in rows), -len(rows))
        first = self._take_uids(dst_id, len(rows))
        modseq = self._bump_modseq(dst_id)
        events, src_uids, dst_uids = [], [], []
        for i, (uid, blob_id, flags, idate, size, sent) in enumerate(rows):
            new_uid = first + i
            self.db.execute("INSERT INTO messages VALUES (?,?,?,?,?,?,?)",
                            (dst_id, new_uid, blob_id, modseq, flags, idate, time.time()))
            self.db.execute("UPDATE blobs SET refs = refs + 1 WHERE id=?", (blob_id,))
            events.append(MessageAdded(dst_id, IndexEntry(new_uid, _flags_set(flags), modseq, size, idate, sent)))
            src_uids.append(uid)
            dst_uids.append(new_uid)
        if move:
            src_modseq = self._bump_modseq(src_id)
            for uid in src_uids:
                self.db.execute("DELETE FROM messages WHERE mailbox_id=? AND uid=?", (src_id, uid))
                self.db.execute("INSERT OR REPLACE INTO expunged VALUES (?,?,?)", (src_id, uid, src_modseq))
            self._note_expunges(src_id, len(src_uids))
            self._release_blobs([r[1] for r in rows])   # refs were added above, so none dies
            events.append(MessagesExpunged(src_id, src_uids, src_modseq))
        return CopyResult(dst.uidvalidity, src_uids, dst_uids, events)

    def message_data(self, mailbox_id, uids, with_bytes=False):
        rows = self._rows(mailbox_id, uids,
                          "m.uid, b.key, b.size, m.internaldate, b.envelope, b.body, "
                          "b.bodystructure, b.parts, b.header_size" + (", d.data" if with_bytes else ""), True,
                          with_bytes)
        return {r[0]: MessageData(*r) for r in rows}

    def search_fields(self, mailbox_id, uids):
        rows = self._rows(mailbox_id, uids,
                          "m.uid, b.sent_date, b.subject, b.from_, b.to_, b.cc, b.bcc, "
                          "b.message_id, b.in_reply_to, b.refs_header", True)
        return {r[0]: SearchFields(*r) for r in rows}

    # A mailbox of at most this many messages (or a search among at most this
    # many UIDs) reads its own texts instead of asking the trigram index,
    # whose hits span every mailbox of the store (a common word in a small
    # mailbox of a big store would read thousands of other users' hits).
    SCAN_TEXTS_UP_TO = 2000

    def search_body(self, mailbox_id, uids, needle):
        """UIDs (among uids; None: the whole mailbox) whose decoded body text
        holds needle, case-insensitively.

        Case folding is the simple, per-character one (as i;unicode-casemap's
        titlecase mapping, RFC 5051): ß matches ẞ, not "ss". The text is kept
        lower-cased. A small mailbox (or a short UID list) has its own texts
        read by rowid and scanned with instr(), in C; a big one asks the
        trigram index with GLOB (needles of three characters or more)."""
        folded = needle.lower()
        limit = self.SCAN_TEXTS_UP_TO
        if uids is not None and len(uids) <= limit:
            return self._scan_texts(mailbox_id, folded, sorted(uids))
        small = self.db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM messages WHERE mailbox_id = ? LIMIT ?)",
            (mailbox_id, limit + 1)).fetchone()[0] <= limit
        if small or len(folded) < 3:
            # (Short needles have no trigram; SQLite 3.40's GLOB also misses a
            # short non-ASCII pattern.)
            found = self._scan_texts(mailbox_id, folded, None)
            return found if uids is None else found.intersection(uids)
        pattern = "*" + "".join(f"[{c}]" if c in "*?[" else c for c in folded) + "*"
        # CROSS JOIN fixes the order: the text index first, then its few messages
        # (the other way round reads every text of the mailbox).
        rows = self.db.execute(
            "SELECT m.uid FROM body_text t CROSS JOIN messages m ON m.blob_id = t.rowid "
            "WHERE t.text GLOB ? AND m.mailbox_id = ?", (pattern, mailbox_id))
        found = {uid for (uid,) in rows}
        # And the texts not yet in the index (few: see text_pending in the schema).
        rows = self.db.execute(
            "SELECT m.uid FROM text_pending p CROSS JOIN messages m ON m.blob_id = p.id "
            "WHERE instr(p.text, ?) > 0 AND m.mailbox_id = ?", (folded, mailbox_id))
        found.update(uid for (uid,) in rows)
        return found if uids is None else found.intersection(uids)

    def _scan_texts(self, mailbox_id, folded, uids):
        """UIDs of the mailbox (all, or those of the sorted list uids) whose
        text, indexed or still pending, holds folded."""
        # A text is in body_text or in text_pending, never both (the move from
        # one to the other is one transaction).
        query = ("SELECT m.uid FROM messages m "
                 "LEFT JOIN text_pending p ON p.id = m.blob_id "
                 "LEFT JOIN body_text t ON t.rowid = m.blob_id AND p.id IS NULL "
                 "WHERE m.mailbox_id = ? {} AND instr(coalesce(p.text, t.text), ?) > 0")
        if uids is None:
            rows = self.db.execute(query.format(""), (mailbox_id, folded))
        else:
            rows = self.db.execute(query.format("AND m.uid IN (SELECT value FROM json_each(?))"),
                                   (mailbox_id, json.dumps(uids), folded))
        return {uid for (uid,) in rows}

    _FIELD_COLUMNS = {"from_": "from_", "to": "to_", "cc": "cc", "bcc": "bcc", "subject": "subject"}

    def search_field(self, mailbox_id, uids, field, needle):
        """UIDs (among uids; None: all) whose decoded From/To/Cc/Bcc/Subject holds needle,
        case-insensitively. An ASCII needle is narrowed down in SQL first (LIKE
        folds ASCII case), so only hits reach Python."""
        column = self._FIELD_COLUMNS[field]
        base = f"SELECT m.uid, b.{column} FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ?"
        if needle.isascii():
            pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self.db.execute(base + f" AND b.{column} LIKE ? ESCAPE '\\'", (mailbox_id, pattern))
        else:
            rows = self.db.execute(base, (mailbox_id,))
        folded = needle.casefold()
        found = {uid for uid, text in rows if folded in text.casefold()}
        return found if uids is None else found.intersection(uids)

    def sort_data(self, mailbox_id):
        """uid -> (sent_date, internaldate, size, parsed SORT keys) for the whole
        mailbox (only sorts on parsed keys come here: the rest sort in memory)."""
        rows = self.db.execute("SELECT m.uid, b.sent_date, m.internaldate, b.size, b.sort_keys "
                               "FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ?",
                               (mailbox_id,))
        return {r[0]: (r[1], r[2], r[3], json.loads(r[4])) for r in rows}

    def save_dates(self, mailbox_id, uids=None):
        """uid -> when it was saved into this mailbox (RFC 8514), None where unknown."""
        rows = self.db.execute("SELECT uid, savedate FROM messages WHERE mailbox_id = ?", (mailbox_id,))
        found = dict(rows.fetchall())
        return found if uids is None else {u: found[u] for u in uids if u in found}

    def thread_data(self, mailbox_id):
        """uid -> (sent_date, internaldate, subject, message_id, in_reply_to, references)."""
        rows = self.db.execute("SELECT m.uid, b.sent_date, m.internaldate, b.subject, b.message_id, "
                               "b.in_reply_to, b.refs_header FROM messages m JOIN blobs b ON b.id = m.blob_id "
                               "WHERE m.mailbox_id = ?", (mailbox_id,))
        return {r[0]: r[1:] for r in rows}

    def urlauth_key(self, mailbox_id):
        row = self.db.execute("SELECT key FROM urlauth_keys WHERE mailbox_id=?", (mailbox_id,)).fetchone()
        return row[0] if row else None

    def signing_key(self, mailbox_id):
        """The mailbox's URLAUTH access key, made on first use."""
        with self._tx():
            key = self.urlauth_key(mailbox_id)
            if key is None:
                key = os.urandom(32)
                self.db.execute("INSERT INTO urlauth_keys VALUES (?,?)", (mailbox_id, key))
        return key

    def reset_urlauth_keys(self, user_id, mailbox_id=None):
        with self._tx():
            if mailbox_id is None:
                self.db.execute("DELETE FROM urlauth_keys WHERE mailbox_id IN "
                                "(SELECT id FROM mailboxes WHERE user_id=?)", (user_id,))
            else:
                self.db.execute("DELETE FROM urlauth_keys WHERE mailbox_id=?", (mailbox_id,))

    def vanished_since(self, mailbox_id, modseq):
        """UIDs expunged with a MODSEQ above modseq, ascending (QRESYNC's VANISHED
        (EARLIER)); None if the history from there was forgotten (see EXPUNGE_HISTORY_MAX)."""
        floor = self.db.execute("SELECT modseq FROM expunge_floor WHERE mailbox_id=?", (mailbox_id,)).fetchone()
        if floor is not None and modseq < floor[0]:
            return None
        rows = self.db.execute("SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                               (mailbox_id, modseq))
        return [r[0] for r in rows]

    def read_blob(self, key, start=0, end=None):
        """Bytes of a blob (a range of them), wherever it is kept. Safe from any
        thread: it reads the database through a connection of that thread's own."""
        path_data = self._reader().execute(
            "SELECT d.data FROM blobs b LEFT JOIN blob_bytes d ON d.id = b.id WHERE b.key=?", (key,)).fetchone()
        if path_data is None:
            raise FileNotFoundError(key)
        if path_data[0] is not None:
            data = path_data[0]
            return data[start:] if end is None else data[start:end]
        return self.blobs.read(key, start, end)

    def blob_path(self, key) -> str:
        return self.blobs.path(key)

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "db", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self._db_path}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.db = conn
            self._readers.append(conn)
        return conn


class _ReadingView:
    """A store whose methods run on another connection: everything is the
    store's own (looked up live), except that self.db is this view's."""

    def __init__(self, store: SQLiteStore, db: sqlite3.Connection):
        self._store = store
        self.db = db

    def __getattr__(self, name):
        value = getattr(self._store, name)
        if getattr(value, "__self__", None) is self._store:
            # The store's method, bound to this view, and kept: methods don't
            # change, and a quick read calls several (data is looked up live).
            method = value.__func__.__get__(self)
            setattr(self, name, method)
            return method
        return value


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception. Nested, it is a
    savepoint: an inner failure undoes the inner work only."""

    def __init__(self, store: SQLiteStore):
        self.store = store
        self.db = store.db
        self.outer = False

    def __enter__(self):
        self.dead_mark = len(self.store._dead_keys)
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.outer = True
        else:
            self.db.execute("SAVEPOINT op")
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            del self.store._dead_keys[self.dead_mark:]
        if self.outer:
            if exc_type is None:
                try:
                    self.db.execute("COMMIT")
                except BaseException:
                    if self.db.in_transaction:
                        self.db.execute("ROLLBACK")
                    self.store._dead_keys.clear()
                    raise
                self.store._after_commit()
            else:
                self.db.execute("ROLLBACK")
        elif exc_type is None:
            self.db.execute("RELEASE op")
        else:
            self.db.execute("ROLLBACK TO op")
            self.db.execute("RELEASE op")
        return False
