"""`posthouse token create|list|revoke`: the API's tokens, one per user and use.

`token create` prints the token and nothing else on stdout (scripts capture it);
it is shown once and only its hash is kept."""
from __future__ import annotations

import sys


def _tokens(args):
    from ..config import load_config
    from ..db.engine import make_engine
    from ..db.migrate import upgrade
    from .tokens import TokenStore
    config = load_config(args.config, args.data_dir)
    engine = make_engine(config.database_url, config.data_dir)
    upgrade(engine)
    return config, TokenStore(engine)


def _user_exists(config, name: str) -> bool:
    from ..app import open_store
    store = open_store(config)
    try:
        return store.get_user(name) is not None
    finally:
        store.close()


def cmd_token(args) -> int:
    from ..store.api import StoreError
    try:
        config, tokens = _tokens(args)
        if args.action == "create":
            if not args.arg:
                raise ValueError("token create needs a user name")
            if not _user_exists(config, args.arg):
                print(f"posthouse: no user {args.arg} (store {config.data_dir}); add it with "
                      "`posthouse user add` first", file=sys.stderr)
                return 1
            _info, token = tokens.create(args.arg, args.name or "")
            print(token)
        elif args.action == "list":
            for t in tokens.list(args.arg):
                used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
                print(f"{t.id}\t{t.user}\t{t.name or '-'}\tcreated {t.created_at.isoformat(timespec='seconds')}"
                      f"\tlast used {used}\t{'revoked' if t.revoked else 'active'}")
        elif args.action == "revoke":
            if not args.arg or not args.arg.isdigit():
                raise ValueError(f"token revoke needs a token id (a number, as `posthouse token list` "
                                 f"shows), not {args.arg!r}")
            info = tokens.revoke(int(args.arg))
            if info is None:
                print(f"posthouse: no token {args.arg}", file=sys.stderr)
                return 1
            print(f"token {info.id} of {info.user} revoked")
    except StoreError as e:
        print(f"posthouse: {e}", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    token = subparsers.add_parser(
        "token", help="manage API tokens",
        description="create USER: make a token for the REST API acting as USER and print it (only it, once). "
                    "list [USER]: the tokens (never the tokens themselves). revoke ID: refuse that token from now on.")
    token.add_argument("action", choices=["create", "list", "revoke"], help="what to do")
    token.add_argument("arg", nargs="?", metavar="USER|ID", help="create: the user; list: a user (default all); "
                                                                 "revoke: the token's id")
    token.add_argument("--name", help="create: a name for the token (what it is for)")
    token.set_defaults(func=cmd_token)
