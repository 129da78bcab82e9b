"""The service identity: how Posthouse's own activity tracker logs in to
Posthouse's IMAP server as a user without knowing the user's password.

SASL PLAIN with an authorization identity (RFC 4616): authcid = SERVICE_NAME,
password = the secret in data_dir/service.secret (random, 0600, made when first
needed by the server or by `posthouse account add --local`), authzid = the
user to act as. Only this identity may name an authzid; a user never can.
SERVICE_NAME can't be a user's name (usernames.py refuses an `@` with no
domain after it), so no user can be mistaken for it."""
from __future__ import annotations

import hmac
import os
import secrets

SERVICE_NAME = "posthouse-tracker@"
SECRET_FILE = "service.secret"


class ServiceIdentity:
    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, SECRET_FILE)

    def secret(self) -> str:
        """The secret, made (0600) if there is none yet. Two processes making
        it at once agree: O_EXCL lets one win and the other reads its secret."""
        if not os.path.exists(self.path):
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                try:
                    os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
        with open(self.path, encoding="ascii") as f:
            return f.read().strip()

    def matches(self, authcid: str, password: str) -> bool:
        """authcid is the service and password its secret (read each time: a
        few bytes, once per tracker session; a replaced file takes effect)."""
        if authcid != SERVICE_NAME:
            return False
        try:
            secret = self.secret()
        except (OSError, UnicodeDecodeError):
            return False
        return bool(secret) and hmac.compare_digest(secret.encode(), password.encode("utf-8", "surrogatepass"))
