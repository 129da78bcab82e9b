"""`posthouse serve`, `posthouse user add|passwd|del|list`."""
from __future__ import annotations

import argparse
import getpass
import logging
import sys

from .auth.passwords import hash_password
from .config import Config
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
    from .app import run
    run(config)
    return 0


def cmd_user(args) -> int:
    config = _config(args)
    from .app import open_store
    store = open_store(config)
    try:
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
    except StoreError as e:
        print(f"posthouse: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()
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
    args = parser.parse_args(argv)
    if args.command == "user" and args.action != "list" and not args.name:
        parser.error("a user name is needed")
    try:
        return args.func(args)
    except ValueError as e:   # bad config
        print(f"posthouse: {e}", file=sys.stderr)
        return 2
