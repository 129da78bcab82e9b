"""`posthouse backup DEST` and `posthouse restore SRC`: a consistent copy of a
data directory, taken while its server runs, and putting one back.

What is in a data directory: the SQLite database (WAL), message files named
by their SHA-256 under blobs/, the arrivals journal under arrivals/ (mail
answered "250" that may not be filed yet), the TLS pair and whatever else.

Why the order below is consistent. Mail acknowledged before the backup
starts is either filed in the database or recorded in the journal (or
both). The journal is copied first, then the database snapshot is taken
(SQLite's online backup: one read transaction, so one committed state).
A record not filed by the snapshot is still in its segment (a segment is
dropped only after all it holds is filed), so the copy has it; one filed
by then is skipped when the restored server replays the journal, because
its filing row is in the snapshot. That last step needs the rows of every
copied segment to be in the snapshot: the server prunes rows of segments it
dropped, so for the journal copy and the snapshot it is asked (over its
admin socket) to drop no segment; with no server running, the data
directory's serve.lock is held instead, so none starts meanwhile.

Message files never change once written and are written before the rows
that point at them commit; they are deleted after the rows that point at
them are gone. So they are copied before the snapshot (every file then),
and after it (the ones made meanwhile); the copy then keeps exactly the
files the snapshot refers to. One both made and deleted within the backup
(a message delivered and expunged at once) leaves the snapshot pointing at
a file no copy saw: the backup is then taken again.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import sqlite3
import time

from .. import __version__ as VERSION
from .status import ADMIN_SOCKET, NotRunning, admin_connect

DB_NAME = "index.sqlite3"
MANIFEST = "posthouse-backup.json"
FORMAT = 1
LOCK_FILE = "serve.lock"
# Not copied: the database's own files (the snapshot stands for them), the
# lock and the admin socket of a running server, half-written message files.
_SKIP_TOP = {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", DB_NAME + "-journal", LOCK_FILE, ADMIN_SOCKET,
             MANIFEST, "blobs", "arrivals"}
ATTEMPTS = 3


class BackupError(Exception):
    """A backup or restore that can't be done; the message says why."""


