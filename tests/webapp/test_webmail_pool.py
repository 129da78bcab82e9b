"""web/imap_pool.py against a real Posthouse IMAP server (tests/conftest.py's
RunningServer): connections reused per (user, account), bounded, idle ones
logged out, broken ones never lent again."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from posthouse.imap_client import ConnectionLost, Endpoint, ImapConnection, NoResponse
from posthouse.web.imap_pool import ImapPool, PoolBusy


@dataclass
class Account:
    id: int
    login: str
    password: str


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def opener_for(server, counter: list):
    async def opener(account):
        conn = await ImapConnection.open(Endpoint("127.0.0.1", server.port, tls="none", timeout=10))
        await conn.login(account.login, account.password)
        counter.append(conn)
        return conn
    return opener


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_reused_across_requests_and_bounded(server):
    name, password = server.add_user()
    account = Account(7, name, password)
    opened: list = []

    async def scenario():
        pool = ImapPool(opener_for(server, opened), per_account=2, wait_seconds=5)
        try:
            for _ in range(5):      # one request after the other: one connection
                async with pool.connection(name, account) as conn:
                    assert (await conn.select("INBOX")).exists == 0
            assert len(opened) == 1 and pool.idle_count(name, 7) == 1
            # Four at once: never more than two connections, the others wait their turn.
            busy = 0
            most = 0

            async def request():
                nonlocal busy, most
                async with pool.connection(name, account) as conn:
                    busy += 1
                    most = max(most, busy)
                    await conn.noop()
                    await asyncio.sleep(0.05)
                    busy -= 1
            await asyncio.gather(*(request() for _ in range(4)))
            assert most == 2 and len(opened) == 2 and pool.idle_count(name, 7) == 2
            # Another user (or account) gets connections of its own.
            other_name, other_password = server.add_user()
            async with pool.connection(other_name, Account(8, other_name, other_password)):
                pass
            assert len(opened) == 3 and pool.idle_count(other_name) == 1 and pool.idle_count(name) == 2
            # The same account id, now logging in elsewhere (edited, or its id reused): not the old connection.
            async with pool.connection(name, Account(7, other_name, other_password)) as conn:
                assert conn is opened[-1] and len(opened) == 4
        finally:
            await pool.close()
        assert all(c.broken for c in opened)    # logged out at close
    run(scenario())


def test_busy_account_waits_then_gives_up(server):
    name, password = server.add_user()
    account = Account(1, name, password)
    opened: list = []

    async def scenario():
        pool = ImapPool(opener_for(server, opened), per_account=1, wait_seconds=0.3)
        try:
            async with pool.connection(name, account):
                with pytest.raises(PoolBusy):
                    async with pool.connection(name, account):
                        pass
            async with pool.connection(name, account):     # free again
                pass
            assert len(opened) == 1
        finally:
            await pool.close()
    run(scenario())


def test_idle_connections_logged_out_and_checked(server):
    name, password = server.add_user()
    account = Account(1, name, password)
    opened: list = []
    clock = Clock()

    async def scenario():
        pool = ImapPool(opener_for(server, opened), idle_seconds=120, check_after=15, clock=clock)
        try:
            async with pool.connection(name, account):
                pass
            clock.now += 60
            assert pool.reap() == 0 and pool.idle_count() == 1
            # Idle past check_after, and dropped by the server meanwhile: found out by a NOOP, not lent.
            opened[0]._writer.transport.abort()
            async with pool.connection(name, account) as conn:
                assert conn is not opened[0] and not conn.broken
                await conn.noop()
            assert len(opened) == 2 and pool.discarded == 1
            clock.now += 121
            assert pool.reap() == 1 and pool.idle_count() == 0
            await asyncio.sleep(0.2)        # (the logout runs as its own task)
            assert opened[1].broken
        finally:
            await pool.close()
    run(scenario())


def test_broken_connection_discarded_refused_command_kept(server):
    name, password = server.add_user()
    account = Account(1, name, password)
    opened: list = []

    async def scenario():
        pool = ImapPool(opener_for(server, opened))
        try:
            with pytest.raises(NoResponse):     # a NO: the connection is fine, kept
                async with pool.connection(name, account) as conn:
                    await conn.select("No-Such-Folder")
            assert pool.idle_count() == 1
            with pytest.raises(ConnectionLost):     # lost mid-request: closed, not kept
                async with pool.connection(name, account) as conn:
                    conn._writer.transport.abort()
                    await conn.noop()
            assert pool.idle_count() == 0 and pool.discarded == 1
            with pytest.raises(asyncio.TimeoutError):   # a request cut off mid-command: not kept either
                async with pool.connection(name, account) as conn:
                    async with asyncio.timeout(0):
                        await conn.select("INBOX")
            assert pool.idle_count() == 0
            async with pool.connection(name, account) as conn:
                assert (await conn.select("INBOX")).exists == 0
            assert len(opened) == 3
        finally:
            await pool.close()
    run(scenario())


def test_idle_connection_survives_its_folder_deleted_elsewhere(server):
    # A connection given back with a folder selected that another client then
    # deletes would get a BYE at its next command (a 502 for the next page):
    # idle connections wait with nothing selected, so it stays good.
    import imaplib
    name, password = server.add_user()
    account = Account(1, name, password)
    opened: list = []

    async def scenario():
        pool = ImapPool(opener_for(server, opened), check_after=3600)
        try:
            async with pool.connection(name, account) as conn:
                await conn._run([b"CREATE", conn._mailbox("Doomed")])
                await conn.select("Doomed")

            def delete_elsewhere():
                other = imaplib.IMAP4("127.0.0.1", server.port)
                other.login(name, password)
                assert other.delete("Doomed")[0] == "OK"
                other.logout()
            await asyncio.to_thread(delete_elsewhere)
            await asyncio.sleep(0.5)
            async with pool.connection(name, account) as conn:
                assert (await conn.select("INBOX")).exists == 0
            assert len(opened) == 1 and pool.discarded == 0
        finally:
            await pool.close()
    run(scenario())
