"""`posthouse serve`, `posthouse user add|passwd|del|list`, `posthouse quota show|set`,
`posthouse sieve put|get|list|activate|deactivate|del`, `posthouse config check|show`.

Whatever goes wrong is one line on stderr saying what and what to do, and a
non-zero exit status: 2 for a bad config or bad arguments, 1 for the rest."""
from __future__ import annotations

import argparse
import dataclasses
import getpass
import logging
import signal
import sys
import threading

from . import __version__
from .auth.passwords import hash_password
from .config import Config, ConfigError, find_config_file, parse_size
from .store.api import StoreError
from .usernames import check_user_name


def _config(args) -> Config:
    args.config_file = find_config_file(args.config)
    return Config.load(args.config_file, data_dir=args.data_dir)


def _password(args) -> str:
    if args.password_stdin:
        pw = sys.stdin.readline().rstrip("\n")
    else:
        if not sys.stdin.isatty():
            raise SystemExit("posthouse: no terminal to ask for the password on; "
                             "give it on stdin with --password-stdin")
        pw = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != pw:
            raise SystemExit("posthouse: the passwords differ; nothing changed")
    if not pw:
        raise SystemExit("posthouse: the password is empty; nothing changed")
    return pw


def cmd_serve(args) -> int:
    config = _config(args)
    from .logfmt import configure_logging
    configure_logging(config.log_level, config.log_format)
    from .app import CantListen, DataDirInUse, DataDirUnusable, run
    try:
        code = run(config, args.config_file)
    except (DataDirInUse, DataDirUnusable, CantListen) as e:
        print(f"posthouse: {e}", file=sys.stderr)
        return 1
    except StoreError as e:     # a store that can't be opened (a full disk): one clear line
        logging.getLogger("posthouse").error("%s", e)
        return 1
    except OSError as e:        # the data directory's files (a read-only file system, say)
        print(f"posthouse: can't run on data directory {config.data_dir}: {e}", file=sys.stderr)
        return 1
    return code or 0


def _with_store(command):
    """Run command(args, config, store) on the opened store; a StoreError
    (no such user, and the like) is printed and exits with 1."""
    def run(args) -> int:
        config = _config(args)
        from .app import open_store
        try:
            store = open_store(config)
        except StoreError as e:     # a full disk
            print(f"posthouse: {e}", file=sys.stderr)
            return 1
        try:
            return command(args, config, store) or 0
        except StoreError as e:
            print(f"posthouse: {e}", file=sys.stderr)
            return 1
        finally:
            store.close()
    return run


@_with_store
def cmd_user(args, config, store) -> int:
    where = f"(store {config.data_dir})"
    if args.action == "add":
        store.create_user(args.name, hash_password(_password(args)),
                          [("INBOX", None)] + [tuple(m) for m in config.default_mailboxes])
        print(f"user {args.name} added {where}")
    elif args.action == "passwd":
        store.set_password(args.name, hash_password(_password(args)))
        print(f"password of {args.name} changed {where}")
    elif args.action == "del":
        store.delete_user(args.name)
        print(f"user {args.name} deleted {where}")
    elif args.action == "list":
        for name in store.list_users():
            print(name)
    return 0


def _limit(text: str | None, parse):
    """--storage/--messages: a value, "default" (the config's) or "none" (no limit)."""
    if text is None or text in ("default", "none"):
        return text
    return parse(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"not a number of messages: {text!r}")
    return int(text)


@_with_store
def cmd_quota(args, config, store) -> int:
    if args.action == "set":
        if args.storage is None and args.messages is None:
            raise ValueError("say --storage and/or --messages")
        store.set_quota(args.name, _limit(args.storage, parse_size), _limit(args.messages, _count))
        print(f"quota of {args.name} set (store {config.data_dir})")
    user = store.get_user(args.name)
    if user is None:
        raise StoreError(f"no user {args.name}")
    q = store.get_quota(user.id)
    print(f"{args.name}: storage {q.storage} of {q.storage_limit if q.storage_limit is not None else 'unlimited'}"
          f" bytes, messages {q.messages} of {q.message_limit if q.message_limit is not None else 'unlimited'}")
    return 0