# -- backup ----------------------------------------------------------------------------------
def backup(data_dir: str, dest: str) -> dict:
    """Copy data_dir into dest (a new or empty directory); the manifest written."""
    if not os.path.isfile(os.path.join(data_dir, DB_NAME)):
        raise BackupError(f"{data_dir} holds no posthouse store ({DB_NAME} not found)")
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise BackupError(f"{dest} exists and is not an empty directory; back up into a new one")
    if os.path.abspath(dest).startswith(os.path.abspath(data_dir) + os.sep):
        raise BackupError("the backup can't go inside the data directory it copies")
    os.makedirs(dest, exist_ok=True)
    try:
        for attempt in range(1, ATTEMPTS + 1):
            missing = _backup_once(data_dir, dest)
            if not missing:
                break
            if attempt == ATTEMPTS:
                raise BackupError(f"{len(missing)} message files were deleted while being backed up, "
                                  f"{ATTEMPTS} times over; try again at a quieter moment")
            _empty(dest)
        manifest = _manifest(data_dir, dest)
        with open(os.path.join(dest, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1)
    except BaseException:
        _empty(dest)        # half a backup is no backup: nothing is left to be mistaken for one
        raise
    os.sync()       # the copy is on disk before we say it is done
    return manifest


def _backup_once(data_dir: str, dest: str) -> set[str]:
    """One attempt; the message files the snapshot refers to that are gone."""
    src_blobs, dst_blobs = os.path.join(data_dir, "blobs"), os.path.join(dest, "blobs")
    _copy_blobs(src_blobs, dst_blobs)                     # the files there now
    with _segments_kept(data_dir):
        _copy_journal(os.path.join(data_dir, "arrivals"), os.path.join(dest, "arrivals"))
        _snapshot(os.path.join(data_dir, DB_NAME), os.path.join(dest, DB_NAME))
    _copy_blobs(src_blobs, dst_blobs)                     # the files made meanwhile
    wanted = _file_blobs(os.path.join(dest, DB_NAME))
    missing = set()
    for key in wanted:
        if not os.path.exists(_blob_path(dst_blobs, key)):
            missing.add(key)
    # Files of messages deleted before the snapshot: not part of this state.
    for path, key in list(_walk_blobs(dst_blobs)):
        if key not in wanted:
            os.unlink(path)
    _copy_rest(data_dir, dest)
    return missing


@contextlib.contextmanager
def _segments_kept(data_dir: str):
    """The journal's segments (and their filing rows) stay while this lasts."""
    lock = _try_lock(data_dir)
    if lock is not None:        # no server: none may start until the snapshot is taken
        try:
            yield
        finally:
            os.close(lock)
        return
    try:
        conn, _answer = admin_connect(data_dir, {"op": "hold-journal"})
    except NotRunning as e:
        raise BackupError(f"a server runs on {data_dir}, but its admin socket does not answer ({e}); "
                          "it can't be backed up consistently") from None
    try:
        yield
    finally:
        conn.close()            # the server lets go of the journal when this closes


def _try_lock(data_dir: str) -> int | None:
    """serve.lock of data_dir, held; None if a server holds it."""
    fd = os.open(os.path.join(data_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def server_running(data_dir: str) -> bool:
    if not os.path.exists(os.path.join(data_dir, LOCK_FILE)):
        return False
    fd = _try_lock(data_dir)
    if fd is None:
        return True
    os.close(fd)
    return False


def _copy_journal(src: str, dst: str) -> None:
    """Each segment up to its last whole record (a record being written is
    not whole yet, and was not acknowledged)."""
    from ..delivery.journal import decode_records, _segment_first
    if not os.path.isdir(src):
        return
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        if _segment_first(name) is None:
            continue
        try:
            with open(os.path.join(src, name), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue        # retired before its turn: all it held was filed
        records, end = decode_records(data)
        if records:
            with open(os.path.join(dst, name), "wb") as f:
                f.write(data[:end])


def _snapshot(src: str, dst: str) -> None:
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    try:
        source.execute("PRAGMA busy_timeout=10000")
        source.backup(target)       # all pages in one step: one read transaction, one state
        # One file, readable as it is (the server turns WAL on again when it opens it).
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()


def _file_blobs(db_path: str) -> dict[str, int]:
    """Key -> size of the messages the database keeps as files (not inline)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return dict(db.execute(
            "SELECT b.key, b.size FROM blobs b LEFT JOIN blob_bytes d ON d.id = b.id WHERE d.id IS NULL"))
    finally:
        db.close()


def _blob_path(root: str, key: str) -> str:
    return os.path.join(root, key[:2], key[2:4], key)


def _walk_blobs(root: str):
    """(path, key) of each message file under root (not tmp/)."""
    if not os.path.isdir(root):
        return
    for top in os.listdir(root):
        if len(top) != 2:
            continue
        for mid in os.listdir(os.path.join(root, top)):
            folder = os.path.join(root, top, mid)
            for key in os.listdir(folder):
                yield os.path.join(folder, key), key


def _copy_blobs(src: str, dst: str) -> None:
    for path, key in list(_walk_blobs(src)):
        target = _blob_path(dst, key)
        if os.path.exists(target):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            shutil.copyfile(path, target + ".part")
        except FileNotFoundError:
            continue        # deleted meanwhile (its message expunged)
        os.replace(target + ".part", target)


def _copy_rest(data_dir: str, dest: str) -> None:
    """Everything else (the TLS pair, ...): regular files only, not sockets."""
    for name in os.listdir(data_dir):
        if name in _SKIP_TOP:
            continue
        src, dst = os.path.join(data_dir, name), os.path.join(dest, name)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dst, ignore=_only_files, dirs_exist_ok=True)
        elif os.path.isfile(src):
            shutil.copy2(src, dst)


def _only_files(folder, names):
    return [n for n in names if not (os.path.isfile(os.path.join(folder, n)) or
                                     os.path.isdir(os.path.join(folder, n)))]


def _empty(folder: str) -> None:
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _manifest(data_dir: str, dest: str) -> dict:
    db = sqlite3.connect(f"file:{os.path.join(dest, DB_NAME)}?mode=ro", uri=True)
    try:
        messages = db.execute("SELECT count(*) FROM messages").fetchone()[0]
        users = db.execute("SELECT count(*) FROM users").fetchone()[0]
    finally:
        db.close()
    # Message files are not listed (there may be millions): the database
    # names each, with its size, and restore checks them against it.
    files = {}
    for folder, dirs, names in os.walk(dest):
        if folder == dest:
            dirs[:] = [d for d in dirs if d != "blobs"]
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, dest)] = os.path.getsize(path)
    journal = os.path.join(dest, "arrivals")
    return {"format": FORMAT, "posthouse": VERSION, "source": os.path.abspath(data_dir),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "users": users, "messages": messages,
            "message_files": sum(1 for _ in _walk_blobs(os.path.join(dest, "blobs"))),
            "journal_segments": len(os.listdir(journal)) if os.path.isdir(journal) else 0,
            "files": files}


# -- restore ---------------------------------------------------------------------------------
def restore(src: str, data_dir: str, force: bool = False) -> tuple[dict, str | None]:
    """Put the backup in src into place as data_dir: (its manifest, where the
    data directory it replaced was moved to, if any)."""
    manifest = verify(src)
    data_dir = os.path.abspath(data_dir)
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise BackupError(f"{data_dir} is not a directory")
    lock = None
    replaced = None
    if os.path.isdir(data_dir):
        if server_running(data_dir):
            raise BackupError(f"a server is running on {data_dir}; stop it before restoring")
        if [n for n in os.listdir(data_dir) if n != LOCK_FILE]:
            if not force:
                raise BackupError(f"{data_dir} is not empty; restore into a new directory, "
                                  "or say --force to put the backup in its place (it is kept aside)")
        lock = _try_lock(data_dir)      # held while the directories are swapped
        if lock is None:
            raise BackupError(f"a server is running on {data_dir}; stop it before restoring")
    staging = f"{data_dir}.restoring-{os.getpid()}"
    try:
        shutil.copytree(src, staging, ignore=shutil.ignore_patterns(MANIFEST))
        os.sync()
        if lock is not None:
            replaced = f"{data_dir}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
            os.rename(data_dir, replaced)
        os.rename(staging, data_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)
    if replaced is not None and not [n for n in os.listdir(replaced) if n != LOCK_FILE]:
        shutil.rmtree(replaced)     # it held nothing worth keeping
        replaced = None
    return manifest, replaced


def verify(src: str) -> dict:
    """The backup's manifest, once the backup is found whole: every file the
    manifest lists, at its size, a database SQLite finds sound, and every
    message file the database names, at the size it says."""
    path = os.path.join(src, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise BackupError(f"{src} is not a posthouse backup ({MANIFEST} not found)") from None
    except (OSError, ValueError) as e:
        raise BackupError(f"{path} can't be read: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or \
            not isinstance(manifest.get("files"), dict):
        raise BackupError(f"{path} is not a manifest this version understands")
    for name, size in manifest["files"].items():
        if name == MANIFEST:
            continue
        full = os.path.join(src, name)
        if os.path.normpath(name).startswith("..") or os.path.isabs(name):
            raise BackupError(f"the manifest names a file outside the backup: {name}")
        if not os.path.isfile(full):
            raise BackupError(f"the backup is incomplete: {name} is missing")
        if os.path.getsize(full) != size:
            raise BackupError(f"the backup is damaged: {name} is {os.path.getsize(full)} bytes, "
                              f"the manifest says {size}")
    db_path = os.path.join(src, DB_NAME)
    if not os.path.isfile(db_path):
        raise BackupError(f"the backup is incomplete: {DB_NAME} is missing")
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            result = [r[0] for r in db.execute("PRAGMA integrity_check")]
        finally:
            db.close()
    except sqlite3.Error as e:
        raise BackupError(f"the backup's database can't be read: {e}") from None
    if result != ["ok"]:
        raise BackupError("the backup's database is damaged: " + "; ".join(map(str, result[:5])))
    try:
        blobs = _file_blobs(db_path)
    except sqlite3.Error as e:
        raise BackupError(f"the backup's database can't be read: {e}") from None
    for key, size in blobs.items():
        path = _blob_path(os.path.join(src, "blobs"), key)
        if not os.path.isfile(path):
            raise BackupError(f"the backup is incomplete: the message file {key} is missing")
        if os.path.getsize(path) != size:
            raise BackupError(f"the backup is damaged: the message file {key} is {os.path.getsize(path)} "
                              f"bytes, the database says {size}")
    return manifest
