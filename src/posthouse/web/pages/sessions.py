"""Browser sessions for the pages: a random id in an HttpOnly, SameSite=Lax
cookie (Secure over TLS), the user and a CSRF token kept in the CRM database
(web_sessions: only the id's SHA-256, so a copy of the database logs nobody
in), so a restart of the server keeps everyone logged in; logout ends the
session at once; a session unused for IDLE seconds is over, and swept.
Recently used sessions are cached here, so a page view costs no query.
CSRF: every form carries the session's token, and an unsafe request from
another site (Origin or Sec-Fetch-Site saying so) is refused whatever it carries.

The store's methods block (database): call them on a thread."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

COOKIE = "posthouse_session"
LOGIN_COOKIE = "posthouse_login"     # the login form's double-submit token (no session yet)
IDLE = 12 * 3600.0                   # a session unused this long is over
MAX_SESSIONS = 100_000               # (in memory, without a database)
MAX_CACHED = 10_000
TOUCH_EVERY = 300.0                  # expiry moved on in the database at most this often per session
CHECK_EVERY = 30.0                   # a cached session is looked up again after this long (logout elsewhere)
SWEEP_EVERY = 600.0                  # expired sessions deleted at most this often


@dataclass
class WebSession:
    id: str
    user: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = field(default_factory=time.monotonic)


def hash_id(id: str) -> str:
    return hashlib.sha256(id.encode("utf-8", "surrogatepass")).hexdigest()


def _utc(value: datetime) -> datetime:
    # SQLite gives back naive datetimes for DateTime(timezone=True): they were stored as UTC.
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


@dataclass
class _Cached:
    session: WebSession
    checked: float          # monotonic: when the database last said it is there
    touched: float          # monotonic: when its expiry was last moved on


class SessionStore:
    """engine: the CRM database's (sessions survive a restart); None: this
    process's memory only."""

    def __init__(self, engine=None, idle: float = IDLE):
        self.engine = engine
        self.idle = idle
        self._sessions: dict[str, WebSession] = {}      # (memory only)
        self._cache: dict[str, _Cached] = {}            # id hash -> (database)
        self._lock = threading.Lock()
        self._swept = 0.0

    def create(self, user: str) -> WebSession:
        session = WebSession(secrets.token_urlsafe(32), user)
        if self.engine is None:
            with self._lock:
                if len(self._sessions) >= MAX_SESSIONS:
                    self._trim()
                self._sessions[session.id] = session
            return session
        from ..session_tables import web_sessions
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            conn.execute(web_sessions.insert().values(
                id_hash=hash_id(session.id), user=user, csrf=session.csrf, created_at=now,
                expires_at=now + timedelta(seconds=self.idle)))
        self._remember(hash_id(session.id), session)
        self.sweep()
        return session

    def get(self, id: str | None) -> WebSession | None:
        if not id or len(id) > 100:
            return None
        if self.engine is None:
            return self._get_memory(id)
        key, mono = hash_id(id), time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and mono - cached.session.last_seen <= self.idle and mono - cached.checked < CHECK_EVERY:
            cached.session.last_seen = mono
            if mono - cached.touched >= TOUCH_EVERY:
                cached.touched = mono
                self._touch(key)
            return cached.session
        return self._load(key, id)

    def end(self, id: str | None) -> None:
        if self.engine is None:
            with self._lock:
                self._sessions.pop(id or "", None)
            return
        if not id or len(id) > 100:
            return
        from ..session_tables import web_sessions
        key = hash_id(id)
        with self._lock:
            self._cache.pop(key, None)
        with self.engine.begin() as conn:
            conn.execute(web_sessions.delete().where(web_sessions.c.id_hash == key))

    def sweep(self, *, force: bool = False) -> int:
        """Delete the expired sessions (at most every SWEEP_EVERY seconds unless forced)."""
        if self.engine is None:
            return 0
        mono = time.monotonic()
        if not force and mono - self._swept < SWEEP_EVERY:
            return 0
        self._swept = mono
        from ..session_tables import web_sessions
        with self.engine.begin() as conn:
            return conn.execute(web_sessions.delete().where(
                web_sessions.c.expires_at < datetime.now(timezone.utc))).rowcount or 0

    # ------------------------------------------------------------ the database

    def _load(self, key: str, id: str) -> WebSession | None:
        from sqlalchemy import select
        from ..session_tables import web_sessions
        with self.engine.connect() as conn:
            row = conn.execute(select(web_sessions.c.user, web_sessions.c.csrf, web_sessions.c.expires_at)
                               .where(web_sessions.c.id_hash == key)).first()
        now = datetime.now(timezone.utc)
        if row is None or _utc(row.expires_at) <= now:
            with self._lock:
                self._cache.pop(key, None)
            if row is not None:
                self.end(id)
            return None
        with self._lock:
            cached = self._cache.get(key)
        session = cached.session if cached is not None else WebSession(id, row.user, row.csrf)
        session.last_seen = time.monotonic()
        left = (_utc(row.expires_at) - now).total_seconds()
        if left < self.idle - TOUCH_EVERY:      # (not moved on lately)
            self._touch(key)
        self._remember(key, session)
        return session

    def _remember(self, key: str, session: WebSession) -> None:
        mono = time.monotonic()
        with self._lock:
            if len(self._cache) >= MAX_CACHED and key not in self._cache:
                self._cache.clear()      # (only a cache: the database still has them)
            self._cache[key] = _Cached(session, mono, mono)

    def _touch(self, key: str) -> None:
        from ..session_tables import web_sessions
        with self.engine.begin() as conn:
            conn.execute(web_sessions.update().where(web_sessions.c.id_hash == key).values(
                expires_at=datetime.now(timezone.utc) + timedelta(seconds=self.idle)))

    # ------------------------------------------------------------ memory only

    def _get_memory(self, id: str) -> WebSession | None:
        with self._lock:
            session = self._sessions.get(id)
            if session is None:
                return None
            now = time.monotonic()
            if now - session.last_seen > self.idle:
                del self._sessions[id]
                return None
            session.last_seen = now
            return session

    def _trim(self) -> None:
        now = time.monotonic()
        for id in [i for i, s in self._sessions.items() if now - s.last_seen > self.idle]:
            del self._sessions[id]
        while len(self._sessions) >= MAX_SESSIONS:      # still full: the least recently used go
            del self._sessions[min(self._sessions, key=lambda i: self._sessions[i].last_seen)]


def same_token(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(given.encode(), expected.encode())


def cross_site(headers, own_origin: str) -> str | None:
    """Why an unsafe request looks cross-site (None: it doesn't). Browsers send
    Sec-Fetch-Site and, on POST, Origin; a request without either is no
    browser's cross-site form (the token still has to match)."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"a request from another site (Sec-Fetch-Site: {site[:40]})"
    origin = headers.get("origin")
    if origin is not None and origin != own_origin:
        return f"a request from another origin ({origin[:100]})"
    return None
