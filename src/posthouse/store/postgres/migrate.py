"""`posthouse migrate --to postgresql://...`: copy the SQLite store of a data
directory into PostgreSQL, keeping every id, UID, UIDVALIDITY, MODSEQ, flag,
quota, Sieve script, subscription and the expunge history, so clients
resynchronize with QRESYNC as if nothing had moved.

The copy is one transaction: it is all there, or nothing is. It refuses a
database whose mail store has users already. Stop the server first: a change
made during the copy would not be in it.
"""
from __future__ import annotations

import sys
import time

from ..api import StoreError

# Tables copied row for row: (table, columns), in an order that satisfies references.
_PLAIN = [
    ("users", "id, name, password, created"),
    ("quota", "user_id, storage, messages, storage_limit, message_limit"),
    ("vacation_replies", "user_id, sender, handle, until"),
    ("outbound", "id, user_id, sender, recipients, data, created, attempts, next_attempt, last_error"),
    ("mailboxes", "id, user_id, name, uidvalidity, uidnext, highestmodseq, special_use, first_recent_uid, noselect"),
    ("subscriptions", "user_id, name"),
]
_AFTER_MESSAGES = [
    ("urlauth_keys", "mailbox_id, key"),
    ("expunged", "mailbox_id, uid, modseq"),
    ("expunge_floor", "mailbox_id, modseq"),
    ("imported", "user_id, source"),
]
_BLOB_COLS = ("id, key, size, refs, envelope, body, bodystructure, parts, header_size, sent_date, subject, from_, "
              "to_, cc, bcc, message_id, in_reply_to, refs_header, sort_keys")
_TEXT_COLUMNS = {"name", "password", "sender", "handle", "recipients", "last_error", "special_use", "subject",
                 "from_", "to_", "cc", "bcc", "message_id", "in_reply_to", "refs_header", "sort_keys", "parts",
                 "flags", "script"}
BATCH = 200


def _clean(columns: str, rows) -> list[tuple]:
    from .backend import _text
    names = [c.strip() for c in columns.split(",")]
    texts = [i for i, n in enumerate(names) if n in _TEXT_COLUMNS]
    out = []
    for row in rows:
        row = list(row)
        for i in texts:
            if isinstance(row[i], str):
                row[i] = _text(row[i])
        out.append(tuple(row))
    return out


def copy_store(src, dst, node: str, say=lambda text: None) -> dict[str, int]:
    """Copy the SQLite store src into the empty PostgreSQL store dst, in one
    transaction; node: the name dst files the data directory's arrivals under.
    Returns the number of rows copied per table."""
    db, sdb = dst.db, src.db
    if db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None:
        raise StoreError("the PostgreSQL mail store has users already; migrate into an empty one")
    counts: dict[str, int] = {}

    def copy_rows(table: str, columns: str, query: str | None = None, convert=None) -> None:
        rows = sdb.execute(query or f"SELECT {columns} FROM {table}")
        marks = ",".join(["%s"] * len(columns.split(",")))
        n = 0
        with db.cursor() as cur:
            while chunk := rows.fetchmany(BATCH):
                chunk = _clean(columns, chunk)
                if convert is not None:
                    chunk = [convert(r) for r in chunk]
                cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", chunk)
                n += len(chunk)
        counts[table] = n

    with dst._tx():
        for table, columns in _PLAIN:
            copy_rows(table, columns)
            say(f"{table}: {counts[table]}")
        copy_rows("sieve_scripts", "user_id, name, script, active",
                  convert=lambda r: (r[0], r[1], r[2], bool(r[3])))
        _copy_blobs(src, dst, counts, say)
        copy_rows("messages", "mailbox_id, uid, blob_id, modseq, flags, internaldate, savedate")
        say(f"messages: {counts['messages']}")
        for table, columns in _AFTER_MESSAGES:
            copy_rows(table, columns)
        copy_rows("arrivals_filed", "node, seq", "SELECT seq, seq FROM arrivals_filed",
                  convert=lambda r: (node, r[1]))
        row = sdb.execute("SELECT value FROM meta WHERE key='uidvalidity'").fetchone()
        if row is not None:
            db.execute("INSERT INTO meta(key, value) VALUES ('uidvalidity', %s) ON CONFLICT (key) "
                       "DO UPDATE SET value = greatest(meta.value, excluded.value)", (row[0],))
        # New ids continue after every id the SQLite store ever gave (it never reuses one).
        for table in ("users", "mailboxes", "blobs", "outbound"):
            top = sdb.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
            given = sdb.execute("SELECT value FROM meta WHERE key=?", ("last_id_" + table,)).fetchone()
            top = max(top, given[0] if given else 0)
            if top:
                db.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (table, top))
    return counts


