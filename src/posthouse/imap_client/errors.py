"""What can go wrong talking to an IMAP server, each error naming the step
that failed, so a connection test can say exactly what is wrong."""
from __future__ import annotations

STEPS = ("dns", "tcp", "tls", "greeting", "login", "capability", "command", "connection")


class ImapError(Exception):
    """step: 'dns' | 'tcp' | 'tls' | 'greeting' | 'login' | 'capability' | 'command' | 'connection'."""

    def __init__(self, step: str, message: str):
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


class NoResponse(ImapError):
    """The server answered NO. code: the response code ('UNAVAILABLE', 'LIMIT',
    'AUTHENTICATIONFAILED', 'NONEXISTENT' ...) or None."""

    def __init__(self, step: str, code: str | None, text: str):
        super().__init__(step, f"NO {'[' + code + '] ' if code else ''}{text}")
        self.code = code
        self.text = text


class BadResponse(ImapError):
    """The server answered BAD (it did not understand us)."""


class ConnectionLost(ImapError):
    """EOF, reset, a timeout or garbage mid-command: the connection is unusable."""


class LoginFailed(NoResponse):
    def __init__(self, code: str | None, text: str):
        super().__init__("login", code, text)
