"""AccountStore: the accounts the tracker follows, their encrypted secrets,
and the endpoint to reach each one."""
from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass
from datetime import date
from typing import Callable, Iterable

from sqlalchemy import delete, insert, select, update

from .secrets import SecretBox
from .tables import accounts

KINDS = ("local", "imap")
TLS_MODES = ("implicit", "starttls", "none")
AUTHS = ("password", "oauth2", "service")
PRIVACY = ("metadata", "snippet", "full")
STATES = ("active", "needs_attention", "disabled")
USERS_TTL = 60.0        # seconds the mail store's user list is kept for own_addresses


class AccountError(ValueError):
    """A bad account field or a missing account; the text is safe to show."""


@dataclass
class Account:
    id: int
    owner: str
    kind: str
    imap_host: str
    imap_port: int
    imap_tls: str
    login: str
    auth: str
    oauth_provider: str | None
    smtp_host: str | None
    smtp_port: int | None
    smtp_tls: str | None
    tls_pin: str | None
    since: date | None
    privacy: str
    addresses: list[str]
    state: str
    state_reason: str


_FIELDS = [f.name for f in dataclasses.fields(Account)]
_COLUMNS = [accounts.c[name] for name in _FIELDS]


def _row_to_account(row) -> Account:
    values = dict(row._mapping)
    values["addresses"] = list(values["addresses"] or [])
    values["state_reason"] = values["state_reason"] or ""
    return Account(**values)


def _check(fields: dict) -> None:
    for name, allowed in (("kind", KINDS), ("imap_tls", TLS_MODES), ("auth", AUTHS), ("privacy", PRIVACY),
                          ("state", STATES)):
        if name in fields and fields[name] not in allowed:
            raise AccountError(f"{name} must be one of {', '.join(allowed)}, not {fields[name]!r}")
    if fields.get("smtp_tls") not in (None, *TLS_MODES):
        raise AccountError(f"smtp_tls must be one of {', '.join(TLS_MODES)}, not {fields['smtp_tls']!r}")
    for port in ("imap_port", "smtp_port"):
        value = fields.get(port)
        if value is not None and not (isinstance(value, int) and 0 < value < 65536):
            raise AccountError(f"{port} must be a port number (1-65535), not {value!r}")


def _addresses(addresses) -> list[str]:
    return sorted({a.strip().lower() for a in addresses or () if a.strip()})


