"""The bulk DATA reader (delivery/data_reader.py, used by esmtp.Tuned) against
aiosmtpd's own line-by-line DATA: the same bytes, sent to both over loopback,
must give the same replies and the same message, and leave the same
pipelined command after the terminator. Random and garbage input included."""
from __future__ import annotations

import asyncio
import random

from aiosmtpd.smtp import SMTP

from posthouse.delivery.esmtp import Tuned

LINE_LIMIT = 1001        # Tuned takes no less
SIZE_LIMIT = 3000


class _Capture:
    def __init__(self):
        self.contents: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.contents.append(envelope.original_content)
        return "250 kept"


class _Theirs(SMTP):
    line_length_limit = LINE_LIMIT


class _Ours(Tuned, SMTP):
    pass


async def _exchange(port: int, chunks: list[bytes]) -> list[bytes]:
    """Every reply after the 354 to data sent in these chunks, then QUIT (a
    "." line inside the data ends it early: the rest is read as commands)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(b"EHLO test\r\n")
    while (await reader.readline())[3:4] == b"-":
        pass
    writer.write(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    replies = [await reader.readline() for _ in range(3)]
    assert replies[2].startswith(b"354"), replies
    replies = []
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(b"QUIT\r\n")
        while line := await asyncio.wait_for(reader.readline(), 10):
            replies.append(line)
    except ConnectionResetError:    # closed on us (too many bogus commands) with our data unread
        replies.append(b"(reset)")
    writer.close()
    return replies


async def _compare(cases: list[list[bytes]]) -> list[tuple]:
    theirs, ours = _Capture(), _Capture()
    loop = asyncio.get_running_loop()
    kwargs = dict(data_size_limit=SIZE_LIMIT, decode_data=False, enable_SMTPUTF8=True, hostname="test")
    s1 = await loop.create_server(lambda: _Theirs(theirs, **kwargs), "127.0.0.1", 0)
    s2 = await loop.create_server(lambda: _Ours(ours, LINE_LIMIT, **kwargs), "127.0.0.1", 0)
    out = []
    try:
        for chunks in cases:
            a = await _exchange(s1.sockets[0].getsockname()[1], chunks)
            b = await _exchange(s2.sockets[0].getsockname()[1], chunks)
            out.append((chunks, a, b, theirs.contents[-1:], ours.contents[-1:]))
            theirs.contents.clear()
            ours.contents.clear()
    finally:
        s1.close()
        s2.close()
    return out


def _body(rng: random.Random) -> bytes:
    """Lines of the kinds that trip readers: dots, bare CR and LF, long ones, empty ones."""
    kinds = [b"", b".", b"..", b"...", b".x", b"x.", b"abc", b"a\rb", b"a\nb", b"\n.", b"\r.", b".\r",
             b"\n", b"\r", b"x" * 990, b"y" * 999, b"z" * 1000, b"w" * 1200, b"\xff\xfe"]
    lines = [rng.choice(kinds) for _ in range(rng.randint(0, 12))]
    return b"".join(line + rng.choice([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"]) for line in lines)


def _split(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 4)))) if len(data) > 1 else []
    return [data[i:j] for i, j in zip([0] + cuts, cuts + [len(data)])]


def _assert_alike(results):
    for chunks, a, b, content_a, content_b in results:
        data = b"".join(chunks)
        assert a == b, data
        assert content_a == content_b, data


def test_plain_messages_read_alike():
    cases = [[b".\r\n"], [b"a\r\n.\r\n"], [b"..\r\n.\r\n"], [b"a\r\n..b\r\n.\r\n"], [b".x\r\n.\r\n"],
             [b"a\r\n", b".", b"\r", b"\n"], [b"a\r", b"\n.\r\n"], [b"a\n.\r\nb\r\n.\r\n"],
             [b"a\r.\r\nb\r\n.\r\n"], [b".\r.\r\n.\r\n"], [b".\r\r\n.\r\n"], [b"x" * 1200 + b"\r\n.\r\n"],
             [b"Subject: hi\r\n\r\nbody\r\n.\r\nNOOP\r\n"]]
    _assert_alike(asyncio.run(_compare([chunks + [b"NOOP\r\n"] for chunks in cases])))


def test_oversized_message_is_refused_alike():
    line = b"0123456789" * 9 + b"\r\n"
    _assert_alike(asyncio.run(_compare([[line * 40 + b".\r\n", b"NOOP\r\n"],
                                        [line * 30 + b".\r\n", b"NOOP\r\n"]])))


def test_random_and_garbage_data_read_alike():
    rng = random.Random(5321)
    cases = []
    for _ in range(1000):
        body = _body(rng)
        at_line_start = body == b"" or body.endswith(b"\r\n")
        data = body + (rng.choice([b".\r\n", b"\r\n.\r\n"]) if at_line_start else b"\r\n.\r\n") + b"NOOP\r\n"
        cases.append(_split(data, rng))
    _assert_alike(asyncio.run(_compare(cases)))
