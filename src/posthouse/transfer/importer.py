"""`posthouse import`: mbox files and Maildir trees into a user's mailboxes.

Messages go in through the store (SQLiteStore.import_messages), parsed as
delivery parses them, in batches of many messages per transaction: one
commit (one fsync) per batch rather than per message. Each source message
is known by a hash of its folder and bytes (and, for identical copies in
one folder, which copy it is); the store notes the keys imported in the
transaction that adds the messages. So importing the same source again
adds nothing, and an import killed at any point, run again, goes on where
it stopped: batches committed are skipped, the rest imported.

It runs beside a running server (both open the SQLite store in WAL mode).
The server's open mailboxes don't hear of these messages at once: a
mailbox no session has loaded shows them at its next SELECT; one that is
loaded reads them when the next message arrives there (the gap in UIDs
makes it read the database again), or when the server restarts.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable

from ..imap.args import check_mailbox_name
from ..lifeline import die_with_parent
from ..store.api import NoSuchMailbox, NoSuchUser
from ..store.parsing import normalize_and_parse
from .maildir import Folder, find_folders, message_files, read_maildir
from .mbox import read_mbox
from .source import SourceError, SourceMessage

BATCH_MESSAGES = 1000
BATCH_BYTES = 16 * 1024 * 1024


@dataclass
class ImportReport:
    added: int = 0
    skipped: int = 0            # imported before
    bytes: int = 0
    folders: dict = field(default_factory=dict)    # mailbox name -> messages added
    problems: list = field(default_factory=list)   # what was left out, and why


def source_size(folder: Folder) -> int:
    """Bytes to read from a folder: what the progress bar counts."""
    if folder.kind == "mbox":
        return os.path.getsize(folder.path)
    return sum(size for _m, _s, _n, size in message_files(folder.path))


def plan(paths: list[str], into: str | None = None) -> list[Folder]:
    """The folders of every path, found before anything is imported (a path
    that is no mail source stops the import before it starts)."""
    folders = [f for path in paths for f in find_folders(path)]
    if into is not None:
        if len(folders) != 1:
            raise SourceError(f"--folder names one mailbox, but the sources hold {len(folders)} folders")
        folders[0].name = into
    seen: dict[str, str] = {}
    for f in folders:
        why = check_mailbox_name(f.name)    # the names IMAP's CREATE would refuse
        if why:
            raise SourceError(f"{f.path}: can't be the mailbox {f.name!r}: {why}")
        if f.name in seen:
            raise SourceError(f"{seen[f.name]} and {f.path} would both go to the folder {f.name}")
        seen[f.name] = f.path
    return folders


class Importer:
    def __init__(self, store, user_name: str, progress: Callable[[int], None] | None = None):
        self.store = store
        user = store.get_user(user_name)
        if user is None:
            raise NoSuchUser(f"no user {user_name}")
        self.user = user
        self.progress = progress or (lambda n: None)
        # Told of each mailbox a batch added to, once committed (a running server re-reads it).
        self.notify: Callable[[int], None] = lambda mailbox_id: None
        self.report = ImportReport()
        self.pool = None    # parsing on more cores: see run_import
        self._pending = None    # a batch being parsed, to be stored next
        self.jobs = 1

    def _mailbox(self, name: str):
        try:
            return self.store.get_mailbox(self.user.id, name)
        except NoSuchMailbox:
            return self.store.create_mailbox(self.user.id, name)

    def import_folder(self, folder: Folder) -> None:
        reader = read_mbox if folder.kind == "mbox" else read_maildir
        mailbox = None
        copies: dict[bytes, int] = {}       # identical messages in this folder: which copy
        batch: list[tuple[bytes, SourceMessage]] = []
        batch_bytes = 0
        prefix = folder.name.encode("utf-8", "surrogateescape") + b"\0"
        for item in reader(folder.path, folder.name):
            if isinstance(item, SourceError):
                self.report.problems.append(str(item))
                continue
            digest = hashlib.sha256(prefix + item.raw).digest()
            n = copies.get(digest, 0)
            copies[digest] = n + 1
            batch.append((digest + n.to_bytes(4, "big"), item))
            batch_bytes += len(item.raw)
            if len(batch) >= BATCH_MESSAGES or batch_bytes >= BATCH_BYTES:
                mailbox = mailbox or self._mailbox(folder.name)
                self._commit(mailbox, folder.name, batch)
                batch, batch_bytes = [], 0
        if batch or mailbox is None:
            mailbox = mailbox or self._mailbox(folder.name)
            self._commit(mailbox, folder.name, batch)
        self._finish()

    def _commit(self, mailbox, name: str, batch) -> None:
        """Start parsing a batch, then store the batch before it: with worker
        processes, the next batch is parsed while this process stores one."""
        if not batch:
            self._finish()
            return
        have = self.store.imported_already(self.user.id, [key for key, _m in batch])
        todo = [(key, m) for key, m in batch if key not in have]
        raws = [m.raw for _k, m in todo]
        futures = None
        if self.pool is not None and len(todo) > 16:
            step = -(-len(raws) // (4 * self.jobs))
            try:
                futures = [self.pool.submit(_parse_many, raws[i:i + step]) for i in range(0, len(raws), step)]
            except BrokenProcessPool:
                self.pool = None
        self._finish()
        self._pending = (mailbox, name, batch, todo, raws, futures)

    def _finish(self) -> None:
        """Store the batch whose parsing was started last, if any."""
        if self._pending is None:
            return
        mailbox, name, batch, todo, raws, futures = self._pending
        self._pending = None
        parsed_all = None
        if futures is not None:
            try:
                parsed_all = [p for f in futures for p in f.result()]
            except BrokenProcessPool:       # a worker died (killed, out of memory): parse here
                self.pool = None
        if parsed_all is None:
            parsed_all = map(normalize_and_parse, raws)
        items = [(key, raw, parsed, m.flags, m.internaldate)
                 for (key, m), (raw, parsed) in zip(todo, parsed_all)]
        added = self.store.import_messages(self.user.id, mailbox.id, items) if items else []
        if added:
            self.notify(mailbox.id)
        busy_work = getattr(self.store, "busy_work", None)
        if busy_work is not None:
            # As the server does between batches: the search text waiting for the body
            # index stays bounded (a body search scans what waits), the import held to its pace.
            busy_work()
        size = sum(len(m.raw) for _k, m in batch)
        self.report.added += len(added)
        self.report.skipped += len(batch) - len(added)
        self.report.bytes += size
        self.report.folders[name] = self.report.folders.get(name, 0) + len(added)
        self.progress(size)


def _parse_many(raws: list[bytes]) -> list:
    return [normalize_and_parse(raw) for raw in raws]


def run_import(store, user_name: str, paths: list[str], into: str | None = None,
               progress_factory=None, jobs: int = 1, notify=None) -> ImportReport:
    """Import paths for the user. progress_factory(total_bytes) gives the
    callable told of each batch's bytes, or None. jobs > 1: MIME parsing (most
    of an import's time) in that many worker processes. notify(mailbox_id):
    after each batch committed to that mailbox."""
    folders = plan(paths, into)
    importer = Importer(store, user_name)
    if notify is not None:
        importer.notify = notify
    if progress_factory is not None:
        importer.progress = progress_factory(sum(source_size(f) for f in folders))
    if jobs > 1:
        importer.jobs = jobs
        # Spawned, as the server's parse workers are; and they end with this process, even killed.
        importer.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=die_with_parent, initargs=(os.getpid(),))
    pool = importer.pool
    try:
        for folder in folders:
            try:
                importer.import_folder(folder)
            except SourceError as e:    # this folder can't be read (on): the others still go in
                importer.report.problems.append(str(e))
        importer._finish()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return importer.report
