"""Garbage, oversized input and wrong states: clear errors, no crash, no leak."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import RawClient, sqlite_only


def alive(server, user) -> bool:
    c = RawClient(server.host, server.port)
    ok = c.cmd("a", f"LOGIN {user[0]} {user[1]}")[-1].startswith(b"a OK")
    c.close()
    return ok


def test_malformed_commands_get_bad(raw):
    for line in ["", "x", "x FOOBAR", 'x SELECT "unterminated', "x SELECT (", "x FETCH 1:2 (FLAGS",
                 "x LOGIN", "x UID", "x UID NOOP", "x STATUS INBOX", "x STATUS INBOX (BOGUS)",
                 "x LIST", "x SEARCH", "x APPEND INBOX", "x\x01 NOOP", "x SELECT INBOX EXTRA ARGS"]:
        lines = raw.cmd("x", line) if line.startswith("x") else None
        if lines is None:
            raw.send(line + "\r\n")
            assert raw.readline().startswith(b"* BAD")
            continue
        assert lines[-1].startswith((b"x BAD", b"* BAD")), (line, lines)
    assert raw.cmd("n", "NOOP")[-1].startswith(b"n OK")


def test_wrong_state(server):
    c = RawClient(server.host, server.port)
    for cmd in ("SELECT INBOX", "FETCH 1 FLAGS", "LIST \"\" *", "ENABLE IMAP4rev2", "EXPUNGE"):
        assert c.cmd("w", cmd)[-1].startswith(b"w BAD"), cmd
    assert c.cmd("n", "NOOP")[-1].startswith(b"n OK")
    c.close()


def test_selected_only_commands_need_selection(raw):
    for cmd in ("FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL", "EXPUNGE", "CLOSE", "COPY 1 INBOX"):
        assert raw.cmd("w", cmd)[-1].startswith(b"w BAD"), cmd


def test_oversized_sync_literal_refused_before_reading(server, raw):
    limit = server.config.max_message_size
    raw.send(b"big APPEND INBOX {%d}\r\n" % (limit + 1))
    line = raw.readline()
    assert line.startswith(b"big NO [TOOBIG]"), line
    assert raw.cmd("n", "NOOP")[-1].startswith(b"n OK")      # still usable
    assert raw.cmd("s", "STATUS INBOX (MESSAGES)")[0] == b"* STATUS INBOX (MESSAGES 0)\r\n"


def test_oversized_nonsync_literal_closes_cleanly(server, user, raw):
    raw.send(b"big APPEND INBOX {%d+}\r\n" % (server.config.max_message_size + 1))
    assert raw.readline() == b"big BAD [TOOBIG] Literal too big\r\n"     # RFC 7888 4
    assert raw.readline().startswith(b"* BYE")
    assert raw.readline() == b""
    assert alive(server, user)


def test_overlong_line_closes_cleanly(server, user, raw):
    raw.send(b"x NOOP " + b"A" * (server.config.max_line + 10))
    assert raw.readline().startswith(b"* BYE")
    assert alive(server, user)


def test_mailbox_names_cannot_reach_other_accounts(server):
    victim = server.add_user()
    attacker = server.add_user()
    v = RawClient(server.host, server.port)
    v.cmd("l", f"LOGIN {victim[0]} {victim[1]}")
    v.cmd("c", "CREATE Secret")
    msg = b"Subject: private\r\n\r\nfor victim only\r\n"
    v.send(b"a APPEND Secret {%d+}\r\n" % len(msg) + msg + b"\r\n")
    v.read_until_tag("a")
    a = RawClient(server.host, server.port)
    a.cmd("l", f"LOGIN {attacker[0]} {attacker[1]}")
    for name in ("Secret", f"../{victim[0]}/Secret", f"/{victim[0]}/Secret", f"~{victim[0]}/Secret",
                 f"#shared/{victim[0]}/Secret", "../../index.sqlite3"):
        assert a.cmd("s", f'SELECT "{name}"')[-1].startswith(b"s NO"), name
        assert a.cmd("t", f'STATUS "{name}" (MESSAGES)')[-1].startswith(b"t NO"), name
    lines = a.cmd("li", 'LIST "" *')
    assert not any(b"Secret" in l for l in lines)
    a.cmd("s2", "SELECT INBOX")
    lines = a.cmd("se", "SEARCH TEXT victim")
    assert lines[0] == b"* SEARCH\r\n"
    a.close(), v.close()


def test_command_after_broken_literal(server, user, raw):
    # announce a literal, then send less and a newline: the rest becomes literal data,
    # and the connection must recover on the next command line
    raw.send(b"a LOGIN {5}\r\n")
    assert raw.readline().startswith(b"+ ")
    raw.send(b"ab\r\n\r\n")            # 5 bytes: the literal; then an empty line ends the command
    assert raw.readline().startswith(b"a BAD")
    assert raw.cmd("n", "NOOP")[-1].startswith(b"n OK")


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_fuzz_codec(chunks):
    from posthouse.imap.protocol.reader import CommandReader
    reader = CommandReader(max_line=1000, max_literal=500)
    for chunk in chunks:
        reader.feed(chunk)
        for _ in range(1000):
            if reader.next_event() is None:
                break


COMMANDS = [b"NOOP", b"SELECT INBOX", b"FETCH 1:* (FLAGS BODY[])", b"STORE 1 +FLAGS (\\Seen)",
            b"SEARCH OR FROM a TEXT b", b'LIST "" *', b"APPEND INBOX {5+}\r\nhello", b"IDLE",
            b"UID FETCH 1:* BODYSTRUCTURE", b"EXPUNGE", b"STATUS INBOX (MESSAGES)", b"COPY 1 Trash"]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randint(0, len(b))
        if op < 0.3:
            b[pos:pos] = bytes([rng.randint(0, 255)])
        elif op < 0.5 and b:
            del b[min(pos, len(b) - 1)]
        elif op < 0.7:
            b[pos:pos] = rng.choice([b"{", b"}", b"(", b")", b'"', b"\\", b"[", b"]", b"{99999999999}",
                                     b"{3+}", b"~{2}", b"*", b"%", b"\x00", b"\xff", b"\r\n"])
        elif b:
            b[min(pos, len(b) - 1)] = rng.randint(0, 255)
    return bytes(b)


def test_fuzz_live_session(server, user):
    rng = random.Random(1234)
    msg = b"Subject: fuzz\r\n\r\nbody\r\n"
    seed = RawClient(server.host, server.port)
    seed.cmd("l", f"LOGIN {user[0]} {user[1]}")
    seed.send(b"a APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    seed.read_until_tag("a")
    for round_ in range(40):
        c = RawClient(server.host, server.port, timeout=5)
        c.cmd("l", f"LOGIN {user[0]} {user[1]}")
        for i in range(8):
            line = _mutate(rng, b"t%d " % i + rng.choice(COMMANDS))
            try:
                c.send(line + b"\r\n")
            except OSError:
                break
        try:
            c.send(b"\r\nDONE\r\nzz NOOP\r\n")
            c.sock.settimeout(2)
            while True:
                chunk = c.sock.recv(65536)
                if not chunk or b"zz OK" in chunk:
                    break
        except OSError:
            pass   # a closed connection is an acceptable answer to garbage
        c.close()
        # the server keeps answering other clients
        assert seed.cmd("p", "NOOP")[-1].startswith(b"p OK"), round_
    assert alive(server, user)


def test_internal_error_answers_serverbug_and_keeps_session(server, raw, monkeypatch):
    service = server.ctx.service
    real_call = service.call

    async def broken(method, *args):
        # The store runs in a process of its own: the bug is made on this side of it.
        if method == "mailbox_counts":
            raise RuntimeError("simulated bug")
        return await real_call(method, *args)

    monkeypatch.setattr(service, "call", broken)
    lines = raw.cmd("s", "STATUS INBOX (MESSAGES)")
    assert lines[-1].startswith(b"s NO [SERVERBUG]")
    monkeypatch.undo()
    assert raw.cmd("s2", "STATUS INBOX (MESSAGES)")[-1].startswith(b"s2 OK")


def test_client_gone_in_the_middle_of_a_big_fetch(server, user, raw):
    """A client that closes while a multi-chunk literal streams from its blob
    file: the server stops (its read-ahead finishes, the file closes) and
    goes on serving; the message is intact for the next client."""
    body = b"".join(b"line %07d of a big message\r\n" % i for i in range(30000))      # ~870 KB: 4 chunks
    msg = b"Subject: big-gone\r\n\r\n" + body
    raw.send(b"A APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert raw.read_until_tag("A")[-1].startswith(b"A OK")
    for _ in range(3):
        c = RawClient(server.host, server.port)
        assert c.cmd("l", f"LOGIN {user[0]} {user[1]}")[-1].startswith(b"l OK")
        assert c.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
        c.send("f FETCH 1 BODY.PEEK[]\r\n")
        c.sock.recv(1000)
        c.close()
    assert alive(server, user)
    assert raw.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
    raw.send("f FETCH 1 BODY.PEEK[]\r\n")
    head = raw.readline()
    assert head.endswith(b"{%d}\r\n" % len(msg))
    got = b""
    while len(got) < len(msg):
        got += raw.sock.recv(1 << 20) if not raw.buf else raw.buf
        raw.buf = b""
    assert got[:len(msg)] == msg


@sqlite_only("blob files (PostgreSQL keeps bytes in the database)")
def test_blob_file_shorter_than_its_record_ends_the_session_not_the_server(server, user, raw):
    """A blob file cut short on disk (a damaged store) is found mid-literal:
    the literal can't be completed, so that session is closed; the server
    and every other session go on."""
    import os

    from posthouse.store.blobs import BlobStore

    body = b"".join(b"line %07d of a damaged message\r\n" % i for i in range(20000))    # ~660 KB
    msg = b"Subject: damaged\r\n\r\n" + body
    raw.send(b"A APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert raw.read_until_tag("A")[-1].startswith(b"A OK")
    path = server.ctx.service.store.blob_path(BlobStore.key_for(msg))
    with open(path, "r+b") as f:
        f.truncate(300_000)
    assert raw.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
    raw.send("f FETCH 1 BODY.PEEK[]\r\n")
    assert raw.readline().endswith(b"{%d}\r\n" % len(msg))
    got = raw.buf
    raw.buf = b""
    while True:
        chunk = raw.sock.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    assert len(got) < len(msg) and msg.startswith(got[:300_000 - 100])
    assert alive(server, user)
    os.remove(path)


def test_store_process_killed_under_a_session(tmp_path):
    """The store process dies: the session's command gets a clean NO, the
    session goes on, the next calls start a new store process, and the mail
    committed before is all there."""
    import imaplib
    import os
    import signal
    import time

    from tests.conftest import RunningServer
    srv = RunningServer(str(tmp_path))
    try:
        srv.ctx.service._db_process.RESTART_AFTER = 0.2
        name, password = srv.add_user()
        c = imaplib.IMAP4(srv.host, srv.port)
        c.login(name, password)
        for i in range(3):
            c.append("INBOX", None, None, f"Subject: m{i}\r\n\r\nbody\r\n".encode())
        os.kill(srv.ctx.service._db_process.pid, signal.SIGKILL)
        srv.ctx.service._db_process._child.proc.wait(10)
        typ, _ = c.append("INBOX", None, None, b"Subject: lost?\r\n\r\nbody\r\n")
        assert typ in ("NO", "OK")      # NO while the process is gone; OK if it was already replaced
        deadline = time.monotonic() + 10
        while True:
            try:
                typ, _ = c.append("INBOX", None, None, b"Subject: after\r\n\r\nbody\r\n")
            except imaplib.IMAP4.error:
                typ = "NO"
            if typ == "OK" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert typ == "OK"
        c.select("INBOX")
        _typ, data = c.uid("SEARCH", "SUBJECT", "m")
        assert len(data[0].split()) == 3
        c.logout()
    finally:
        srv.stop()