class AccountStore:
    def __init__(self, engine, data_dir: str, config=None, local_users: Callable[[], Iterable[str]] | None = None):
        self.engine = engine
        self.data_dir = data_dir
        self.config = config
        self.box = SecretBox(data_dir)
        # Every Posthouse user's name: colleagues' addresses are never contacts.
        # Without it, the mail store's users are read (with a config), else the
        # owners of accounts are the users known here.
        self.local_users = local_users
        self._users_cache: tuple[float, set[str]] = (float("-inf"), set())
        self._tokens: dict[int, tuple[str, float]] = {}     # OAuth2 access tokens cached until expiry (oauth.py)

    # -- rows ---------------------------------------------------------------
    def add(self, **fields) -> Account:
        secret = fields.pop("secret", None)
        unknown = (set(fields) - set(_FIELDS)) | ({"id"} & set(fields))
        if unknown:
            raise AccountError(f"unknown account fields: {', '.join(sorted(unknown))}")
        fields.setdefault("kind", "imap")
        fields.setdefault("imap_tls", "implicit")
        fields.setdefault("auth", "service" if fields["kind"] == "local" else "password")
        fields.setdefault("privacy", "snippet")
        fields.setdefault("state", "active")
        fields.setdefault("state_reason", "")
        fields["addresses"] = _addresses(fields.get("addresses"))
        for name in ("owner", "imap_host", "imap_port", "login"):
            if fields.get(name) in (None, ""):
                raise AccountError(f"an account needs {name}")
        _check(fields)
        if secret is not None:
            fields["secret"] = self.box.encrypt(secret)
        with self.engine.begin() as db:
            new_id = db.execute(insert(accounts).values(**fields)).inserted_primary_key[0]
        return self.get(new_id)

    def get(self, id) -> Account | None:
        with self.engine.connect() as db:
            row = db.execute(select(*_COLUMNS).where(accounts.c.id == int(id))).first()
        return _row_to_account(row) if row else None

    def list(self, owner=None) -> list[Account]:
        query = select(*_COLUMNS).order_by(accounts.c.id)
        if owner is not None:
            query = query.where(accounts.c.owner == owner)
        with self.engine.connect() as db:
            return [_row_to_account(row) for row in db.execute(query)]

    def remove(self, id) -> None:
        with self.engine.begin() as db:
            gone = db.execute(delete(accounts).where(accounts.c.id == int(id))).rowcount
        if not gone:
            raise AccountError(f"no account {id}")
        self._tokens.pop(int(id), None)

    def update(self, id, **fields) -> Account:
        """Change some fields (not the secret: set_secret)."""
        unknown = (set(fields) - set(_FIELDS)) | ({"id"} & set(fields))
        if unknown:
            raise AccountError(f"unknown account fields: {', '.join(sorted(unknown))}")
        _check(fields)
        if "addresses" in fields:
            fields["addresses"] = _addresses(fields["addresses"])
        with self.engine.begin() as db:
            if not db.execute(update(accounts).where(accounts.c.id == int(id)).values(**fields)).rowcount:
                raise AccountError(f"no account {id}")
        return self.get(id)

    def set_state(self, id, state, reason="") -> None:
        self.update(id, state=state, state_reason=reason or "")

    # -- secrets --------------------------------------------------------------
    def set_secret(self, id, secret: dict) -> None:
        with self.engine.begin() as db:
            if not db.execute(update(accounts).where(accounts.c.id == int(id))
                              .values(secret=self.box.encrypt(secret))).rowcount:
                raise AccountError(f"no account {id}")
        self._tokens.pop(int(id), None)

    def secret(self, id) -> dict:
        """The account's decrypted secret ({} if it has none); SecretsError if
        the key doesn't open it."""
        with self.engine.connect() as db:
            token = db.execute(select(accounts.c.secret).where(accounts.c.id == int(id))).scalar()
        return self.box.decrypt(token) if token else {}

    # -- what others ask ------------------------------------------------------
    def own_addresses(self) -> set[str]:
        """Every account's addresses and every local user's user@domain: the
        owner's own mail and colleagues' are never contacts."""
        with self.engine.connect() as db:
            rows = db.execute(select(accounts.c.owner, accounts.c.addresses, accounts.c.login,
                                     accounts.c.kind)).all()
        own: set[str] = set()
        users = set(self.local_users()) if self.local_users is not None else self._store_users()
        for owner, addresses, login, kind in rows:
            own.update(a.lower() for a in addresses or ())
            users.add(owner)
            if "@" in login and kind == "imap":
                own.add(login.lower())      # the login is usually the address
        domains = list(getattr(self.config, "domains", None) or ())
        for name in users:
            if "@" in name:
                own.add(name.lower())
            else:
                own.update(f"{name}@{d}".lower() for d in domains)
        return own

    def _store_users(self) -> set[str]:
        """The mail store's user names, read-only from its SQLite index (the
        store's own API would open it for writing and sweep its files), kept
        for a minute; none without a config or a store."""
        data_dir = getattr(self.config, "data_dir", None)
        if not data_dir:
            return set()
        cached_at, users = self._users_cache
        if time.monotonic() - cached_at < USERS_TTL:
            return users
        path = os.path.join(data_dir, "index.sqlite3")
        try:
            db = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True, timeout=5)
            try:
                users = {row[0] for row in db.execute("SELECT name FROM users")}
            finally:
                db.close()
        except sqlite3.Error:
            users = set()
        self._users_cache = (time.monotonic(), users)
        return users

    def endpoint(self, account):
        from ..imap_client import Endpoint
        # A pin replaces the CA checks; without one they apply, local accounts too
        # (the service secret must not go to a server that isn't ours).
        return Endpoint(host=account.imap_host, port=account.imap_port, tls=account.imap_tls,
                        pin_sha256=account.tls_pin)


async def open_session(store: AccountStore, account: Account):
    """A connected, logged-in ImapConnection (accounts/session.py)."""
    from .session import open_session as _open
    return await _open(store, account)
