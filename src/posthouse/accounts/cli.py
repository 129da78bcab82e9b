"""`posthouse account add|list|status|remove`: connect a mailbox for a
Posthouse user to follow, after a connection test that must pass.

Problems are one line each on stderr; exit 1 when the test fails or an
account is missing, 2 for bad arguments (cli.main turns ValueError into that)."""
from __future__ import annotations

import asyncio
import getpass
import hashlib
import ipaddress
import ssl
import sys
from datetime import date, timedelta

DEFAULT_SINCE_DAYS = 90
IMAP_PORTS = {"implicit": 993, "starttls": 143, "none": 143}
SMTP_PORTS = {"implicit": 465, "starttls": 587, "none": 587}


def register(subparsers) -> None:
    account = subparsers.add_parser(
        "account", help="connect and manage the mailboxes the activity tracker follows",
        description="Connect a mailbox (any IMAP server, or the user's own Posthouse mailbox with --local) "
                    "for a Posthouse user; list, show the status of, or remove connected accounts.")
    sub = account.add_subparsers(dest="account_action", required=True, metavar="ACTION")

    add = sub.add_parser("add", help="connect a mailbox (after a connection test that must pass)",
                         description="Test the connection (DNS, TCP, TLS and the certificate, login, capabilities, "
                                     "SMTP if given) and save the account only if every step passes.")
    add.add_argument("owner", metavar="OWNER", help="the Posthouse user the account belongs to")
    add.add_argument("--local", action="store_true",
                     help="the owner's own Posthouse mailbox, through this server's IMAP with the service "
                          "identity (no password asked)")
    add.add_argument("--imap", metavar="HOST[:PORT]",
                     help="the IMAP server (port default: 993 with implicit TLS, 143 with --tls starttls/none)")
    add.add_argument("--login", metavar="NAME", help="the user name on the IMAP (and SMTP) server")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from stdin (else it is asked for on the terminal)")
    add.add_argument("--oauth2", metavar="PROVIDER",
                     help="log in with OAuth2 (XOAUTH2/OAUTHBEARER): google, microsoft, or a provider "
                          "configured in DATA_DIR/oauth2.toml or with --token-endpoint")
    add.add_argument("--refresh-token-stdin", action="store_true",
                     help="read the OAuth2 refresh token from stdin (else it is asked for on the terminal)")
    add.add_argument("--client-id", metavar="ID", help="the OAuth2 client id (stored encrypted with the account)")
    add.add_argument("--client-secret", metavar="SECRET",
                     help="the OAuth2 client secret (stored encrypted with the account)")
    add.add_argument("--token-endpoint", metavar="URL", help="the OAuth2 token endpoint of a provider not preset")
    add.add_argument("--smtp", metavar="HOST[:PORT]",
                     help="the SMTP submission server to send through (port default: 587 STARTTLS, 465 implicit)")
    add.add_argument("--smtp-tls", choices=["implicit", "starttls", "none"],
                     help="TLS for SMTP (default: implicit on port 465, else starttls)")
    add.add_argument("--since", metavar="DATE|all",
                     help=f"sync mail from this date (YYYY-MM-DD), or all of it (default: {DEFAULT_SINCE_DAYS} days back)")
    add.add_argument("--tls", choices=["implicit", "starttls", "none"],
                     help="TLS for IMAP (default: implicit, or starttls on port 143)")
    add.add_argument("--trust-fingerprint", metavar="SHA256",
                     help="trust the server's certificate with this SHA-256 (hex, colons allowed) instead of "
                          "CA checks: for a self-signed server (the failed test prints it)")
    add.add_argument("--privacy", choices=["metadata", "snippet", "full"], default="snippet",
                     help="what is kept of each message: metadata, subject and snippet (default), or full text")
    add.add_argument("--address", metavar="ADDR", action="append", default=[],
                     help="an address of the owner on this account (its mail is never a contact); repeatable")
    add.set_defaults(func=cmd_account)

    ls = sub.add_parser("list", help="list accounts", description="List connected accounts.")
    ls.add_argument("owner", nargs="?", metavar="OWNER", help="only this user's")
    ls.set_defaults(func=cmd_account)

    status = sub.add_parser("status", help="state and sync progress",
                            description="State, the reason when it needs attention, and per-folder sync progress.")
    status.add_argument("id", nargs="?", type=int, metavar="ID", help="one account (default: all)")
    status.set_defaults(func=cmd_account)

    remove = sub.add_parser("remove", help="stop following an account and forget it",
                            description="Remove an account (its logged activities stay).")
    remove.add_argument("id", type=int, metavar="ID", help="the account's id (see account list)")
    remove.set_defaults(func=cmd_account)


def cmd_account(args) -> int:
    from ..cli import _config
    from ..db.engine import make_engine
    from ..db.migrate import upgrade
    from .secrets import SecretsError
    from .store import AccountStore
    config = _config(args)
    engine = make_engine(config.database_url, config.data_dir)
    try:
        upgrade(engine)
        store = AccountStore(engine, config.data_dir, config)
        action = {"add": _add, "list": _list, "status": _status, "remove": _remove}[args.account_action]
        try:
            return action(args, config, store) or 0
        except SecretsError as e:
            _err(str(e))
            return 1
    finally:
        engine.dispose()


