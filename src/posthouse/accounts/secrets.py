"""Credentials at rest: each account's secret (password, OAuth2 tokens) is a
JSON dict encrypted with Fernet. The key is a file in the data directory
(secrets.key, 0600), made on first use and never stored in the database, so a
copy of the database alone reveals no password."""
from __future__ import annotations

import json
import os

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "secrets.key"


class SecretsError(Exception):
    """The key can't be read, or doesn't open the stored secrets; safe to show."""


def _create_private(path: str, data: bytes) -> bool:
    """Write data to a new file readable by this user only; False if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def read_or_create_private(path: str, make: callable) -> bytes:
    """The content of `path`, first written with make() (0600) if it doesn't
    exist. Two processes racing to make it agree: O_EXCL lets one win."""
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        _create_private(path, make())
    with open(path, "rb") as f:
        return f.read()


class SecretBox:
    """Encrypts and decrypts account secrets with the key in data_dir."""

    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, KEY_FILE)
        self._fernet: Fernet | None = None

    def _key(self) -> Fernet:
        if self._fernet is None:
            try:
                key = read_or_create_private(self.path, Fernet.generate_key).strip()
            except OSError as e:
                raise SecretsError(f"can't read the secrets key {self.path}: {e.strerror or e}") from None
            try:
                self._fernet = Fernet(key)
            except (ValueError, TypeError):
                raise SecretsError(f"the secrets key {self.path} is damaged (not a Fernet key)") from None
        return self._fernet

    def encrypt(self, secret: dict) -> bytes:
        return self._key().encrypt(json.dumps(secret, sort_keys=True).encode("utf-8"))

    def decrypt(self, token: bytes) -> dict:
        try:
            data = self._key().decrypt(bytes(token))
        except InvalidToken:
            raise SecretsError(f"the key in {self.path} doesn't match the stored secrets") from None
        return json.loads(data)
