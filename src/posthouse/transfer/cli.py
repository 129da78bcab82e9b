"""`posthouse import USER PATH...` and `posthouse export USER DIR`."""
from __future__ import annotations

import os
import sys
import time

from ..store.api import StoreError
from .source import SourceError


def register(subparsers) -> None:
    p = subparsers.add_parser("import", help="import mbox files and Maildir trees into a user's mailboxes")
    p.add_argument("user", help="the Posthouse user whose mailboxes receive the mail")
    p.add_argument("paths", nargs="+", metavar="PATH", help="an mbox file, a Maildir, or a tree of them")
    p.add_argument("--folder", help="the mailbox for a single mbox file or Maildir (default: from its name)")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1,
                   help="processes parsing messages (default: one per core)")
    p.set_defaults(func=cmd_import)
    p = subparsers.add_parser("export", help="export a user's mailboxes to a Maildir tree")
    p.add_argument("user", help="the Posthouse user whose mailboxes are exported")
    p.add_argument("dir", help="the Maildir tree to write (made if missing; an earlier export there is brought up to date)")
    p.add_argument("--layout", choices=["maildir++", "verbatim"], default="maildir++",
                   help="Maildir++ (.Sub.Folder dirs; the default) or nested directories")
    p.set_defaults(func=cmd_export)


def _open_store(args):
    from ..app import open_store
    from ..config import load_config
    return open_store(load_config(args.config, args.data_dir))


class _Bar:
    """A rich progress bar on a terminal; nothing otherwise (the summary line says it all)."""

    def __init__(self, label: str):
        self.label = label
        self.progress = None

    def __call__(self, total: int):
        if sys.stderr.isatty():
            from rich.progress import (BarColumn, DownloadColumn, Progress, TimeRemainingColumn,
                                       TransferSpeedColumn)
            from rich.console import Console
            self.progress = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self.progress.start()
            task = self.progress.add_task(self.label, total=total)
            return lambda n: self.progress.advance(task, n)
        return lambda n: None

    def stop(self):
        if self.progress is not None:
            for task in self.progress.tasks:    # (the bytes of From_ lines were never counted)
                self.progress.update(task.id, completed=task.total)
            self.progress.stop()


def _run(args, work) -> int:
    try:
        store = _open_store(args)
    except StoreError as e:
        print(f"posthouse: {e}", file=sys.stderr)
        return 1
    try:
        return work(store)
    except (StoreError, SourceError) as e:
        print(f"posthouse: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"posthouse: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _data_dir(args) -> str:
    """The data directory the server to tell runs on (the store may be elsewhere: PostgreSQL)."""
    from ..config import load_config
    return load_config(args.config, args.data_dir).data_dir


def _server_told(data_dir: str):
    """notify(mailbox_id) for the importer: a server running on data_dir is
    told (admin socket) which mailbox a batch went into, so its sessions see
    the mail at their next command; without a server, nothing to tell."""
    from ..admin.status import NotRunning, admin_request
    running = [True]

    def notify(mailbox_id: int) -> None:
        if running[0]:
            try:
                admin_request(data_dir, {"op": "changed", "mailboxes": [mailbox_id]}, timeout=30)
            except NotRunning:
                running[0] = False      # none runs (or it stopped): it reads the store when it starts
    return notify


def cmd_import(args) -> int:
    from .importer import run_import

    def work(store) -> int:
        bar = _Bar(f"importing for {args.user}")
        start = time.monotonic()
        try:
            report = run_import(store, args.user, args.paths, args.folder, progress_factory=bar,
                                jobs=max(1, args.jobs), notify=_server_told(_data_dir(args)))
        finally:
            bar.stop()
        for problem in report.problems:
            print(f"posthouse: {problem}", file=sys.stderr)
        took = time.monotonic() - start
        print(f"imported {report.added} messages into {len(report.folders)} folders for {args.user}"
              f" ({report.skipped} imported before) in {took:.1f}s"
              f"{f'; {len(report.problems)} problems' if report.problems else ''}")
        return 1 if report.problems else 0
    return _run(args, work)


def cmd_export(args) -> int:
    from .exporter import run_export

    def work(store) -> int:
        start = time.monotonic()
        report = run_export(store, args.user, args.dir, args.layout)
        print(f"exported {report.written} messages from {len(report.folders)} folders of {args.user}"
              f" to {args.dir} ({report.renamed} with new flags, {report.unchanged} unchanged)"
              f" in {time.monotonic() - start:.1f}s")
        return 0
    return _run(args, work)
