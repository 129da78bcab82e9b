"""The IMAP client against a real Posthouse, and against a fake server that
sends garbage or nothing."""
import asyncio
import contextlib

import pytest

from posthouse.imap_client import (ConnectionLost, Endpoint, ImapConnection, ImapError, LoginFailed,
                                   NoResponse)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def plain(server, **kw):
    return Endpoint(server.host, server.port, tls="none", timeout=kw.pop("timeout", 10), **kw)


def deliver(server, user, count, folder="INBOX"):
    import imaplib
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    for i in range(count):
        msg = (f"From: a{i}@example.org\r\nTo: {user[0]}@example.com\r\nSubject: test {i}\r\n"
               f"Message-ID: <m{i}.{folder}@example.org>\r\n\r\nbody {i}\r\n").encode()
        c.append(folder, None, None, msg)
    c.logout()


def test_login_select_fetch_stream(server, user):
    deliver(server, user, 3)

    async def go():
        conn = await ImapConnection.open(plain(server))
        assert "IMAP4REV1" in conn.capabilities
        await conn.login(*user)
        assert "CONDSTORE" in conn.capabilities     # refreshed after login
        sel = await conn.select("INBOX", qresync=(1, 1))
        assert sel.exists == 3 and sel.uidvalidity and sel.uidnext == 4 and sel.highestmodseq
        items = [f async for f in conn.uid_fetch("1:*", "UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER]")]
        assert [f.uid for f in items] == [1, 2, 3]
        assert b"Subject: test 0" in items[0].attrs["BODY[HEADER]"]
        assert "\\Seen" not in items[0].attrs["FLAGS"]
        # Leaving a stream early drains the rest: the next command works.
        async for f in conn.uid_fetch("1:*", "UID"):
            break
        assert await conn.uid_search("ALL") == [1, 2, 3]
        status = await conn.status("INBOX")
        assert status["MESSAGES"] == 3 and status["UIDNEXT"] == 4
        folders = await conn.list_folders()
        assert {"INBOX", "Sent"} <= {f.name for f in folders}
        assert next(f for f in folders if f.name == "Sent").special_use == "\\Sent"
        assert await conn.append("Sent", b"Subject: s\r\n\r\nx\r\n") == (
            (await conn.status("Sent"))["UIDVALIDITY"], 1)
        with pytest.raises(NoResponse) as e:
            await conn.select("no such folder")
        assert e.value.code == "NONEXISTENT"
        await conn.logout()
    run(go())


def test_wrong_password_is_login_failed(server, user):
    async def go():
        conn = await ImapConnection.open(plain(server))
        with pytest.raises(LoginFailed) as e:
            await conn.login(user[0], "wrong")
        assert e.value.step == "login" and e.value.code == "AUTHENTICATIONFAILED"
        conn.close()
    run(go())


def test_authenticate_plain(server, user):
    async def go():
        conn = await ImapConnection.open(plain(server))
        await conn.authenticate("PLAIN", b"\0" + user[0].encode() + b"\0" + user[1].encode())
        assert "CONDSTORE" in conn.capabilities
        await conn.logout()
    run(go())


def test_unsolicited_updates_during_commands_and_idle(server, user):
    deliver(server, user, 1)

    async def go():
        conn = await ImapConnection.open(plain(server))
        await conn.login(*user)
        await conn.select("INBOX")
        async with conn.idle() as idle:
            assert await idle.wait(0.05) == []
            await asyncio.to_thread(deliver, server, user, 1)
            news = []
            for _ in range(50):
                news += await idle.wait(1)
                if news:
                    break
            assert any(type(n).__name__ == "Exists" and n.count == 2 for n in news)
        assert conn.selected.exists == 2
        await asyncio.to_thread(deliver, server, user, 1)
        await conn.noop()
        assert conn.selected.exists == 3
        await conn.logout()
    run(go())


def test_tls_verification_and_pin(server, user):
    async def go():
        ep = Endpoint(server.host, server.tls_port, timeout=10)
        with pytest.raises(ImapError) as e:
            await ImapConnection.open(ep)        # self-signed: refused by default
        assert e.value.step == "tls"
        conn = await ImapConnection.open(Endpoint(server.host, server.tls_port, verify=False))
        pin = conn.peer_cert_sha256
        conn.close()
        conn = await ImapConnection.open(Endpoint(server.host, server.tls_port, pin_sha256=pin.upper()))
        await conn.login(*user)
        await conn.logout()
        with pytest.raises(ImapError) as e:
            await ImapConnection.open(Endpoint(server.host, server.tls_port, pin_sha256="00" * 32))
        assert e.value.step == "tls" and "pinned" in e.value.message
        # STARTTLS on the plain port, with the pin.
        conn = await ImapConnection.open(Endpoint(server.host, server.port, tls="starttls", pin_sha256=pin))
        assert conn.peer_cert_sha256 == pin and "STARTTLS" not in conn.capabilities
        await conn.login(*user)
        await conn.logout()
    run(go())