@_with_store
def cmd_sieve(args, config, store) -> int:
    from .sieve.script import SieveError, compile_script
    try:
        user = store.get_user(args.user)
        if user is None:
            raise StoreError(f"no user {args.user}")
        if args.action in ("put", "get", "activate", "del") and not args.name:
            raise ValueError(f"sieve {args.action} needs a script name")
        if args.action == "put":
            text = sys.stdin.read() if args.file in (None, "-") else open(args.file, encoding="utf-8").read()
            compile_script(text)        # a broken script is refused, not stored
            store.put_script(user.id, args.name, text)
            print(f"script {args.name} stored (store {config.data_dir})")
        elif args.action == "get":
            text = store.get_script(user.id, args.name)
            if text is None:
                raise StoreError(f"no script {args.name}")
            sys.stdout.write(text)
        elif args.action == "list":
            for name, active in store.list_scripts(user.id):
                print(f"{name}{'  (active)' if active else ''}")
        elif args.action == "activate":
            store.activate_script(user.id, args.name)
            print(f"script {args.name} is active (store {config.data_dir})")
        elif args.action == "deactivate":
            store.activate_script(user.id, None)
            print(f"no script is active (store {config.data_dir})")
        elif args.action == "del":
            store.delete_script(user.id, args.name)
            print(f"script {args.name} deleted (store {config.data_dir})")
    except SieveError as e:
        print(f"posthouse: the script has errors: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_config(args) -> int:
    from .config_schema import render
    config = _config(args)
    if args.action == "check":
        print(f"posthouse: {args.config_file or 'no config file'}: the config is good "
              f"(data directory {config.data_dir})")
    else:
        print(f"# posthouse {__version__}: the effective config "
              f"(file: {args.config_file or 'none'}; defaults filled in)")
        sys.stdout.write(render(dataclasses.asdict(config)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posthouse", description="Posthouse mail server (IMAP, POP3, LMTP, SMTP, submission, ManageSieve)",
        epilog="The config file: --config, else $POSTHOUSE_CONFIG, else $XDG_CONFIG_HOME/posthouse/posthouse.toml "
               "or /etc/posthouse/posthouse.toml if there, else none. The data directory: --data-dir, else the "
               "config's data_dir, else $POSTHOUSE_DATA_DIR, else $XDG_DATA_HOME/posthouse (root: /var/lib/posthouse).")
    parser.add_argument("--version", action="version", version=f"posthouse {__version__}",
                        help="print the version and exit")
    parser.add_argument("--config", "-c", metavar="FILE", help="TOML config file (see above for where it is looked for)")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (overrides the config and the environment)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the server", description="Run the server until SIGTERM or Ctrl-C.")
    serve.set_defaults(func=cmd_serve)
    user = sub.add_parser("user", help="manage users", description="Add, change, delete and list users.")
    user.add_argument("action", choices=["add", "passwd", "del", "list"], help="what to do")
    user.add_argument("name", nargs="?", help="the user name (not for list); name@domain only for one of `domains`")
    user.add_argument("--password-stdin", action="store_true",
                      help="read the password from stdin (else it is asked for twice on the terminal)")
    user.set_defaults(func=cmd_user)
    quota = sub.add_parser("quota", help="show or set a user's quota", description="Show or set a user's quota.")
    quota.add_argument("action", choices=["show", "set"], help="what to do")
    quota.add_argument("name", help="the user")
    quota.add_argument("--storage", help='bytes, or 500M, 2G; "default" or "none"')
    quota.add_argument("--messages", help='a number; "default" or "none"')
    quota.set_defaults(func=cmd_quota)
    sieve = sub.add_parser("sieve", help="manage a user's Sieve scripts", description="Manage a user's Sieve scripts.")
    sieve.add_argument("action", choices=["put", "get", "list", "activate", "deactivate", "del"], help="what to do")
    sieve.add_argument("user", help="the user")
    sieve.add_argument("name", nargs="?", help="the script's name (not for list, deactivate)")
    sieve.add_argument("file", nargs="?", help="for put: the script file (default: stdin)")
    sieve.set_defaults(func=cmd_sieve)
    config = sub.add_parser("config", help="check the config file, or show the effective config",
                            description="check: validate the config file (every problem, one line each). "
                                        "show: print the effective config as TOML, defaults filled in.")
    config.add_argument("action", choices=["check", "show"], help="what to do")
    config.add_argument("file", nargs="?", help="the config file (default: the one serve would use)")
    config.set_defaults(func=cmd_config)
    __import__("posthouse.certcli").certcli.register(sub)
    from .admin.cli import register as register_admin; register_admin(sub)     # backup, restore, status
    from .transfer.cli import register; register(sub)     # `posthouse import`, `posthouse export`
    from .accounts.cli import register as register_accounts; register_accounts(sub)     # `posthouse account`
    from .crm.cli import register as register_crm; register_crm(sub)     # `posthouse contact`, `posthouse private`
    from .crm.classify.cli import register as register_classify; register_classify(sub)    # `posthouse classify`
    from .web.cli import register as register_web; register_web(sub)     # `posthouse token` (the REST API's)
    from .tracker.cli import register as register_tracker; register_tracker(sub)     # `posthouse tracker`
    from .store.postgres.migrate import register as register_migrate; register_migrate(sub)    # `posthouse migrate`
    return parser


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    if threading.current_thread() is threading.main_thread():
        # Until serve() takes them over, SIGTERM stops a command as Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupted)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "file", None) and args.command == "config":
        args.config = args.file
    try:
        if args.command == "user" and args.action != "list":
            if not args.name:
                parser.error("a user name is needed")
            if args.action == "add":
                check_user_name(args.name, _config(args).domains)
        return args.func(args)
    except ConfigError as e:   # a bad config: every problem on a line of its own
        where = f"{args.config_file}: " if getattr(args, "config_file", None) else ""
        for problem in e.problems:
            print(f"posthouse: {where}{problem}", file=sys.stderr)
        return 2
    except ValueError as e:   # a bad argument
        print(f"posthouse: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command == "serve":
            print("posthouse: stopped while starting", file=sys.stderr)
            return 0
        print("posthouse: interrupted; nothing more was done", file=sys.stderr)
        return 130
