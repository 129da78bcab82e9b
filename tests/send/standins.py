"""Small real stand-ins for the parts built in parallel (accounts, imap_client):
an account row, a store that holds its password, and an IMAP connection over
imaplib with the contract's list_folders/append/logout."""
from __future__ import annotations

import asyncio
import imaplib
import re
from dataclasses import dataclass, field


@dataclass
class Account:
    id: int = 1
    owner: str = "user"
    kind: str = "imap"
    imap_host: str = "127.0.0.1"
    imap_port: int = 143
    imap_tls: str = "none"
    login: str = "user"
    auth: str = "password"
    oauth_provider: str | None = None
    smtp_host: str | None = "127.0.0.1"
    smtp_port: int | None = None
    smtp_tls: str | None = "none"
    tls_pin: str | None = None
    since: object = None
    privacy: str = "snippet"
    addresses: list = field(default_factory=list)
    state: str = "active"
    state_reason: str = ""


class Store:
    def __init__(self, config=None, secrets=None, service=None):
        self.config = config
        self.secrets = secrets or {}
        self._service = service
        if service is not None:
            self.service_identity = lambda: service

    def secret(self, id):
        return self.secrets.get(id, {})


@dataclass
class Folder:
    name: str
    delimiter: str | None
    attributes: frozenset
    special_use: str | None


_USES = {"\\sent", "\\drafts", "\\trash", "\\junk", "\\archive", "\\all", "\\flagged"}


class ImaplibConnection:
    """The contract's ImapConnection calls that send() uses, over imaplib."""

    def __init__(self, host, port, user, password):
        self.c = imaplib.IMAP4(host, port, timeout=10)
        self.c.login(user, password)
        self.appends = 0

    @classmethod
    async def open(cls, *args):
        return await asyncio.to_thread(cls, *args)

    async def list_folders(self):
        typ, data = await asyncio.to_thread(self.c.list)
        out = []
        for line in data:
            m = re.match(rb'\(([^)]*)\) (?:"(.)"|NIL) (.*)$', line)
            attrs = frozenset(a.decode() for a in m[1].split())
            name = m[3].decode().strip('"')
            use = next((a for a in attrs if a.lower() in _USES), None)
            out.append(Folder(name, m[2].decode() if m[2] else None, attrs, use))
        return out

    async def append(self, folder, message, flags=(), date=None):
        self.appends += 1
        typ, data = await asyncio.to_thread(self.c.append, '"%s"' % folder, "(" + " ".join(flags) + ")", None, message)
        if typ != "OK":
            raise RuntimeError(f"APPEND: {typ} {data}")
        m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
        return (int(m[1]), int(m[2])) if m else None

    async def logout(self):
        await asyncio.to_thread(self.c.logout)

    def close(self):
        self.c.shutdown()
