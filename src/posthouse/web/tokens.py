"""API tokens: made once, shown once, kept as a SHA-256 hash.

A request's token is hashed and looked up by that hash (a unique index), so
no stored secret is ever compared byte by byte with what a client sent: the
time a lookup takes says nothing about any token."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from .tables import api_tokens

PREFIX = "ph_"      # tells a Posthouse token apart in logs and secret scanners
# last_used_at is written at most this often per token (a write per request would
# make every read a write).
TOUCH_EVERY = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _utc(value: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes for DateTime(timezone=True): they were stored as UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def _info(row) -> TokenInfo:
    return TokenInfo(row.id, row.user, row.name, _utc(row.created_at), _utc(row.last_used_at), bool(row.revoked))


class TokenStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, user: str, name: str = "") -> tuple[TokenInfo, str]:
        """A new token for user: (its record, the token itself — shown once, kept nowhere)."""
        token = PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            id = conn.execute(api_tokens.insert().values(
                user=user, name=name or "", token_hash=hash_token(token), created_at=now,
                revoked=False)).inserted_primary_key[0]
        return TokenInfo(id, user, name or "", now, None, False), token

    def verify(self, token: str) -> TokenInfo | None:
        """The live token's record, or None (unknown, revoked, or not a token at all)."""
        if not token or len(token) > 200:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.token_hash == hash_token(token))).first()
        if row is None or row.revoked:
            return None
        info = _info(row)
        now = datetime.now(timezone.utc)
        if info.last_used_at is None or now - info.last_used_at >= TOUCH_EVERY:
            with self.engine.begin() as conn:
                conn.execute(update(api_tokens).where(api_tokens.c.id == info.id).values(last_used_at=now))
        return info

    def list(self, user: str | None = None) -> list[TokenInfo]:
        query = select(api_tokens).order_by(api_tokens.c.id)
        if user is not None:
            query = query.where(api_tokens.c.user == user)
        with self.engine.connect() as conn:
            return [_info(row) for row in conn.execute(query)]

    def revoke(self, id: int) -> TokenInfo | None:
        """Revoke token id; its record (None if there is no such token)."""
        with self.engine.begin() as conn:
            done = conn.execute(update(api_tokens).where(api_tokens.c.id == id).values(revoked=True))
            if not done.rowcount:
                return None
            return _info(conn.execute(select(api_tokens).where(api_tokens.c.id == id)).one())