def test_dns_and_tcp_steps():
    async def go():
        with pytest.raises(ImapError) as e:
            await ImapConnection.open(Endpoint("no-such-host.invalid", 143, tls="none", timeout=5))
        assert e.value.step == "dns"
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()       # nothing listens there now
        with pytest.raises(ImapError) as e:
            await ImapConnection.open(Endpoint("127.0.0.1", port, tls="none", timeout=5))
        assert e.value.step == "tcp"
    run(go())


@contextlib.asynccontextmanager
async def fake_server(script):
    """A TCP server that runs script(reader, writer) per connection."""
    async def handle(reader, writer):
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await srv.wait_closed()


def test_garbage_greeting_silence_and_garbage_mid_fetch():
    async def garbage(reader, writer):
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()

    async def silent(reader, writer):
        await reader.read(100)

    async def bad_fetch(reader, writer):
        writer.write(b"* OK [CAPABILITY IMAP4rev1] hi\r\n")
        line = await reader.readline()
        tag = line.split()[0]
        writer.write(b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n* 2 FETCH (UID ((((\r\n" + tag + b" OK done\r\n")
        await writer.drain()
        await reader.read(100)

    async def cut_mid_literal(reader, writer):
        writer.write(b"* OK [CAPABILITY IMAP4rev1] hi\r\n")
        await reader.readline()
        writer.write(b"* 1 FETCH (UID 1 BODY[] {100}\r\nonly a little")
        await writer.drain()

    async def go():
        async with fake_server(garbage) as port:
            with pytest.raises(ImapError) as e:
                await ImapConnection.open(Endpoint("127.0.0.1", port, tls="none", timeout=5))
            assert e.value.step == "greeting"
        async with fake_server(silent) as port:
            with pytest.raises(ImapError) as e:
                await ImapConnection.open(Endpoint("127.0.0.1", port, tls="none", timeout=0.3))
            assert e.value.step == "greeting"
        for script, before in ((bad_fetch, [1]), (cut_mid_literal, [])):
            async with fake_server(script) as port:
                conn = await ImapConnection.open(Endpoint("127.0.0.1", port, tls="none", timeout=5))
                got = []
                with pytest.raises(ConnectionLost):
                    async for f in conn.uid_fetch("1:*", "UID FLAGS"):
                        got.append(f.uid)
                assert got == before and conn.broken
                with pytest.raises(ConnectionLost):
                    await conn.noop()
    run(go())


def test_international_folder_names(server, user):
    import imaplib
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    assert c.create('"Entw&APw-rfe"')[0] == "OK"        # "Entwürfe" in modified UTF-7
    c.logout()

    async def go():
        conn = await ImapConnection.open(plain(server))
        await conn.login(*user)
        assert "Entwürfe" in {f.name for f in await conn.list_folders()}
        sel = await conn.select("Entwürfe")
        assert sel.uidvalidity and (await conn.status("Entwürfe"))["MESSAGES"] == 0
        await conn.logout()
    run(go())


def test_random_server_bytes_only_raise_imap_errors():
    """Whatever a server sends after its greeting, a command ends in a
    result or an ImapError, never another exception or a hang."""
    import random
    rng = random.Random(22)
    pieces = [b"* ", b"P1 ", b"P2 ", b"OK ", b"NO ", b"BAD ", b"BYE ", b"FETCH ", b"1 ", b"(", b")", b"[", b"]",
              b"UID ", b"{3}\r\n", b"~{2}\r\n", b"{99999999999}\r\n", b'"q" ', b"NIL ", b"BODY[1]<0> ", b"\\Seen ",
              b"\r\n", b"+ ", b"VANISHED ", b"(EARLIER) ", b"1:5 ", b"EXISTS ", b"\xff", b"\x00", b"x" * 300]
    payloads = [b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))) for _ in range(40)]
    it = iter(payloads)

    async def script(reader, writer):
        payload = next(it)
        writer.write(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n")
        await reader.readline()
        writer.write(payload)
        await writer.drain()

    async def go():
        async with fake_server(script) as port:
            for _ in payloads:
                conn = await ImapConnection.open(Endpoint("127.0.0.1", port, tls="none", timeout=0.5))
                try:
                    async for _f in conn.uid_fetch("1:*", "UID FLAGS"):
                        pass
                except ImapError:
                    pass
                finally:
                    conn.close()
    run(go())
