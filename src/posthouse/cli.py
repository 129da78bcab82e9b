"""`posthouse serve`, `posthouse user add|passwd|del|list`, `posthouse quota show|set`,
`posthouse sieve put|get|list|activate|deactivate|del`."""
from __future__ import annotations

import argparse
import getpass
import logging
import sys

from .auth.passwords import hash_password
from .config import Config, parse_size
from .store.api import StoreError


def _config(args) -> Config:
    return Config.load(args.config, data_dir=args.data_dir)


def _password(args) -> str:
    if args.password_stdin:
        pw = sys.stdin.readline().rstrip("\n")
    else:
        pw = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != pw:
            raise SystemExit("passwords differ")
    if not pw:
        raise SystemExit("empty password")
    return pw


def cmd_serve(args) -> int:
    config = _config(args)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .app import DataDirInUse, run
    try:
        run(config)
    except DataDirInUse as e:
        print(f"posthouse: {e}", file=sys.stderr)
        return 1
    except StoreError as e:     # a store that can't be opened (a full disk): one clear line
        logging.getLogger("posthouse").error("%s", e)
        return 1
    return 0


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
    if args.action == "add":
        store.create_user(args.name, hash_password(_password(args)),
                          [("INBOX", None)] + [tuple(m) for m in config.default_mailboxes])
        print(f"user {args.name} added")
    elif args.action == "passwd":
        store.set_password(args.name, hash_password(_password(args)))
        print(f"password of {args.name} changed")
    elif args.action == "del":
        store.delete_user(args.name)
        print(f"user {args.name} deleted")
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
            print(f"script {args.name} stored")
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
            print(f"script {args.name} is active")
        elif args.action == "deactivate":
            store.activate_script(user.id, None)
            print("no script is active")
        elif args.action == "del":
            store.delete_script(user.id, args.name)
            print(f"script {args.name} deleted")
    except SieveError as e:
        print(f"posthouse: the script has errors: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="posthouse", description="Posthouse mail server")
    parser.add_argument("--config", "-c", help="TOML config file")
    parser.add_argument("--data-dir", help="data directory (overrides the config)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.set_defaults(func=cmd_serve)
    user = sub.add_parser("user", help="manage users")
    user.add_argument("action", choices=["add", "passwd", "del", "list"])
    user.add_argument("name", nargs="?")
    user.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    user.set_defaults(func=cmd_user)
    quota = sub.add_parser("quota", help="show or set a user's quota")
    quota.add_argument("action", choices=["show", "set"])
    quota.add_argument("name")
    quota.add_argument("--storage", help='bytes, or 500M, 2G; "default" or "none"')
    quota.add_argument("--messages", help='a number; "default" or "none"')
    quota.set_defaults(func=cmd_quota)
    sieve = sub.add_parser("sieve", help="manage a user's Sieve scripts")
    sieve.add_argument("action", choices=["put", "get", "list", "activate", "deactivate", "del"])
    sieve.add_argument("user")
    sieve.add_argument("name", nargs="?")
    sieve.add_argument("file", nargs="?", help="for put: the script file (default: stdin)")
    sieve.set_defaults(func=cmd_sieve)
    from .transfer.cli import register; register(sub)     # `posthouse import`, `posthouse export`
    args = parser.parse_args(argv)
    if args.command == "user" and args.action != "list" and not args.name:
        parser.error("a user name is needed")
    try:
        return args.func(args)
    except ValueError as e:   # bad config
        print(f"posthouse: {e}", file=sys.stderr)
        return 2
