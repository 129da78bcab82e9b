"""The embedded store's SQLite schema, and the steps that bring an older store up to it.

SCHEMA creates what is missing (a new store gets everything at once); a store
made by an older Posthouse keeps its tables, and upgrade() adds what they lack,
one numbered step at a time, recorded in PRAGMA user_version. Opening a store
that is current writes nothing (every statement is IF NOT EXISTS, triggers are
replaced only where they differ), so a store on a full disk still opens.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password TEXT NOT NULL,
    created REAL NOT NULL
);
-- Quota (RFC 9208): what each user uses, kept in step by every change to
-- their messages in the same transaction, and their limits. A NULL limit is
-- the server's default; a negative one is "no limit".
CREATE TABLE IF NOT EXISTS quota (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    storage INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    storage_limit INTEGER,
    message_limit INTEGER
);
-- Sieve scripts (RFC 5228), per user; at most one active (RFC 5804).
CREATE TABLE IF NOT EXISTS sieve_scripts (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    script TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, name)
) WITHOUT ROWID;
-- Whom a vacation action (RFC 5230) has answered, and until when it stays quiet.
CREATE TABLE IF NOT EXISTS vacation_replies (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sender TEXT NOT NULL,
    handle TEXT NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (user_id, sender, handle)
) WITHOUT ROWID;
-- The outbound queue: submitted mail for other domains, until the smarthost
-- has taken it for every recipient or it is given up (and bounced).
CREATE TABLE IF NOT EXISTS outbound (
    id INTEGER PRIMARY KEY,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    sender TEXT NOT NULL,
    recipients TEXT NOT NULL,          -- JSON: the recipients still to do
    data BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbound_due ON outbound(next_attempt);
CREATE TABLE IF NOT EXISTS mailboxes (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    special_use TEXT,
    first_recent_uid INTEGER NOT NULL DEFAULT 1,
    -- 1: a name kept, with no messages, for its children after a DELETE (Noselect)
    noselect INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user_id, name)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
) WITHOUT ROWID;
-- One row per distinct message content; the bytes live in the blob store.
-- Everything MIME parsing produces is kept here, so FETCH never re-parses.
CREATE TABLE IF NOT EXISTS blobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: body_text rows outlive their blob a while
    key TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL,
    envelope BLOB NOT NULL,
    body BLOB NOT NULL,
    bodystructure BLOB NOT NULL,
    parts TEXT NOT NULL,
    header_size INTEGER NOT NULL,
    sent_date REAL,
    subject TEXT NOT NULL,
    from_ TEXT NOT NULL,
    to_ TEXT NOT NULL,
    cc TEXT NOT NULL,
    bcc TEXT NOT NULL,
    message_id TEXT NOT NULL,
    in_reply_to TEXT NOT NULL,
    refs_header TEXT NOT NULL,
    sort_keys TEXT NOT NULL    -- JSON: the SORT keys that take parsing (mime.message.sort_keys)
);
-- The bytes of small messages (bigger ones are files in the blob store). A
-- table of their own keeps the rows of blobs narrow, so scans of metadata
-- (sizes, dates, addresses) don't wade through message bodies. id = blobs.id.
CREATE TABLE IF NOT EXISTS blob_bytes (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
-- SEARCH BODY: the decoded text of each blob, lower-cased, indexed by trigrams
-- so that a substring of three or more characters is found without a scan
-- (RFC 9051 asks for substring matches, which word tokenizers can't give).
-- detail=none keeps no positions: half the indexing cost; GLOB still uses the
-- index and checks the text itself. rowid = blobs.id.
CREATE VIRTUAL TABLE IF NOT EXISTS body_text USING fts5(
    text, tokenize='trigram case_sensitive 1', detail=none);
-- Removing a text from the index costs as much as adding it (FTS5 tokenizes it
-- again), so an expunge only notes it here and the store removes it when idle.
-- Searches never see such rows: they join with the messages that still exist.
CREATE TABLE IF NOT EXISTS text_garbage (id INTEGER PRIMARY KEY);
-- Texts of new mail not yet in the index. Adding a few texts to FTS5 in each
-- small transaction costs a new index segment each time (a third of a
-- delivery's commit); the store moves them in batches when idle, or while
-- busy once more than a few megabytes wait. A body search scans this bounded
-- backlog with instr() besides asking the index.
CREATE TABLE IF NOT EXISTS text_pending (
    id INTEGER PRIMARY KEY,    -- blobs.id
    size INTEGER NOT NULL,     -- of text, in UTF-8 bytes: the backlog is bounded by bytes
    text TEXT NOT NULL         -- lower-cased, as body_text keeps it
);
CREATE TABLE IF NOT EXISTS messages (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    blob_id INTEGER NOT NULL REFERENCES blobs(id),
    modseq INTEGER NOT NULL,
    flags TEXT NOT NULL,
    internaldate REAL NOT NULL,
    -- When the message was saved into this mailbox (RFC 8514 SAVEDATE): APPEND,
    -- delivery, COPY and MOVE set it. NULL for rows older than the column.
    savedate REAL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
-- Which messages hold a blob: body search hits and blob reference counting.
CREATE INDEX IF NOT EXISTS messages_blob ON messages(blob_id);
-- URLAUTH (RFC 4467): each mailbox's access key, which signs the URLs
-- GENURLAUTH hands out; RESETKEY deletes it, and every URL it signed dies.
CREATE TABLE IF NOT EXISTS urlauth_keys (
    mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
    key BLOB NOT NULL
);
-- Arrivals (delivery/journal.py) filed from the journal: a record's filing
-- commits with its row, so a record whose row exists is never filed again.
-- Rows below the journal's oldest record are pruned as it retires segments.
CREATE TABLE IF NOT EXISTS arrivals_filed (seq INTEGER PRIMARY KEY);
-- Expunge history: what QRESYNC's VANISHED (EARLIER) is answered from.
CREATE TABLE IF NOT EXISTS expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expunged_by_modseq ON expunged(mailbox_id, modseq);
-- Below this MODSEQ a mailbox's expunge history was forgotten (it is kept to
-- a bound): a resync from before it is told every UID the mailbox lacks.
-- `posthouse import` (transfer/importer.py): each source message imported for a
-- user, by a hash of its folder and bytes, committed with the messages it made,
-- so importing a source again (or again after an interruption) adds nothing.
-- (A table made by SCHEMA's IF NOT EXISTS: an older store gets it at open, no step needed.)
CREATE TABLE IF NOT EXISTS imported (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source BLOB NOT NULL,
    PRIMARY KEY (user_id, source)
) WITHOUT ROWID;
-- The same for the journals of workers 1.. (`workers = N`: one journal each;
-- worker 0's is the table above, as with one process).
CREATE TABLE IF NOT EXISTS arrivals_filed_by (
    journal INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (journal, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS expunge_floor (
    mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
    modseq INTEGER NOT NULL
);
"""