def _copy_blobs(src, dst, counts: dict, say) -> None:
    """Each blob's row, its bytes (from the database or its file), and its search text."""
    from .backend import _text
    from .schema import CHUNK
    sdb, db = src.db, dst.db
    marks = ",".join(["%s"] * len(_BLOB_COLS.split(",")))
    blobs = chunks = 0
    rows = sdb.execute(f"SELECT {_BLOB_COLS} FROM blobs ORDER BY id")
    started = time.monotonic()
    with db.cursor() as cur:
        while batch := rows.fetchmany(BATCH):
            batch = _clean(_BLOB_COLS, batch)
            cur.executemany(f"INSERT INTO blobs ({_BLOB_COLS}) VALUES ({marks})", batch)
            for row in batch:
                blob_id, key = row[0], row[1]
                raw = src.read_blob(key)
                parts = [(blob_id, n, raw[i:i + CHUNK]) for n, i in enumerate(range(0, max(len(raw), 1), CHUNK))]
                cur.executemany("INSERT INTO blob_chunks(blob_id, n, data) VALUES (%s,%s,%s)", parts)
                chunks += len(parts)
                cur.execute("INSERT INTO body_text(blob_id, text) VALUES (%s,%s)",
                            (blob_id, _text(_search_text(src, blob_id, raw))))
            blobs += len(batch)
            say(f"blobs: {blobs} ({time.monotonic() - started:.0f} s)")
    counts["blobs"], counts["blob_chunks"] = blobs, chunks


def _search_text(src, blob_id: int, raw: bytes) -> str:
    """The lower-cased body text the SQLite store keeps (waiting, or in its
    index); made again from the bytes if it has none."""
    for query in ("SELECT text FROM text_pending WHERE id=?", "SELECT text FROM body_text WHERE rowid=?"):
        row = src.db.execute(query, (blob_id,)).fetchone()
        if row is not None:
            return row[0]
    from ..parsing import normalize_and_parse
    return normalize_and_parse(raw)[1].body_text.lower()


def register(subparsers) -> None:
    p = subparsers.add_parser("migrate", help="copy this data directory's SQLite mail store into PostgreSQL")
    p.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://user:password@host/database (its mail store must be empty)")
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args) -> int:
    from ...app import store_node
    from ...config import load_config
    from ..sqlite.backend import SQLiteStore
    from .backend import PostgresStore
    if not args.to.startswith(("postgresql://", "postgres://")):
        print("posthouse: --to wants a postgresql:// URL", file=sys.stderr)
        return 2
    config = load_config(args.config, args.data_dir)
    try:
        src = SQLiteStore(config.data_dir, fsync=False)
    except Exception as e:
        print(f"posthouse: can't open the store in {config.data_dir}: {e}", file=sys.stderr)
        return 1
    try:
        dst = PostgresStore(args.to)
    except StoreError as e:
        src.close()
        print(f"posthouse: {e}", file=sys.stderr)
        return 1
    try:
        counts = copy_store(src, dst, store_node(config),
                            say=(lambda text: print(text, file=sys.stderr)) if sys.stderr.isatty() else (lambda t: None))
    except StoreError as e:
        print(f"posthouse: {e}", file=sys.stderr)
        return 1
    finally:
        src.close()
        dst.close()
    print(f"copied {counts['users']} users, {counts['mailboxes']} mailboxes, {counts['messages']} messages "
          f"({counts['blobs']} distinct bodies) into {args.to.split('@')[-1]}; "
          "set database_url to that URL to serve from it")
    return 0