def _err(text: str) -> None:
    print(f"posthouse: {text}", file=sys.stderr)


# -- add ---------------------------------------------------------------------------

def parse_host_port(text: str, default_port: int | None) -> tuple[str, int | None]:
    """HOST, HOST:PORT, [IPv6]:PORT or a bare IPv6 address."""
    text = text.strip()
    if not text:
        raise ValueError("a host name is needed")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad host {text!r}: use [ADDRESS]:PORT")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad port in {text!r}: a number from 1 to 65535")
        return host, int(port)
    return host, default_port


def _since(text: str | None) -> date | None:
    if text is None:
        return date.today() - timedelta(days=DEFAULT_SINCE_DAYS)
    if text.lower() == "all":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: a date as YYYY-MM-DD, or all") from None


def _pin(text: str | None) -> str | None:
    if text is None:
        return None
    pin = text.replace(":", "").replace(" ", "").lower()
    if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
        raise ValueError(f"--trust-fingerprint {text!r}: a SHA-256 as 64 hex digits (colons allowed)")
    return pin


def _read_secret(use_stdin: bool, what: str, flag: str) -> str:
    if use_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise SystemExit(f"posthouse: no terminal to ask for the {what} on; give it on stdin with {flag}")
        value = getpass.getpass(f"{what[0].upper()}{what[1:]}: ")
    if not value:
        raise SystemExit(f"posthouse: the {what} is empty; nothing saved")
    return value


def _loopback(host: str) -> str:
    """Where to reach our own listener bound to host."""
    if host in ("", "0.0.0.0", "::", "*"):
        return "127.0.0.1"
    return host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _own_cert_pin(config) -> str | None:
    path = config.tls_cert or config.path("tls/cert.pem")
    try:
        with open(path) as f:
            return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()
    except (OSError, ValueError):
        return None


def _local_fields(args, config) -> dict:
    """Our own IMAP (and submission) for a local account: the plain port on
    loopback where plaintext logins are allowed there, else implicit TLS with
    our own certificate pinned."""
    from ..auth.service_identity import ServiceIdentity
    ServiceIdentity(config.data_dir).secret()       # made now if the server hasn't yet
    host = _loopback(config.imap_host)
    plain_ok = config.plaintext_auth == "always" or (config.plaintext_auth == "loopback" and _is_loopback(host))
    fields = dict(kind="local", auth="service", login=args.owner, imap_host=host)
    if plain_ok or not config.imap_tls_port:
        fields.update(imap_port=config.imap_port, imap_tls="none" if plain_ok else "starttls")
    else:
        fields.update(imap_port=config.imap_tls_port, imap_tls="implicit")
    if fields["imap_tls"] != "none":
        fields["tls_pin"] = _own_cert_pin(config)
    if config.submission_port and plain_ok:
        fields.update(smtp_host=host, smtp_port=config.submission_port, smtp_tls="none")
    elif config.submission_tls_port:
        fields.update(smtp_host=host, smtp_port=config.submission_tls_port, smtp_tls="implicit")
    domains = list(config.domains or ())
    fields["addresses"] = [args.owner] if "@" in args.owner else [f"{args.owner}@{d}" for d in domains]
    return fields


def _remote_fields(args) -> tuple[dict, dict]:
    if not args.imap:
        raise ValueError("--imap HOST[:PORT] is needed (or --local for the owner's own Posthouse mailbox)")
    if not args.login:
        raise ValueError("--login NAME is needed")
    if args.password_stdin and args.oauth2:
        raise ValueError("give either --password-stdin or --oauth2, not both")
    host, port = parse_host_port(args.imap, None)
    tls = args.tls or ("starttls" if port == 143 else "implicit")
    port = port or IMAP_PORTS[tls]
    fields = dict(kind="imap", imap_host=host, imap_port=port, imap_tls=tls, login=args.login)
    if args.oauth2:
        fields.update(auth="oauth2", oauth_provider=args.oauth2.lower())
        secret = {"refresh_token": _read_secret(args.refresh_token_stdin, "refresh token", "--refresh-token-stdin")}
        for key in ("client_id", "client_secret", "token_endpoint"):
            if getattr(args, key):
                secret[key] = getattr(args, key)
        from .oauth import OAuthError, provider_settings
        try:
            provider_settings(args.data_dir_resolved, fields["oauth_provider"], secret)
        except OAuthError as e:
            raise ValueError(str(e)) from None
    else:
        fields["auth"] = "password"
        secret = {"password": _read_secret(args.password_stdin, "password", "--password-stdin")}
    return fields, secret


def _check_owner(config, owner: str) -> None:
    from ..app import open_store
    store = open_store(config)
    try:
        if store.get_user(owner) is None:
            raise SystemExit(f"posthouse: no Posthouse user {owner!r} (posthouse user add first); nothing saved")
    finally:
        store.close()