# Triggers, each replaced where the store has an older version of it.
TRIGGERS = {
    "blobs_gone": """CREATE TRIGGER blobs_gone AFTER DELETE ON blobs BEGIN
    INSERT OR IGNORE INTO text_garbage(id) VALUES (old.id);
    DELETE FROM blob_bytes WHERE id = old.id;
    DELETE FROM text_pending WHERE id = old.id;
END""",
}


def create_schema(db) -> None:
    """Make the tables and triggers that are missing, or out of date."""
    db.executescript(SCHEMA)
    for name, sql in TRIGGERS.items():
        row = db.execute("SELECT sql FROM sqlite_master WHERE type='trigger' AND name=?", (name,)).fetchone()
        if row is None or row[0] != sql:
            db.executescript(f"BEGIN IMMEDIATE; DROP TRIGGER IF EXISTS {name}; {sql}; COMMIT;")


# (version, the columns that step adds, as (table, column, declaration)).
MIGRATIONS = [
    (1, [("messages", "savedate", "REAL")]),
    # Stores from before \\Noselect names: every mailbox in them is selectable.
    (2, [("mailboxes", "noselect", "INTEGER NOT NULL DEFAULT 0")]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def upgrade(db) -> None:
    """Bring a store's tables up to SCHEMA_VERSION. Writes nothing when it is
    there already (a store on a full disk still opens); the check and the change
    are one transaction, so two processes opening one store can't both apply it."""
    if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for step, columns in MIGRATIONS:
            if step <= version:
                continue
            for table, column, declaration in columns:
                have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                if column not in have:     # a new store has it from SCHEMA already
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
