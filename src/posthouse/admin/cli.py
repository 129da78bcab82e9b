"""`posthouse backup DEST`, `posthouse restore SRC [--force]`, `posthouse status`."""
from __future__ import annotations

import json
import sys

from ..config import Config, load_config


def register(subparsers) -> None:
    backup = subparsers.add_parser("backup", help="copy the data directory, consistently, while the server runs")
    backup.add_argument("dest", help="a new (or empty) directory for the backup")
    backup.set_defaults(func=cmd_backup)
    restore = subparsers.add_parser("restore", help="put a backup in place as the data directory")
    restore.add_argument("src", help="the backup's directory")
    restore.add_argument("--force", action="store_true",
                         help="replace a data directory that is not empty (it is kept aside, renamed)")
    restore.set_defaults(func=cmd_restore)
    status = subparsers.add_parser("status", help="how the running server is doing")
    status.add_argument("--json", action="store_true", help="the status document as JSON")
    status.set_defaults(func=cmd_status)


def _config(args) -> Config:
    return load_config(args.config, args.data_dir)


def _store_in_postgresql(config: Config, what: str) -> bool:
    """A backup or restore copies a SQLite store: say so for one in PostgreSQL."""
    if (config.database_url or "").startswith(("postgresql://", "postgres://")):
        print(f"posthouse: the mail store is in PostgreSQL (database_url): {what} it with PostgreSQL's tools "
              "(pg_dump, pg_restore); `posthouse backup` copies a SQLite store", file=sys.stderr)
        return True
    return False


def cmd_backup(args) -> int:
    from .backup import BackupError, backup
    config = _config(args)
    if _store_in_postgresql(config, "back up"):
        return 1
    try:
        manifest = backup(config.data_dir, args.dest)
    except (BackupError, OSError) as e:
        print(f"posthouse: backup failed: {e}", file=sys.stderr)
        return 1
    print(f"backup of {config.data_dir} in {args.dest}: {manifest['users']} users, "
          f"{manifest['messages']} messages, {manifest['message_files']} message files, "
          f"{manifest['journal_segments']} journal segments")
    return 0


def cmd_restore(args) -> int:
    from .backup import BackupError, restore
    config = _config(args)
    if _store_in_postgresql(config, "restore"):
        return 1
    try:
        manifest, replaced = restore(args.src, config.data_dir, force=args.force)
    except (BackupError, OSError) as e:
        print(f"posthouse: restore failed: {e}", file=sys.stderr)
        return 1
    print(f"restored the backup of {manifest['created']} ({manifest['users']} users, "
          f"{manifest['messages']} messages) into {config.data_dir}")
    if replaced:
        print(f"the data directory it replaced is kept as {replaced}; remove it once you are satisfied")
    return 0


def cmd_status(args) -> int:
    from .backup import server_running
    from .status import NotRunning, admin_request, format_status
    config = _config(args)
    try:
        doc = admin_request(config.data_dir, {"op": "status"}, timeout=30)
    except NotRunning as e:
        if server_running(config.data_dir):
            print(f"posthouse: a server runs on {config.data_dir}, but its admin socket does not answer ({e})",
                  file=sys.stderr)
        else:
            print(f"posthouse: no server is running on {config.data_dir}", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=1) if args.json else format_status(doc))
    return 0
