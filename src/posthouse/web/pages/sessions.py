"""Browser sessions for the pages: a random id in an HttpOnly, SameSite=Lax
cookie (Secure over TLS), the user and a CSRF token kept here, in this
process only (a restart logs everyone out; logout ends the session at once).
CSRF: every form carries the session's token, and an unsafe request from
another site (Origin or Sec-Fetch-Site saying so) is refused whatever it carries."""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "posthouse_session"
LOGIN_COOKIE = "posthouse_login"     # the login form's double-submit token (no session yet)
IDLE = 12 * 3600.0                   # a session unused this long is over
MAX_SESSIONS = 100_000


@dataclass
class WebSession:
    id: str
    user: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = field(default_factory=time.monotonic)


class SessionStore:
    def __init__(self, idle: float = IDLE):
        self.idle = idle
        self._sessions: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    def create(self, user: str) -> WebSession:
        session = WebSession(secrets.token_urlsafe(32), user)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._trim()
            self._sessions[session.id] = session
        return session

    def get(self, id: str | None) -> WebSession | None:
        if not id or len(id) > 100:
            return None
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

    def end(self, id: str | None) -> None:
        with self._lock:
            self._sessions.pop(id or "", None)

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