def _add(args, config, store) -> int:
    from .probe import probe
    from .store import Account
    args.data_dir_resolved = config.data_dir
    _check_owner(config, args.owner)
    if args.local:
        stray = [f"--{n.replace('_', '-')}" for n in ("imap", "login", "password_stdin", "oauth2", "refresh_token_stdin")
                 if getattr(args, n)]
        if stray:
            raise ValueError(f"--local connects to this server with the service identity: {', '.join(stray)} "
                             "not wanted")
        fields, secret = _local_fields(args, config), None
    else:
        fields, secret = _remote_fields(args)
    if args.trust_fingerprint:
        fields["tls_pin"] = _pin(args.trust_fingerprint)
    if args.smtp:
        host, port = parse_host_port(args.smtp, None)
        smtp_tls = args.smtp_tls or ("implicit" if port == 465 else "starttls")
        fields.update(smtp_host=host, smtp_port=port or SMTP_PORTS[smtp_tls], smtp_tls=smtp_tls)
    elif args.smtp_tls:
        raise ValueError("--smtp-tls without --smtp")
    if args.address:
        fields["addresses"] = sorted(set(fields.get("addresses", [])) | {a.strip().lower() for a in args.address})
    fields.update(owner=args.owner, since=_since(args.since), privacy=args.privacy)
    for other in store.list(args.owner):
        if (other.imap_host.lower(), other.imap_port, other.login) == \
                (fields["imap_host"].lower(), fields["imap_port"], fields["login"]):
            _err(f"{args.owner} already has account {other.id} for {other.login} at {other.imap_host}:"
                 f"{other.imap_port}; nothing saved")
            return 1
    candidate = Account(id=None, **{**_DEFAULTS, **fields})
    result = asyncio.run(probe(store, candidate, secret))
    for line in result.info:
        print(f"  {line}")
    if not result.ok:
        for problem in result.problems:
            _err(f"account not saved: {problem}")
        return 1
    account = store.add(**fields, secret=secret)
    tls = {"implicit": "TLS", "starttls": "STARTTLS", "none": "no TLS"}[account.imap_tls]
    print(f"account {account.id} added for {account.owner}: {account.login} at {account.imap_host}:"
          f"{account.imap_port} ({tls}), since {account.since or 'the beginning'}")
    return 0


_DEFAULTS = dict(kind="imap", oauth_provider=None, smtp_host=None, smtp_port=None, smtp_tls=None, tls_pin=None,
                 since=None, privacy="snippet", addresses=[], state="active", state_reason="")


# -- list, status, remove ----------------------------------------------------------

def _list(args, config, store) -> int:
    accounts = store.list(args.owner)
    if not accounts:
        print("no accounts" + (f" for {args.owner}" if args.owner else ""))
    for a in accounts:
        print(f"{a.id}\t{a.owner}\t{a.kind}\t{a.login}@{a.imap_host}:{a.imap_port}\t{a.auth}\t{a.state}")
    return 0


def tracker_status(engine, account_id: int) -> dict:
    """The tracker's progress for an account, as its tables hold it."""
    from ..tracker.engine import account_status     # (the command line sits above both parts)
    return account_status(engine, account_id)


def _status(args, config, store) -> int:
    if args.id is not None:
        account = store.get(args.id)
        if account is None:
            _err(f"no account {args.id}")
            return 1
        accounts = [account]
    else:
        accounts = store.list()
        if not accounts:
            print("no accounts")
    for a in accounts:
        print(f"account {a.id} ({a.owner}: {a.login}@{a.imap_host}:{a.imap_port}): {a.state}"
              + (f": {a.state_reason}" if a.state_reason else ""))
        try:
            status = tracker_status(store.engine, a.id)
        except Exception as e:      # the tracker's tables not there yet, and the like
            print(f"  sync: can't read the tracker's progress: {e}")
            continue
        _print_status(status)
    return 0


def _print_status(status: dict) -> None:
    folders = status.get("folders") or []
    if not folders:
        print("  not synced yet")
    for folder in folders:
        done, total = folder.get("messages_done"), folder.get("messages_total")
        progress = f"{done}/{total}" if total is not None else f"{done}"
        state = "synced" if folder.get("backfill_done") else "initial sync under way"
        print(f"  {folder.get('name')}: {progress} messages, {state}")
    for line in reversed(status.get("log") or []):      # oldest first, as a log reads
        at = line["at"].strftime("%Y-%m-%d %H:%M:%S") if hasattr(line.get("at"), "strftime") else line.get("at")
        print(f"  {at} {line.get('level')}: {line.get('text')}")


def _remove(args, config, store) -> int:
    from .store import AccountError
    account = store.get(args.id)
    if account is None:
        _err(f"no account {args.id}")
        return 1
    try:
        store.remove(args.id)
    except AccountError as e:
        _err(str(e))
        return 1
    print(f"account {args.id} removed ({account.owner}: {account.login}@{account.imap_host})")
    return 0
