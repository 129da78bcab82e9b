"""The mail store in PostgreSQL (psycopg 3): metadata, change log and message bytes.

The same Store API and semantics as the SQLite store, for several nodes over
one database:
- Every change to a mailbox's messages first locks the mailbox's row (an
  UPDATE ... RETURNING or SELECT ... FOR UPDATE), and takes its UIDs and MODSEQ
  from that row in the same transaction. Changes to one mailbox are therefore
  serialized across nodes: UIDs commit (become visible) in ascending order,
  MODSEQ never goes down, and a flag change reads and writes its rows with no
  other writer in between (no lost update).
- Locks are taken in one order (mailboxes by id, then quota, then blobs), so
  nodes don't deadlock one another.
- Message bytes live in blob_chunks, deduplicated by SHA-256 (blobs.key);
  a node needs nothing but the database URL.
- A change that must be durable before OK commits with synchronous_commit on;
  the lazy kinds (flags, expunges, \\Recent) commit with it off, as the SQLite
  store commits them without fsync.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time

import psycopg
import psycopg.sql
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from ..api import (AppendResult, CopyResult, DeliveryFacts, FlagsChanged, IndexEntry, MailboxExists,
                   MailboxGone, MailboxHasChildren, MailboxInfo, MessageAdded, MessageData, MessagesExpunged,
                   merged_flags, NoSuchMailbox, NoSuchUser, Outbound, OverQuota, Quota, SearchFields, Store,
                   StoreError, User, UserExists)
from ..parsing import normalize_and_parse
from .schema import CHUNK, upgrade

log = logging.getLogger("posthouse.store")

_MB_COLS = "id, user_id, name, uidvalidity, uidnext, highestmodseq, special_use, first_recent_uid, noselect"
# Other nodes are told of each change at its commit (store/postgres/bus.py):
# NOTIFY from the statement that numbers it, so it costs no round trip. The
# payload: "M <origin> <mailbox id> <MODSEQ> <kind>", from a mailbox's row.
CHANNEL = "posthouse_changes"
_NOTIFY_CHANGE = f"pg_notify('{CHANNEL}', concat_ws(' ', 'M', %s::text, id, highestmodseq, %s::text))"
_MB_COLS_OF_M = ", ".join("m." + c.strip() for c in _MB_COLS.split(","))


def _flags_text(flags) -> str:
    return " ".join(sorted(flags))


def _flags_set(text: str) -> frozenset:
    return frozenset(text.split()) if text else frozenset()


def _text(value):
    """A str PostgreSQL's text takes: no NUL, no lone surrogate (both can come
    out of decoding broken mail); None stays None."""
    if value is None or (value.isascii() and "\x00" not in value):
        return value
    value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")


def default_node() -> str:
    """Who files arrivals from a journal: this host and its data directory."""
    return socket.gethostname()


class PostgresStore(Store):
    LAZY = frozenset({"store_flags", "expunge", "claim_recent", "file_arrivals", "take_recent"})
    READS = frozenset({"get_user", "user_by_id", "list_users", "list_mailboxes", "get_mailbox", "subscriptions",
                       "mailbox_counts", "load_index", "message_data", "search_fields", "search_body", "sort_data",
                       "search_field", "thread_data", "vanished_since", "urlauth_key",
                       "read_blob", "get_quota", "active_script", "delivery_facts", "get_script",
                       "list_scripts", "next_outbound_time", "filed_arrivals",
                       "last_filed_arrival", "save_dates", "changes_since"})
    # Reads that may scan a whole mailbox: on reader threads with connections of their own.
    LONG_READS = frozenset({"load_index", "search_fields", "search_field", "search_body", "sort_data",
                            "thread_data", "vanished_since", "message_data", "save_dates", "changes_since"})
    # A queued message being sent is leased to one node for this long (a node
    # that dies while sending leaves it to another after the lease).
    OUTBOUND_LEASE = 300.0

    EXPUNGE_HISTORY_MAX = 50_000
    EXPUNGE_HISTORY_KEEP = 25_000
    EXPUNGE_CHECK_EVERY = 1_000

    def __init__(self, url: str, quota_storage: int | None = None, quota_messages: int | None = None,
                 node: str | None = None, synchronous: bool = True, schema: str = "mail",
                 lessee: str | None = None, origin: str | None = None):
        self.node = node or default_node()
        # Who leases queued messages to send: this server, the same in its
        # store process (open_args) and new when the server starts again.
        self.lessee = lessee or f"{self.node}#{os.getpid()}.{time.time_ns()}"
        # Who made a change, in its NOTIFY: a server hears its own and skips
        # them (it told its sessions already); the same in its store process.
        self.origin = origin or os.urandom(6).hex()
        # How to open this store again elsewhere (the store process does).
        self.open_args = {"url": url, "quota_storage": quota_storage, "quota_messages": quota_messages,
                          "node": node, "synchronous": synchronous, "schema": schema, "lessee": self.lessee,
                          "origin": self.origin}
        self.url = url
        # Its own PostgreSQL schema: the CRM's tables may share the database.
        self.schema = schema
        self.synchronous = synchronous
        self.quota_defaults = (quota_storage, quota_messages)
        self.db = self._connect(create_schema=True)
        self._sync_on = synchronous        # the writer connection's synchronous_commit
        upgrade(self.db)
        self._local = threading.local()
        self._readers: list[psycopg.Connection] = []
        self._readers_lock = threading.Lock()
        self._durable = True
        self._flat = False      # inside _run_flat: nested transactions take no savepoint
        self._expunges_unchecked: dict[int, int] = {}

    def _connect(self, create_schema: bool = False) -> psycopg.Connection:
        try:
            db = psycopg.connect(self.url, autocommit=True)
        except psycopg.OperationalError as e:
            raise StoreError(f"can't reach the mail store's database: {e}") from e
        name = psycopg.sql.Identifier(self.schema)
        if create_schema and db.execute("SELECT to_regnamespace(%s)", (self.schema,)).fetchone()[0] is None:
            db.execute(psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
        db.execute(psycopg.sql.SQL("SET search_path TO {}").format(name))
        # Durable before OK: a commit returns once the WAL is flushed.
        db.execute("SET synchronous_commit = " + ("on" if self.synchronous else "off"))
        return db

    def _set_sync(self, on: bool) -> None:
        """synchronous_commit for the next transaction, set (outside one, so
        that no rollback undoes it) only when it changes."""
        if on != self._sync_on:
            self.db.execute("SET synchronous_commit = " + ("on" if on else "off"))
            self._sync_on = on

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self.db.close()

    # -- transactions ----------------------------------------------------------
    def _tx(self):
        return _Transaction(self)

    def run_batch(self, calls, durable: bool = True) -> list[tuple[bool, object]]:
        """Group commit: calls in one transaction, each in its own savepoint
        (see SQLiteStore.run_batch). durable=False: all of them are LAZY."""
        self._durable = durable
        if self.db.broken or self.db.closed:
            # The database restarted, or the network broke: what was under way
            # failed with it (its callers were told); start again on a new connection.
            log.warning("the mail store's database connection was lost; connecting again")
            self.db = self._connect()
            self._sync_on = self.synchronous
        try:
            for attempt in range(self.RETRIES + 1):
                try:
                    return self._run_once(calls)
                except self._RETRYABLE as e:
                    if attempt == self.RETRIES:
                        return [(False, e)] * len(calls)
                    log.info("store calls and another transaction waited for each other (%s); "
                             "making the batch again", type(e).__name__)
        finally:
            self._durable = True

    # Two transactions (of two nodes) each waiting for a row the other holds:
    # PostgreSQL ends a statement of one. The locks of that batch's earlier
    # calls stay held until it ends, so the whole batch is undone (nothing of
    # it was answered yet) and made again, this many times at most.
    RETRIES = 3
    _RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)

    # The calls that lock mailbox rows, by the positions of the arguments
    # naming the mailboxes; and those of them that also lock the owner's quota row.
    _MAILBOX_ARGS = {"append": (0,), "append_many": (0,), "append_raw": (0,), "store_flags": (0,),
                     "expunge": (0,), "copy": (0, 2), "take_recent": (0,), "claim_recent": (0,),
                     "import_messages": (1,)}
    _CHARGING = frozenset({"append", "append_many", "append_raw", "expunge", "copy", "import_messages",
                           "file_arrivals"})

    def rows_locked_by(self, method: str, args: tuple) -> tuple[tuple, tuple]:
        """(mailbox ids whose rows the call locks, mailbox ids whose owners'
        quota rows it locks too); unknown calls: none known."""
        try:
            if method == "file_arrivals":       # [(seq, raw, parsed, [(user, mailbox, flags)...], time)...]
                ids = tuple({int(target[1]) for arrival in args[0] for target in arrival[3]})
            else:
                ids = tuple(int(args[i]) for i in self._MAILBOX_ARGS.get(method, ()))
        except (IndexError, TypeError, ValueError):
            return (), ()
        return ids, (ids if method in self._CHARGING else ())

    def _lock_in_order(self, calls) -> None:
        """Lock the rows a batch's calls will lock, first and in one order
        (mailboxes by id, then quotas by user): each call locks its own in
        that order, but a batch of calls on several mailboxes would lock them
        in the order the calls came, and two nodes' batches could then each
        wait for the other (PostgreSQL ends one only after deadlock_timeout,
        a second by default: 200 clients over 3 nodes spent most of their time so)."""
        mailboxes, charged = set(), set()
        for call in calls:
            ids, charging = getattr(call, "locks", ((), ()))
            mailboxes.update(ids)
            charged.update(charging)
        if len(mailboxes) > 1:
            self.db.execute("SELECT id FROM mailboxes WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                            (sorted(mailboxes),))
        if charged and len(mailboxes) > 1:
            self.db.execute("SELECT user_id FROM quota WHERE user_id IN "
                            "(SELECT user_id FROM mailboxes WHERE id = ANY(%s)) ORDER BY user_id FOR UPDATE",
                            (sorted(charged),))

    # The calls a batch may run without savepoints (each is two round trips
    # to the database, a third of a busy node's time): all or nothing.
    FLAT_CALLS = frozenset({"store_flags", "expunge", "append", "append_many", "append_raw", "copy",
                            "take_recent", "claim_recent", "file_arrivals"})

    def _run_once(self, calls) -> list[tuple[bool, object]]:
        if all(getattr(call, "method", None) in self.FLAT_CALLS for call in calls):
            # Most batches fail nowhere: run them without a savepoint around
            # each call (nor inside one); if one fails, the whole transaction
            # is undone and the batch made again below, each call in its own.
            try:
                return self._run_flat(calls)
            except self._RETRYABLE:
                raise
            except Exception as e:
                if len(calls) == 1:
                    return [(False, e)]
        if len(calls) == 1:
            # Alone, a call needs no savepoint of its own: failing, it undoes the transaction.
            try:
                with self._tx():
                    self._lock_in_order(calls)
                    return [(True, calls[0]())]
            except self._RETRYABLE:
                raise
            except Exception as e:
                return [(False, e)]
        out = []
        with self._tx():
            self._lock_in_order(calls)
            for call in calls:
                try:
                    with self._tx():
                        out.append((True, call()))
                except self._RETRYABLE:
                    raise
                except Exception as e:
                    out.append((False, e))
        return out

    def _run_flat(self, calls) -> list[tuple[bool, object]]:
        """Every call in one transaction, no savepoints; raises if any fails
        (the transaction undone)."""
        self._flat = True
        try:
            with self._tx():
                self._lock_in_order(calls)
                out = [(True, call()) for call in calls]
                if self.db.info.transaction_status == TransactionStatus.INERROR:
                    # A call caught a failed statement and went on: not all of it is there.
                    raise psycopg.errors.InFailedSqlTransaction("a statement failed inside a call")
            return out
        finally:
            self._flat = False

    def idle_work(self) -> bool:
        """Deferred work when nothing else waits; True if more remains."""
        return self._trim_expunge_history()

    def _note_expunges(self, mailbox_id: int, count: int) -> None:
        self._expunges_unchecked[mailbox_id] = self._expunges_unchecked.get(mailbox_id, 0) + count

    def _trim_expunge_history(self) -> bool:
        due = next((m for m, n in self._expunges_unchecked.items() if n >= self.EXPUNGE_CHECK_EVERY), None)
        if due is None:
            return False
        del self._expunges_unchecked[due]
        q = "SELECT modseq FROM expunged WHERE mailbox_id=%s ORDER BY modseq DESC LIMIT 1 OFFSET %s"
        if self.db.execute(q, (due, self.EXPUNGE_HISTORY_MAX)).fetchone() is None:
            return True
        cutoff = self.db.execute(q, (due, self.EXPUNGE_HISTORY_KEEP)).fetchone()[0]
        self._durable = False
        try:
            with self._tx():
                self.db.execute("DELETE FROM expunged WHERE mailbox_id=%s AND modseq <= %s", (due, cutoff))
                self.db.execute("INSERT INTO expunge_floor VALUES (%s, %s) ON CONFLICT (mailbox_id) "
                                "DO UPDATE SET modseq = greatest(expunge_floor.modseq, excluded.modseq)",
                                (due, cutoff))
        finally:
            self._durable = True
        return True

    # -- reading off the writer's connection -------------------------------------
    def reading(self) -> PostgresStore:
        """This store through the calling thread's own connection (for
        LONG_READS on reader threads, and read_blob on I/O threads)."""
        view = getattr(self._local, "view", None)
        if view is None or view.db.broken or view.db.closed:
            view = self._local.view = _ReadingView(self, self._reader())
        return view

    def _reader(self) -> psycopg.Connection:
        conn = getattr(self._local, "db", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()
            self._local.db = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    # -- quota --------------------------------------------------------------------
    def _limits(self, storage_limit, message_limit) -> tuple:
        storage_default, message_default = self.quota_defaults
        storage = storage_default if storage_limit is None else (None if storage_limit < 0 else storage_limit)
        messages = message_default if message_limit is None else (None if message_limit < 0 else message_limit)
        return storage, messages

    def _charge(self, user_id: int, storage: int, messages: int, enforce: bool = True) -> None:
        """Add to a user's usage in this transaction (the quota row stays locked
        until it ends); an increase past a limit raises OverQuota."""
        if not storage and not messages:
            return
        row = self.db.execute(
            "UPDATE quota SET storage = storage + %s, messages = messages + %s WHERE user_id = %s "
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
                              "WHERE user_id=%s", (user_id,)).fetchone()
        if row is None:
            raise NoSuchUser("no such user")
        return Quota(row[0], row[1], *self._limits(row[2], row[3]))

    def set_quota(self, name, storage_limit, message_limit):
        def value(v):
            return {"default": None, "none": -1}[v] if isinstance(v, str) else v
        user = self.get_user(name)
        if user is None:
            raise NoSuchUser(f"no user {name}")
        with self._tx():
            if storage_limit is not None:
                self.db.execute("UPDATE quota SET storage_limit=%s WHERE user_id=%s", (value(storage_limit), user.id))
            if message_limit is not None:
                self.db.execute("UPDATE quota SET message_limit=%s WHERE user_id=%s", (value(message_limit), user.id))

    # -- sieve scripts --------------------------------------------------------
    def put_script(self, user_id, name, script):
        with self._tx():
            self.db.execute("INSERT INTO sieve_scripts(user_id, name, script) VALUES (%s,%s,%s) "
                            "ON CONFLICT (user_id, name) DO UPDATE SET script=excluded.script",
                            (user_id, name, _text(script)))

    def get_script(self, user_id, name):
        row = self.db.execute("SELECT script FROM sieve_scripts WHERE user_id=%s AND name=%s",
                              (user_id, name)).fetchone()
        return row[0] if row else None

    def list_scripts(self, user_id):
        return [(r[0], bool(r[1])) for r in self.db.execute(
            "SELECT name, active FROM sieve_scripts WHERE user_id=%s ORDER BY name", (user_id,))]

    def activate_script(self, user_id, name):
        with self._tx():
            if name is not None and self.get_script(user_id, name) is None:
                raise StoreError(f"No script named {name}")
            self.db.execute("UPDATE sieve_scripts SET active = (name IS NOT DISTINCT FROM %s) WHERE user_id=%s",
                            (name, user_id))

    def delete_script(self, user_id, name):
        with self._tx():
            row = self.db.execute("SELECT active FROM sieve_scripts WHERE user_id=%s AND name=%s FOR UPDATE",
                                  (user_id, name)).fetchone()
            if row is None:
                raise StoreError(f"No script named {name}")
            if row[0]:
                raise StoreError("The active script can't be deleted; deactivate it first")
            self.db.execute("DELETE FROM sieve_scripts WHERE user_id=%s AND name=%s", (user_id, name))

    def rename_script(self, user_id, old, new):
        with self._tx():
            if self.get_script(user_id, old) is None:
                raise StoreError(f"No script named {old}")
            if self.get_script(user_id, new) is not None:
                raise StoreError(f"A script named {new} exists")
            self.db.execute("UPDATE sieve_scripts SET name=%s WHERE user_id=%s AND name=%s", (new, user_id, old))

    def active_script(self, user_id):
        row = self.db.execute("SELECT script FROM sieve_scripts WHERE user_id=%s AND active",
                              (user_id,)).fetchone()
        return row[0] if row else None

    def delivery_facts(self, name):
        row = self.db.execute(
            "SELECT u.id, u.name, u.password, q.storage, q.messages, q.storage_limit, q.message_limit, "
            "(SELECT script FROM sieve_scripts WHERE user_id = u.id AND active), "
            + _MB_COLS_OF_M +
            " FROM users u LEFT JOIN quota q ON q.user_id = u.id "
            "LEFT JOIN mailboxes m ON m.user_id = u.id AND m.name = 'INBOX' "
            "WHERE lower(u.name) = lower(%s)", (name,)).fetchone()
        if row is None:
            return None
        quota = Quota(row[3] or 0, row[4] or 0, *self._limits(row[5], row[6]))
        inbox = MailboxInfo(*row[8:]) if row[8] is not None else None
        return DeliveryFacts(User(*row[:3]), quota, row[7], inbox)

    # -- the outbound queue -----------------------------------------------------
    def enqueue(self, user_id, sender, recipients, data, now):
        with self._tx():
            return self.db.execute(
                "INSERT INTO outbound(user_id, sender, recipients, data, created, next_attempt) "
                "VALUES (%s,%s,%s,%s,%s,%s) RETURNING id",
                (user_id, _text(sender), json.dumps(recipients), data, now, now)).fetchone()[0]

    def due_outbound(self, now, limit):
        """The messages due, each leased to this server (OUTBOUND_LEASE) so
        that no other node sends it meanwhile: a message is sent by one node.
        Leases an earlier run of this node held (it stopped mid-send) end now."""
        with self._tx():
            rows = self.db.execute(
                "UPDATE outbound SET next_attempt = %s, leased_by = %s WHERE id IN (SELECT id FROM outbound "
                "WHERE next_attempt <= %s OR (leased_by <> %s AND left(leased_by, %s) = %s) "
                "ORDER BY next_attempt LIMIT %s FOR UPDATE SKIP LOCKED) "
                "RETURNING id, user_id, sender, recipients, data, created, attempts, last_error",
                (now + self.OUTBOUND_LEASE, self.lessee, now, self.lessee, len(self.node) + 1, self.node + "#",
                 limit)).fetchall()
        rows.sort(key=lambda r: r[0])
        return [Outbound(r[0], r[1], r[2], json.loads(r[3]), bytes(r[4]), r[5], r[6], r[7]) for r in rows]

    def outbound_attempted(self, item_id, remaining, next_attempt, error):
        with self._tx():
            if not remaining or next_attempt is None:
                self.db.execute("DELETE FROM outbound WHERE id=%s", (item_id,))
            else:
                self.db.execute("UPDATE outbound SET recipients=%s, attempts=attempts+1, next_attempt=%s, "
                                "last_error=%s, leased_by=NULL WHERE id=%s",
                                (json.dumps(remaining), next_attempt, _text(error), item_id))

    def figures(self) -> dict:
        """For `posthouse status` and the metrics: counts from the database
        (shared by every node), the outbound queue, and the database's size."""
        users, mailboxes = self.db.execute(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM mailboxes WHERE noselect = 0)").fetchone()
        # Every user's usage, kept with each change (the quota rows): no scan of the messages.
        messages, storage = self.db.execute(
            "SELECT coalesce(sum(messages), 0), coalesce(sum(storage), 0) FROM quota").fetchone()
        length, oldest = self.db.execute("SELECT count(*), min(created) FROM outbound").fetchone()
        size = self.db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        return {"kind": "postgresql", "users": users, "mailboxes": mailboxes, "messages": int(messages),
                "message_bytes": int(storage), "bytes": size, "queue": {"length": length, "oldest": oldest}}

    def next_outbound_time(self):
        return self.db.execute("SELECT min(next_attempt) FROM outbound").fetchone()[0]

    def vacation_due(self, user_id, sender, handle, days, now):
        """Whether sender should get a vacation reply now; noted if so (one statement: no race)."""
        with self._tx():
            row = self.db.execute(
                "INSERT INTO vacation_replies VALUES (%s,%s,%s,%s) ON CONFLICT (user_id, sender, handle) "
                "DO UPDATE SET until = excluded.until WHERE vacation_replies.until <= %s RETURNING 1",
                (user_id, _text(sender), _text(handle), now + days * 86400, now)).fetchone()
        return row is not None

    # -- ids, mailboxes by id, UIDs and MODSEQs -----------------------------------
    def _next_uidvalidity(self) -> int:
        return self.db.execute(
            "INSERT INTO meta(key, value) VALUES ('uidvalidity', %s) ON CONFLICT (key) "
            "DO UPDATE SET value = greatest(excluded.value, meta.value + 1) RETURNING value",
            (int(time.time()),)).fetchone()[0]

    def _mailbox_row(self, user_id: int, name: str, noselect_too: bool = False) -> MailboxInfo:
        row = self.db.execute(f"SELECT {_MB_COLS} FROM mailboxes WHERE user_id=%s AND name=%s",
                              (user_id, name)).fetchone()
        if row is None or (row[-1] and not noselect_too):
            raise NoSuchMailbox("Mailbox doesn't exist: " + name)
        return MailboxInfo(*row)

    def _mailbox_by_id(self, mailbox_id: int, lock: bool = False) -> MailboxInfo:
        row = self.db.execute(f"SELECT {_MB_COLS} FROM mailboxes WHERE id=%s" + (" FOR UPDATE" if lock else ""),
                              (mailbox_id,)).fetchone()
        if row is None:
            raise NoSuchMailbox("Mailbox doesn't exist")
        return MailboxInfo(*row)

    def _lock_mailboxes(self, *mailbox_ids) -> dict[int, MailboxInfo]:
        """Lock mailbox rows, lowest id first (every writer locks in this order)."""
        return {i: self._mailbox_by_id(i, lock=True) for i in sorted(set(mailbox_ids))}

    def _bump_modseq(self, mailbox_id: int, kind: str) -> int:
        """The next MODSEQ of a mailbox (its row locked), and other nodes told
        of it at commit (kind: "a" messages added, "f" flags, "x" expunged)."""
        row = self.db.execute("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id=%s "
                              "RETURNING highestmodseq, " + _NOTIFY_CHANGE, (mailbox_id, self.origin, kind)).fetchone()
        if row is None:
            raise NoSuchMailbox("Mailbox doesn't exist")
        return row[0]

    def _make_room(self, mailbox_id: int, count: int) -> tuple[int, int, int, int]:
        """For new messages: (user_id, uidvalidity, first UID, MODSEQ), taken
        from the mailbox's row, which stays locked until the transaction ends."""
        row = self.db.execute(
            "UPDATE mailboxes SET uidnext = uidnext + %s, highestmodseq = highestmodseq + 1 WHERE id=%s "
            "RETURNING user_id, uidvalidity, uidnext - %s, highestmodseq, " + _NOTIFY_CHANGE,
            (count, mailbox_id, count, self.origin, "a")).fetchone()
        if row is None:
            raise NoSuchMailbox("Mailbox doesn't exist")
        return row[:4]

    def _notify_list(self, user_id: int, kind: str, name: str, old_name: str | None = None,
                     mailbox_id: int | None = None, gone=()) -> None:
        """Tell other nodes at commit that a user's list of mailboxes changed
        (NOTIFY's MailboxName, SubscriptionChange), and which mailboxes are
        gone: "L <origin> <json>". A name too long for a payload is left out:
        the nodes then only read the list again."""
        change = {"u": user_id, "k": kind, "n": name, "o": old_name, "m": mailbox_id, "g": list(gone)}
        payload = "L " + self.origin + " " + json.dumps(change, separators=(",", ":"))
        if len(payload.encode()) > 7000:
            payload = "L " + self.origin + " " + json.dumps({"u": user_id, "k": "changed", "g": list(gone)[:500]})
        self.db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def _take_uids(self, mailbox_id: int, count: int) -> int:
        return self.db.execute("UPDATE mailboxes SET uidnext = uidnext + %s WHERE id=%s RETURNING uidnext - %s",
                               (count, mailbox_id, count)).fetchone()[0]

    # -- blobs ------------------------------------------------------------------------
    def _blob_id(self, raw: bytes, parsed) -> int:
        """The row of this content, with one more reference: made, bytes and
        search text with it, if new (one statement). Two nodes storing the
        same new content at once: one inserts, the other's insert does
        nothing (after waiting for the first) and it takes a reference."""
        key = hashlib.sha256(raw).hexdigest()
        p = parsed
        chunks = [raw[i:i + CHUNK] for i in range(0, max(len(raw), 1), CHUNK)]
        while True:
            row = self.db.execute(
                """WITH b AS (
                       INSERT INTO blobs(key, size, refs, envelope, body, bodystructure, parts, header_size,
                           sent_date, subject, from_, to_, cc, bcc, message_id, in_reply_to, refs_header, sort_keys)
                       VALUES (%s,%s,1,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)
                       ON CONFLICT (key) DO NOTHING RETURNING id),
                   c AS (INSERT INTO blob_chunks(blob_id, n, data)
                       SELECT b.id, x.n - 1, x.data FROM b, unnest(%s::bytea[]) WITH ORDINALITY AS x(data, n)),
                   t AS (INSERT INTO body_text(blob_id, text) SELECT b.id, %s FROM b)
                   SELECT id FROM b""",
                (key, len(raw), p.envelope, p.body, p.bodystructure, json.dumps(p.parts), p.header_size,
                 p.sent_date, _text(p.subject), _text(p.from_), _text(p.to), _text(p.cc), _text(p.bcc),
                 _text(p.message_id), _text(p.in_reply_to), _text(p.references),
                 json.dumps(p.sort_keys, ensure_ascii=False), chunks, _text(p.body_text.lower()))).fetchone()
            if row is None:
                row = self.db.execute("UPDATE blobs SET refs = refs + 1 WHERE key=%s RETURNING id", (key,)).fetchone()
            if row is not None:
                return row[0]

    def _add_refs(self, blob_ids, step: int) -> None:
        """step references more (or fewer) to each of blob_ids, once per mention, in one statement."""
        if blob_ids:
            self.db.execute("UPDATE blobs SET refs = refs + c.n * %s FROM (SELECT id, count(*) AS n "
                            "FROM unnest(%s::bigint[]) AS id GROUP BY id) c WHERE blobs.id = c.id",
                            (step, list(blob_ids)))

    def _release_blobs(self, blob_ids) -> None:
        """Drop one reference from each blob; one no message holds goes, bytes and all."""
        if blob_ids:
            self._add_refs(blob_ids, -1)
            self.db.execute("DELETE FROM blobs WHERE id = ANY(%s::bigint[]) AND refs <= 0", (list(set(blob_ids)),))

    # -- users --------------------------------------------------------------
    def create_user(self, name, password_hash, mailboxes):
        with self._tx():
            try:
                with self._tx():
                    user_id = self.db.execute(
                        "INSERT INTO users(name, password, created) VALUES (%s,%s,%s) RETURNING id",
                        (name, password_hash, time.time())).fetchone()[0]
            except pg_errors.UniqueViolation:
                raise UserExists(f"user {name} exists") from None
            self.db.execute("INSERT INTO quota(user_id) VALUES (%s)", (user_id,))
            for mbox, special in mailboxes:
                self._insert_mailbox(user_id, mbox, special)
                self.db.execute("INSERT INTO subscriptions VALUES (%s,%s) ON CONFLICT DO NOTHING", (user_id, mbox))
        return User(user_id, name, password_hash)

    def get_user(self, name):
        row = self.db.execute("SELECT id, name, password FROM users WHERE lower(name)=lower(%s)", (name,)).fetchone()
        return User(*row) if row else None

    def user_by_id(self, user_id):
        row = self.db.execute("SELECT id, name, password FROM users WHERE id=%s", (user_id,)).fetchone()
        return User(*row) if row else None

    def set_password(self, name, password_hash):
        with self._tx():
            cur = self.db.execute("UPDATE users SET password=%s WHERE lower(name)=lower(%s)", (password_hash, name))
            if cur.rowcount == 0:
                raise NoSuchUser(f"no user {name}")

    def delete_user(self, name):
        user = self.get_user(name)
        if user is None:
            raise NoSuchUser(f"no user {name}")
        events = []
        with self._tx():
            ids = [r[0] for r in self.db.execute("SELECT id FROM mailboxes WHERE user_id=%s ORDER BY id",
                                                 (user.id,)).fetchall()]
            self._lock_mailboxes(*ids)
            for mbox_id in ids:
                self._drop_mailbox(mbox_id)
                events.append(MailboxGone(mbox_id))
            self.db.execute("DELETE FROM users WHERE id=%s", (user.id,))
            self._notify_list(user.id, "changed", "", gone=ids)
        return events

    def list_users(self):
        return [r[0] for r in self.db.execute("SELECT name FROM users ORDER BY lower(name)")]

    # -- mailboxes ----------------------------------------------------------
    def _insert_mailbox(self, user_id, name, special_use=None) -> MailboxInfo:
        uidvalidity = self._next_uidvalidity()
        try:
            with self._tx():
                row = self.db.execute(
                    f"INSERT INTO mailboxes(user_id, name, uidvalidity, special_use) VALUES (%s,%s,%s,%s) "
                    f"RETURNING {_MB_COLS}", (user_id, name, uidvalidity, special_use)).fetchone()
        except pg_errors.UniqueViolation:
            raise MailboxExists("Mailbox already exists") from None
        return MailboxInfo(*row)

    def list_mailboxes(self, user_id, noselect_too: bool = False):
        rows = self.db.execute(f"SELECT {_MB_COLS} FROM mailboxes WHERE user_id=%s ORDER BY name", (user_id,))
        return [MailboxInfo(*r) for r in rows if noselect_too or not r[-1]]

    def get_mailbox(self, user_id, name):
        return self._mailbox_row(user_id, name)

    def _exists(self, user_id, name) -> bool:
        return self.db.execute("SELECT 1 FROM mailboxes WHERE user_id=%s AND name=%s",
                               (user_id, name)).fetchone() is not None

    def create_mailbox(self, user_id, name, special_use=None):
        with self._tx():
            parts = name.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent and not self._exists(user_id, parent):
                    try:
                        self._insert_mailbox(user_id, parent)
                    except MailboxExists:       # made by another node just now
                        pass
            self.db.execute("DELETE FROM mailboxes WHERE user_id=%s AND name=%s AND noselect <> 0",
                            (user_id, name))
            info = self._insert_mailbox(user_id, name, special_use)
            self._notify_list(user_id, "created", name, mailbox_id=info.id)
            return info

    def _drop_mailbox(self, mailbox_id) -> None:
        """Delete a mailbox and its messages (its row locked by the caller)."""
        rows = self.db.execute("SELECT m.blob_id, b.size FROM messages m JOIN blobs b ON b.id = m.blob_id "
                               "WHERE m.mailbox_id=%s", (mailbox_id,)).fetchall()
        user_id = self._mailbox_by_id(mailbox_id).user_id
        self._charge(user_id, -sum(r[1] for r in rows), -len(rows))
        self.db.execute("DELETE FROM messages WHERE mailbox_id=%s", (mailbox_id,))
        self.db.execute("DELETE FROM mailboxes WHERE id=%s", (mailbox_id,))    # cascades: history, keys
        self._release_blobs([r[0] for r in rows])

    def delete_mailbox(self, user_id, name):
        with self._tx():
            info = self._mailbox_row(user_id, name, noselect_too=True)
            self._lock_mailboxes(info.id)
            children = self._children(user_id, name)
            if info.noselect and children:
                raise MailboxHasChildren("Mailbox has children and no messages: delete them first")
            self._drop_mailbox(info.id)
            if children:
                self.db.execute("UPDATE mailboxes SET noselect=1 WHERE id=%s",
                                (self._insert_mailbox(user_id, name).id,))
            self._notify_list(user_id, "deleted", name, gone=[info.id])
        return [MailboxGone(info.id)]

    def rename_mailbox(self, user_id, old, new):
        events = []
        with self._tx():
            info = self._mailbox_row(user_id, old, noselect_too=True)
            if self._exists(user_id, new):
                raise MailboxExists("Target mailbox already exists")
            if old == "INBOX":
                target = self._insert_mailbox(user_id, new)
                self._lock_mailboxes(info.id, target.id)
                uids = [r[0] for r in self.db.execute(
                    "SELECT uid FROM messages WHERE mailbox_id=%s ORDER BY uid", (info.id,))]
                if uids:
                    events += self._copy_in_tx(info.id, uids, target.id, move=True).events
                self._notify_list(user_id, "renamed", new, old, mailbox_id=target.id)
                return events
            parts = new.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent == old or parent.startswith(old + "/"):
                    raise StoreError("Can't rename a mailbox under itself")
                if not self._exists(user_id, parent):
                    self._insert_mailbox(user_id, parent)
            moving = [info] + self._children(user_id, old)
            self._lock_mailboxes(*(mb.id for mb in moving))
            for mb in moving:
                renamed = new + mb.name[len(old):]
                try:
                    with self._tx():
                        self.db.execute("UPDATE mailboxes SET name=%s, uidvalidity=%s WHERE id=%s",
                                        (renamed, self._next_uidvalidity(), mb.id))
                except pg_errors.UniqueViolation:
                    raise MailboxExists("Target mailbox already exists") from None
                if self.db.execute("DELETE FROM subscriptions WHERE user_id=%s AND name=%s",
                                   (user_id, mb.name)).rowcount:
                    self.db.execute("INSERT INTO subscriptions VALUES (%s,%s) ON CONFLICT DO NOTHING",
                                    (user_id, renamed))
                events.append(MailboxGone(mb.id))
            self._notify_list(user_id, "renamed", new, old, mailbox_id=info.id, gone=[mb.id for mb in moving])
        return events

    def _children(self, user_id, name) -> list[MailboxInfo]:
        prefix = name + "/"
        rows = self.db.execute(f"SELECT {_MB_COLS} FROM mailboxes WHERE user_id=%s AND left(name, %s) = %s",
                               (user_id, len(prefix), prefix)).fetchall()
        return [MailboxInfo(*r) for r in rows]

    def subscriptions(self, user_id):
        return {r[0] for r in self.db.execute("SELECT name FROM subscriptions WHERE user_id=%s", (user_id,))}

    def set_subscribed(self, user_id, name, subscribed):
        with self._tx():
            if subscribed:
                self.db.execute("INSERT INTO subscriptions VALUES (%s,%s) ON CONFLICT DO NOTHING", (user_id, name))
            else:
                self.db.execute("DELETE FROM subscriptions WHERE user_id=%s AND name=%s", (user_id, name))
            self._notify_list(user_id, "subscribed" if subscribed else "unsubscribed", name)

    def mailbox_counts(self, mailbox_id):
        info = self._mailbox_by_id(mailbox_id)
        seen, deleted = " \\Seen ", " \\Deleted "
        row = self.db.execute(
            """SELECT count(*), coalesce(sum(b.size), 0),
                      count(*) FILTER (WHERE strpos(' ' || m.flags || ' ', %s) = 0),
                      count(*) FILTER (WHERE strpos(' ' || m.flags || ' ', %s) > 0),
                      count(*) FILTER (WHERE m.uid >= %s),
                      coalesce(sum(b.size) FILTER (WHERE strpos(' ' || m.flags || ' ', %s) > 0), 0)
               FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id=%s""",
            (seen, deleted, info.first_recent_uid, deleted, mailbox_id)).fetchone()
        return {"MESSAGES": row[0], "SIZE": int(row[1]), "UNSEEN": row[2], "DELETED": row[3],
                "RECENT": row[4], "DELETED-STORAGE": (int(row[5]) + 1023) // 1024, "UIDNEXT": info.uidnext,
                "UIDVALIDITY": info.uidvalidity, "HIGHESTMODSEQ": info.highestmodseq}

    def take_recent(self, mailbox_id, upto_uid) -> int:
        """See SQLiteStore.take_recent (several workers: one session of any gets each)."""
        with self._tx():
            row = self.db.execute("SELECT first_recent_uid FROM mailboxes WHERE id=%s FOR UPDATE",
                                  (mailbox_id,)).fetchone()
            if row is None:
                return upto_uid
            if upto_uid > row[0]:
                self.db.execute("UPDATE mailboxes SET first_recent_uid=%s WHERE id=%s", (upto_uid, mailbox_id))
            return row[0]

    def claim_recent(self, mailbox_id, first_recent_uid):
        with self._tx():
            self.db.execute("UPDATE mailboxes SET first_recent_uid=greatest(first_recent_uid, %s) WHERE id=%s",
                            (first_recent_uid, mailbox_id))

    # -- messages -----------------------------------------------------------
    def load_index(self, mailbox_id, from_uid: int = 0):
        # The mailbox first, its messages after (a later snapshot): every UID
        # below its uidnext is then among the messages read, or was expunged.
        info = self._mailbox_by_id(mailbox_id)
        rows = self.db.execute(
            """SELECT m.uid, m.flags, m.modseq, b.size, m.internaldate, b.sent_date
               FROM messages m JOIN blobs b ON b.id = m.blob_id
               WHERE m.mailbox_id=%s AND m.uid >= %s ORDER BY m.uid""", (mailbox_id, from_uid))
        flagsets: dict[str, frozenset] = {}
        out = []
        for uid, fl, ms, size, idate, sent in rows:
            flags = flagsets.get(fl)
            if flags is None:
                flags = flagsets[fl] = _flags_set(fl)
            out.append(IndexEntry(uid, flags, ms, size, idate, sent))
        return info, out

    def changes_since(self, mailbox_id, modseq: int, from_uid: int):
        """See SQLiteStore.changes_since: the change log read from a MODSEQ on
        (what a node woken by another's NOTIFY reads). The mailbox's row is
        read first: every change numbered up to its highestmodseq committed
        before, so the reads after it see them all."""
        info = self._mailbox_by_id(mailbox_id)
        rows = self.db.execute(
            """SELECT m.uid, m.flags, m.modseq, b.size, m.internaldate, b.sent_date
               FROM messages m JOIN blobs b ON b.id = m.blob_id
               WHERE m.mailbox_id=%s AND (m.uid >= %s OR m.modseq > %s) ORDER BY m.uid""",
            (mailbox_id, from_uid, modseq))
        entries = [IndexEntry(uid, _flags_set(fl), ms, size, idate, sent) for uid, fl, ms, size, idate, sent in rows]
        return info, entries, self.vanished_since(mailbox_id, modseq)

    def append(self, mailbox_id, raw, parsed, flags, internaldate):
        return self.append_many(mailbox_id, [(raw, parsed, flags, internaldate)])[0]

    def append_many(self, mailbox_id, items, enforce_quota: bool = True) -> list[AppendResult]:
        with self._tx():
            # The mailbox row first: locked until commit, so the next append
            # to it (from any node) takes its UIDs after these are visible.
            user_id, uidvalidity, first, modseq = self._make_room(mailbox_id, len(items))
            self._charge(user_id, sum(len(item[0]) for item in items), len(items), enforce_quota)
            blob_ids = [self._blob_id(raw, parsed) for raw, parsed, _f, _d in items]
            now = time.time()
            rows, results = [], []
            for i, ((raw, parsed, flags, idate), blob_id) in enumerate(zip(items, blob_ids)):
                uid = first + i
                rows.append((mailbox_id, uid, blob_id, modseq, _flags_text(flags), idate, now))
                entry = IndexEntry(uid, frozenset(flags), modseq, len(raw), idate, parsed.sent_date)
                results.append(AppendResult(uidvalidity, uid, [MessageAdded(mailbox_id, entry)]))
            with self.db.cursor() as cur:
                cur.executemany("INSERT INTO messages VALUES (%s,%s,%s,%s,%s,%s,%s)", rows)
        return results

    def append_raw(self, mailbox_id, items) -> list[AppendResult]:
        return self.append_many(mailbox_id, [(*normalize_and_parse(raw, binary), flags, idate)
                                             for raw, flags, idate, binary in items])

    def imported_already(self, user_id, sources) -> set:
        sources = list(sources)
        if not sources:
            return set()
        rows = self.db.execute("SELECT source FROM imported WHERE user_id=%s AND source = ANY(%s)",
                               (user_id, sources))
        return {bytes(r[0]) for r in rows}

    def import_messages(self, user_id, mailbox_id, items) -> list[AppendResult]:
        with self._tx():
            have = self.imported_already(user_id, [item[0] for item in items])
            new = [item for item in items if item[0] not in have]
            if not new:
                return []
            results = self.append_many(mailbox_id, [item[1:] for item in new], enforce_quota=False)
            with self.db.cursor() as cur:
                cur.executemany("INSERT INTO imported(user_id, source) VALUES (%s,%s) ON CONFLICT DO NOTHING",
                                [(user_id, item[0]) for item in new])
        return results

    def file_arrival(self, seq, raw, parsed, targets, internaldate) -> list[AppendResult]:
        """See SQLiteStore.file_arrival; the record is this node's (self.node)."""
        with self._tx():
            claimed = self.db.execute("INSERT INTO arrivals_filed(node, seq) VALUES (%s,%s) "
                                      "ON CONFLICT DO NOTHING RETURNING 1", (self.node, seq)).fetchone()
            if claimed is None:
                return []
            if parsed is None and targets:
                raw, parsed = normalize_and_parse(raw)
            results = []
            for user_id, mailbox_id, flags in targets:
                row = self.db.execute("SELECT 1 FROM mailboxes WHERE id=%s AND user_id=%s",
                                      (mailbox_id, user_id)).fetchone()
                if row is None:
                    row = self.db.execute("SELECT id FROM mailboxes WHERE user_id=%s AND name='INBOX'",
                                          (user_id,)).fetchone()
                    if row is None:
                        log.warning("arrival %d: user %d no longer exists; not filed for them", seq, user_id)
                        continue
                    mailbox_id = row[0]
                results += self.append_many(mailbox_id, [(raw, parsed, flags, internaldate)], enforce_quota=False)
        return results

    def file_arrivals(self, arrivals) -> list[list[AppendResult]]:
        with self._tx():
            return [self.file_arrival(*arrival) for arrival in arrivals]

    def filed_arrivals(self, first_seq: int) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT seq FROM arrivals_filed WHERE node=%s AND seq >= %s",
                                              (self.node, first_seq))}

    def last_filed_arrival(self) -> int:
        return self.db.execute("SELECT coalesce(max(seq), 0) FROM arrivals_filed WHERE node=%s",
                               (self.node,)).fetchone()[0]

    def prune_arrivals(self, below_seq: int) -> None:
        with self._tx():
            self.db.execute("DELETE FROM arrivals_filed WHERE node=%s AND seq < %s", (self.node, below_seq))

    def store_flags(self, mailbox_id, uids, mode, flags, unchanged_since=None):
        """Change flags; returns (events, uids refused by UNCHANGEDSINCE). The
        mailbox row is locked first: no other writer changes these rows between
        this read and the write."""
        if not uids:
            return [], []
        events, failed = [], []
        with self._tx():
            self._mailbox_by_id(mailbox_id, lock=True)
            modseq = None
            updates = []
            for uid, old_text, old_modseq in self._rows(mailbox_id, uids, "m.uid, m.flags, m.modseq"):
                if unchanged_since is not None and old_modseq > unchanged_since:
                    failed.append(uid)
                    continue
                new_flags = merged_flags(_flags_set(old_text), mode, flags)
                if new_flags is None:
                    continue
                if modseq is None:
                    modseq = self._bump_modseq(mailbox_id, "f")
                updates.append((_flags_text(new_flags), modseq, mailbox_id, uid))
                events.append(FlagsChanged(mailbox_id, uid, new_flags, modseq))
            if updates:
                with self.db.cursor() as cur:
                    cur.executemany("UPDATE messages SET flags=%s, modseq=%s WHERE mailbox_id=%s AND uid=%s",
                                    updates)
        return events, failed

    def _rows(self, mailbox_id, uids, cols, with_blob: bool = False):
        if not uids:
            return []
        join = " JOIN blobs b ON b.id = m.blob_id" if with_blob else ""
        if len(uids) > 2000:
            wanted = set(uids)
            rows = self.db.execute(
                f"SELECT {cols} FROM messages m{join} WHERE m.mailbox_id=%s AND m.uid BETWEEN %s AND %s "
                "ORDER BY m.uid", (mailbox_id, min(uids), max(uids)))
            return [r for r in rows if r[0] in wanted]
        return self.db.execute(f"SELECT {cols} FROM messages m{join} WHERE m.mailbox_id=%s AND m.uid = ANY(%s) "
                               "ORDER BY m.uid", (mailbox_id, list(uids))).fetchall()

    def expunge(self, mailbox_id, uids):
        if not uids:
            return []
        with self._tx():
            info = self._mailbox_by_id(mailbox_id, lock=True)
            rows = self._rows(mailbox_id, uids, "m.uid, m.blob_id, b.size", True)
            if not rows:
                return []
            self._charge(info.user_id, -sum(r[2] for r in rows), -len(rows))
            modseq = self._bump_modseq(mailbox_id, "x")
            gone = [r[0] for r in rows]
            self._remove_messages(mailbox_id, gone, modseq)
            self._release_blobs([r[1] for r in rows])
        return [MessagesExpunged(mailbox_id, gone, modseq)]

    def _remove_messages(self, mailbox_id, uids, modseq) -> None:
        self.db.execute("DELETE FROM messages WHERE mailbox_id=%s AND uid = ANY(%s)", (mailbox_id, uids))
        self.db.execute("INSERT INTO expunged SELECT %s, u, %s FROM unnest(%s::bigint[]) u "
                        "ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq",
                        (mailbox_id, modseq, uids))
        self._note_expunges(mailbox_id, len(uids))

    def copy(self, src_id, uids, dst_id, move=False):
        with self._tx():
            return self._copy_in_tx(src_id, uids, dst_id, move)

    def _copy_in_tx(self, src_id, uids, dst_id, move):
        locked = self._lock_mailboxes(src_id, dst_id)
        dst, src = locked[dst_id], locked[src_id]
        rows = self._rows(src_id, uids, "m.uid, m.blob_id, m.flags, m.internaldate, b.size, b.sent_date", True)
        if not rows:
            return CopyResult(dst.uidvalidity, [], [], [])
        if not move or src.user_id != dst.user_id:
            self._charge(dst.user_id, sum(r[4] for r in rows), len(rows))
            if move:
                self._charge(src.user_id, -sum(r[4] for r in rows), -len(rows))
        first = self._take_uids(dst_id, len(rows))
        modseq = self._bump_modseq(dst_id, "a")
        events, src_uids, dst_uids, inserts = [], [], [], []
        now = time.time()
        for i, (uid, blob_id, flags, idate, size, sent) in enumerate(rows):
            new_uid = first + i
            inserts.append((dst_id, new_uid, blob_id, modseq, flags, idate, now))
            events.append(MessageAdded(dst_id, IndexEntry(new_uid, _flags_set(flags), modseq, size, idate, sent)))
            src_uids.append(uid)
            dst_uids.append(new_uid)
        with self.db.cursor() as cur:
            cur.executemany("INSERT INTO messages VALUES (%s,%s,%s,%s,%s,%s,%s)", inserts)
        self._add_refs([r[1] for r in rows], 1)
        if move:
            src_modseq = self._bump_modseq(src_id, "x")
            self._remove_messages(src_id, src_uids, src_modseq)
            self._release_blobs([r[1] for r in rows])
            events.append(MessagesExpunged(src_id, src_uids, src_modseq))
        return CopyResult(dst.uidvalidity, src_uids, dst_uids, events)

    def message_data(self, mailbox_id, uids, with_bytes=False):
        """What FETCH needs; with_bytes: the bytes too, of messages that are one chunk."""
        cols = ("m.uid, b.key, b.size, m.internaldate, b.envelope, b.body, b.bodystructure, b.parts, "
                "b.header_size")
        if with_bytes:
            cols += (f", CASE WHEN b.size <= {CHUNK} THEN (SELECT c.data FROM blob_chunks c "
                     "WHERE c.blob_id = b.id AND c.n = 0) END")
        out = {}
        for r in self._rows(mailbox_id, uids, cols, True):
            inline = None if len(r) < 10 or r[9] is None else bytes(r[9])
            out[r[0]] = MessageData(r[0], r[1], r[2], r[3], bytes(r[4]), bytes(r[5]), bytes(r[6]), r[7], r[8],
                                    inline)
        return out

    def search_fields(self, mailbox_id, uids):
        rows = self._rows(mailbox_id, uids,
                          "m.uid, b.sent_date, b.subject, b.from_, b.to_, b.cc, b.bcc, "
                          "b.message_id, b.in_reply_to, b.refs_header", True)
        return {r[0]: SearchFields(*r) for r in rows}

    def search_body(self, mailbox_id, uids, needle):
        """UIDs whose decoded body text holds needle, case-insensitively (the
        text is kept lower-cased; see SQLiteStore.search_body)."""
        folded = _text(needle.lower())
        rows = self.db.execute(
            "SELECT m.uid FROM messages m JOIN body_text t ON t.blob_id = m.blob_id "
            "WHERE m.mailbox_id = %s AND strpos(t.text, %s) > 0", (mailbox_id, folded))
        found = {uid for (uid,) in rows}
        return found if uids is None else found.intersection(uids)

    _FIELD_COLUMNS = {"from_": "from_", "to": "to_", "cc": "cc", "bcc": "bcc", "subject": "subject"}

    def search_field(self, mailbox_id, uids, field, needle):
        column = self._FIELD_COLUMNS[field]
        base = f"SELECT m.uid, b.{column} FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = %s"
        if needle.isascii() and "\x00" not in needle:
            pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self.db.execute(base + f" AND b.{column} ILIKE %s", (mailbox_id, pattern))
        else:
            rows = self.db.execute(base, (mailbox_id,))
        folded = needle.casefold()
        found = {uid for uid, text in rows if folded in text.casefold()}
        return found if uids is None else found.intersection(uids)

    def sort_data(self, mailbox_id):
        rows = self.db.execute("SELECT m.uid, b.sent_date, m.internaldate, b.size, b.sort_keys "
                               "FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = %s",
                               (mailbox_id,))
        return {r[0]: (r[1], r[2], r[3], json.loads(r[4])) for r in rows}

    def save_dates(self, mailbox_id, uids=None):
        rows = self.db.execute("SELECT uid, savedate FROM messages WHERE mailbox_id = %s", (mailbox_id,))
        found = dict(rows.fetchall())
        return found if uids is None else {u: found[u] for u in uids if u in found}

    def thread_data(self, mailbox_id):
        rows = self.db.execute("SELECT m.uid, b.sent_date, m.internaldate, b.subject, b.message_id, "
                               "b.in_reply_to, b.refs_header FROM messages m JOIN blobs b ON b.id = m.blob_id "
                               "WHERE m.mailbox_id = %s", (mailbox_id,))
        return {r[0]: tuple(r[1:]) for r in rows}

    def urlauth_key(self, mailbox_id):
        row = self.db.execute("SELECT key FROM urlauth_keys WHERE mailbox_id=%s", (mailbox_id,)).fetchone()
        return bytes(row[0]) if row else None

    def signing_key(self, mailbox_id):
        with self._tx():
            self.db.execute("INSERT INTO urlauth_keys VALUES (%s,%s) ON CONFLICT DO NOTHING",
                            (mailbox_id, os.urandom(32)))
            return self.urlauth_key(mailbox_id)

    def reset_urlauth_keys(self, user_id, mailbox_id=None):
        with self._tx():
            if mailbox_id is None:
                self.db.execute("DELETE FROM urlauth_keys WHERE mailbox_id IN "
                                "(SELECT id FROM mailboxes WHERE user_id=%s)", (user_id,))
            else:
                self.db.execute("DELETE FROM urlauth_keys WHERE mailbox_id=%s", (mailbox_id,))

    def vanished_since(self, mailbox_id, modseq):
        floor = self.db.execute("SELECT modseq FROM expunge_floor WHERE mailbox_id=%s", (mailbox_id,)).fetchone()
        if floor is not None and modseq < floor[0]:
            return None
        rows = self.db.execute("SELECT uid FROM expunged WHERE mailbox_id = %s AND modseq > %s ORDER BY uid",
                               (mailbox_id, modseq))
        return [r[0] for r in rows]

    def read_blob(self, key, start=0, end=None):
        """Bytes of a blob (a range of them), from its chunks; safe from any
        thread (each reads through a connection of its own)."""
        db = self._reader()
        row = db.execute("SELECT id, size FROM blobs WHERE key=%s", (key,)).fetchone()
        if row is None:
            raise FileNotFoundError(key)
        blob_id, size = row
        end = size if end is None else min(end, size)
        if start >= end:
            return b""
        # Each chunk's part of [start, end), cut out by the database.
        rows = db.execute(
            "SELECT substring(data FROM greatest(%s - n * %s, 0) + 1 "
            "FOR least(%s - n * %s, %s) - greatest(%s - n * %s, 0)) "
            "FROM blob_chunks WHERE blob_id = %s AND n BETWEEN %s AND %s ORDER BY n",
            (start, CHUNK, end, CHUNK, CHUNK, start, CHUNK, blob_id, start // CHUNK, (end - 1) // CHUNK))
        return b"".join(bytes(r[0]) for r in rows)


class _ReadingView:
    """The store with another connection as self.db (see SQLiteStore's)."""

    def __init__(self, store: PostgresStore, db):
        self._store = store
        self.db = db

    def __getattr__(self, name):
        value = getattr(self._store, name)
        if getattr(value, "__self__", None) is self._store:
            method = value.__func__.__get__(self)
            setattr(self, name, method)
            return method
        return value


class _Transaction:
    """BEGIN ... COMMIT on the writer's connection, rolled back on any
    exception; nested, a savepoint. A lazy batch commits without waiting
    for its WAL flush (synchronous_commit off for that transaction)."""

    def __init__(self, store: PostgresStore):
        self.store = store
        self.db = store.db
        self.outer = False
        self.flat = False

    def __enter__(self):
        if self.store._flat and self.db.info.transaction_status != TransactionStatus.IDLE:
            self.flat = True        # (PostgresStore._run_flat: no savepoint; a failure undoes it all)
            return self
        if self.db.info.transaction_status == TransactionStatus.IDLE:
            self.store._set_sync(self.store._durable and self.store.synchronous)
            self.db.execute("BEGIN")
            self.outer = True
        else:
            self.db.execute("SAVEPOINT op")
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.flat:
            return False
        if self.outer:
            if exc_type is None:
                try:
                    self.db.execute("COMMIT")
                except BaseException:
                    if self.db.info.transaction_status != TransactionStatus.IDLE:
                        self.db.execute("ROLLBACK")
                    raise
            elif not self.db.closed and self.db.info.transaction_status != TransactionStatus.UNKNOWN:
                self.db.execute("ROLLBACK")
        elif exc_type is None:
            self.db.execute("RELEASE op")
        else:
            self.db.execute("ROLLBACK TO op")
            self.db.execute("RELEASE op")
        return False
