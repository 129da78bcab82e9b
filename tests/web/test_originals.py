"""fetch_original against a real Posthouse over IMAP (the project's own client,
imap_client): the message as stored, left unread, and None once that copy is
gone (expunged, its folder deleted, or the folder recreated)."""
from __future__ import annotations

import asyncio
import imaplib
import re

import pytest

from posthouse.web.originals import make_fetch_original

from .fakes import FakeAccount, FakeAccounts

try:
    from posthouse.imap_client import Endpoint, ImapConnection
except ImportError:     # the IMAP client part is not in this tree
    pytestmark = pytest.mark.skip("posthouse.imap_client is not here")

RAW = (b"From: Gus <gus@corp.example>\r\nTo: me@example.com\r\nSubject: The original\r\n"
       b"Message-ID: <orig-1@corp.example>\r\n\r\nKeep me unread.\r\n")


def _fetcher(server, user):
    async def open_session(_store, _account):
        conn = await ImapConnection.open(Endpoint(server.host, server.port, tls="none", timeout=30))
        await conn.login(*user)
        return conn
    return make_fetch_original(FakeAccounts(FakeAccount(1, user[0])), open_session)


def test_the_original_is_fetched_unread_and_none_once_gone(server):
    user = server.add_user()
    c = imaplib.IMAP4(server.host, server.port)
    try:
        c.login(*user)
        c.create("Jobs")
        c.append("Jobs", None, None, RAW)
        c.select("Jobs")
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", c.status("Jobs", "(UIDVALIDITY)")[1][0])[1])
        uid = int(c.uid("SEARCH", "ALL")[1][0].split()[-1])
        place = {"account_id": 1, "folder": "Jobs", "uidvalidity": uidvalidity, "uid": uid}
        fetch = _fetcher(server, user)

        assert asyncio.run(fetch(place)) == RAW
        flags = c.uid("FETCH", str(uid), "(FLAGS)")[1][0]
        assert b"\\Seen" not in flags, flags        # BODY.PEEK: still unread for the user
        assert asyncio.run(fetch({**place, "uidvalidity": uidvalidity + 1})) is None    # recreated since
        assert asyncio.run(fetch({**place, "folder": "No such folder"})) is None
        assert asyncio.run(fetch({**place, "account_id": 99})) is None                 # no such account
        c.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        c.expunge()
        assert asyncio.run(fetch(place)) is None
    finally:
        try:
            c.logout()
        except Exception:
            pass
