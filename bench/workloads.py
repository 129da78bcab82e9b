"""The workloads, each run the same way against either server.

Every workload is bounded: by a count of operations and by a deadline
(asyncio.wait_for), so a server that stalls makes a failed figure, not a hang.
"""
from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from lmtp_client import LmtpClient
from imap_client import Client, ImapError
from servers import HOST, PASSWORD


@dataclass
class Figure:
    """One measured value, with the generator's own CPU use while measuring it."""
    value: float | None
    unit: str
    gen_cpu: float | None = None          # generator CPU, % of one core
    better: str = "higher"                # or "lower"
    detail: str = ""
    extra: dict = field(default_factory=dict)


class GenCpu:
    """Wall time and this process's CPU time over a with-block."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = 100.0 * (time.process_time() - self.cpu0) / max(self.wall, 1e-9)
        return False


async def connect_login(server, user: str) -> Client:
    client = await Client.connect(HOST, server.port)
    await client.login(user, PASSWORD)
    return client


async def append_batch(client: Client, mailbox: bytes, messages: list[bytes]) -> None:
    """One MULTIAPPEND (RFC 3502) of all messages, with non-synchronizing literals."""
    tag = client._next_tag()
    chunks = [tag, b" APPEND ", mailbox]
    for msg in messages:
        chunks += [b" {%d+}\r\n" % len(msg), msg]
    chunks.append(b"\r\n")
    client.writer.writelines(chunks)
    while True:
        line = await client.read_response()
        if line.startswith(tag + b" "):
            if b" OK" not in line[:len(tag) + 4]:
                raise ImapError(f"APPEND failed: {line!r}")
            return


async def load_mailbox(server, user: str, messages: list[bytes], batch: int = 200,
                       connections: int = 2) -> float:
    """Append messages into user's INBOX; returns messages per second."""
    chunks = [messages[i:i + batch] for i in range(0, len(messages), batch)]
    t0 = time.perf_counter()

    async def feeder(k: int) -> None:
        client = await connect_login(server, user)
        for chunk in chunks[k::connections]:
            await append_batch(client, b"INBOX", chunk)
        await client.logout()

    await asyncio.gather(*(feeder(k) for k in range(connections)))
    # Deferred work (Posthouse's text indexing) counts: the load is done when the server settles.
    await asyncio.to_thread(server.settle)
    return len(messages) / (time.perf_counter() - t0)


# -- 1. idle sessions ----------------------------------------------------------
async def idle_sessions(server, users: list[str], count: int, wake_message: bytes,
                        timeout: float) -> dict[str, Figure]:
    """count sessions in IDLE; PSS per session; time until all see a new message."""
    server.restart()
    await asyncio.sleep(1.0)
    rest_kib = server.pss_kib()
    rest_processes = server.process_count()
    sem = asyncio.Semaphore(64)

    async def open_one(i: int) -> Client:
        async with sem:
            client = await connect_login(server, users[i % len(users)])
            await client.command(b"SELECT INBOX")
            await client.idle_start()
            return client

    with GenCpu() as setup:
        clients = await asyncio.wait_for(asyncio.gather(*(open_one(i) for i in range(count))), timeout)
    await asyncio.sleep(1.0)        # let the server settle (login processes, allocator)
    loaded_kib = server.pss_kib()
    processes = server.process_count()
    appenders = await asyncio.gather(*(connect_login(server, u) for u in users))
    waiters = [asyncio.ensure_future(c.wait_for(b"EXISTS")) for c in clients]
    with GenCpu() as wake:
        await asyncio.gather(*(a.command(b"APPEND INBOX", wake_message) for a in appenders))
        await asyncio.wait_for(asyncio.gather(*waiters), timeout)
    closed = time.monotonic()
    for c in clients + appenders:
        c.close()
    await asyncio.sleep(1.0)
    # Dovecot ends a process per session: wait until they are gone, or the
    # next workload shares the machine with their exits (the first LMTP round
    # after 10,000 Dovecot sessions ran at a third of the speed of the others).
    await asyncio.to_thread(server.wait_processes, rest_processes, 300)
    quiet_after = time.monotonic() - closed
    per_session = (loaded_kib - rest_kib) * 1024 / count
    return {
        f"idle {count}: memory per session": Figure(
            per_session / 1024, "KiB", setup.cpu, "lower",
            f"PSS {rest_kib / 1024:.0f} -> {loaded_kib / 1024:.0f} MiB, {processes} processes, "
            f"back to {rest_processes} {quiet_after:.1f} s after the sessions closed"),
        f"idle {count}: all sessions see EXISTS": Figure(wake.wall * 1000, "ms", wake.cpu, "lower",
                                                         f"{len(users)} appends"),
    }


# -- 2. delivery ------------------------------------------------------------------
async def delivery(server, user: str, messages: list[bytes], connections: int,
                   timeout: float) -> Figure:
    """Each message its own APPEND, acknowledged before the next (as delivery is)."""
    clients = await asyncio.gather(*(connect_login(server, user) for _ in range(connections)))
    return await _one_at_a_time(server, clients, lambda c, msg: c.command(b"APPEND INBOX", msg),
                                lambda c: c.logout(), messages, timeout)


async def lmtp_delivery(server, user: str, messages: list[bytes], connections: int,
                        timeout: float) -> Figure:
    """Each message its own LMTP transaction, acknowledged (durably) before the next."""
    clients = await asyncio.gather(*(LmtpClient.connect(HOST, server.lmtp_port) for _ in range(connections)))
    return await _one_at_a_time(server, clients, lambda c, msg: c.deliver("sender@example.com", [user], msg),
                                lambda c: c.quit(), messages, timeout)


async def _one_at_a_time(server, clients, send, close, messages: list[bytes], timeout: float) -> Figure:
    """messages spread over clients, each client sending its next once the last is acknowledged."""
    async def feed(client, mine: list[bytes]) -> None:
        for msg in mine:
            await send(client, msg)

    n = len(clients)
    with GenCpu() as g:
        await asyncio.wait_for(asyncio.gather(*(feed(c, messages[k::n]) for k, c in enumerate(clients))), timeout)
    for c in clients:
        await close(c)
    settled = await asyncio.to_thread(server.settle)
    note = f", its text indexed {settled:.1f} s later" if settled >= 0.1 else ""
    return Figure(len(messages) / g.wall, "msg/s", g.cpu, "higher", f"{len(messages)} messages{note}")


# -- 3. mixed command load ---------------------------------------------------------
MIXED_COMMANDS = ("LOGIN", "LIST", "STATUS", "SELECT", "FETCH meta", "FETCH body", "STORE",
                  "EXPUNGE", "APPEND", "LOGOUT")


async def mixed(server, users: list[str], clients: int, duration: float, per_session_login: bool,
                append_message: bytes) -> dict:
    """imaptest-like stress: each client repeats a session of typical commands."""
    await asyncio.to_thread(server.settle)
    counts: Counter = Counter()
    errors: Counter = Counter()
    deadline = time.perf_counter() + duration

    async def run(kind: str, client: Client, text: bytes, literal: bytes | None = None,
                  untagged: list | None = None) -> bool:
        try:
            await client.command(text, literal, untagged=untagged)
            counts[kind] += 1
            return True
        except ImapError:
            errors[kind] += 1
            return False

    async def worker(i: int) -> None:
        rnd = random.Random(i)
        user = users[i % len(users)]
        client = None
        while time.perf_counter() < deadline:
            if client is None:
                client = await Client.connect(HOST, server.port)
                await run("LOGIN", client, b'LOGIN "%s" "%s"' % (user.encode(), PASSWORD.encode()))
                await run("LIST", client, b'LIST "" "*"')
                await run("STATUS", client, b"STATUS INBOX (MESSAGES UNSEEN UIDNEXT)")
            untagged: list = []
            await run("SELECT", client, b"SELECT INBOX", untagged=untagged)
            exists = 0
            for line in untagged:
                if line.endswith(b" EXISTS\r\n"):
                    exists = int(line.split()[1])
            if exists:
                lo = rnd.randint(1, exists)
                hi = min(exists, lo + 9)
                await run("FETCH meta", client, b"FETCH %d:%d (UID FLAGS ENVELOPE BODYSTRUCTURE)" % (lo, hi))
                await run("FETCH body", client, b"FETCH %d BODY.PEEK[]" % rnd.randint(1, exists))
                await run("STORE", client, b"STORE %d +FLAGS (\\Seen)" % rnd.randint(1, exists))
                await run("STORE", client, b"STORE %d +FLAGS (\\Deleted)" % rnd.randint(1, exists))
                await run("EXPUNGE", client, b"EXPUNGE")
            await run("APPEND", client, b"APPEND INBOX", append_message)
            if per_session_login:
                await run("LOGOUT", client, b"LOGOUT")
                client.close()
                client = None
        if client is not None:
            await client.logout()

    with GenCpu() as g:
        await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(clients))), duration + 60)
    total = sum(counts.values())
    per_type = {k: counts[k] / g.wall for k in MIXED_COMMANDS if counts[k]}
    return {"total": Figure(total / g.wall, "cmd/s", g.cpu, "higher",
                            f"errors: {dict(errors)}" if errors else ""),
            "per_type": per_type}


# -- 4. large mailbox ------------------------------------------------------------------
LARGE_COMMANDS = [      # (name, command, quick: measured at its steady state, see below)
    ("SELECT", b"SELECT INBOX", True),
    ("UID FETCH 1:* (FLAGS)", b"UID FETCH 1:* (FLAGS)", False),
    ("SEARCH UNSEEN", b"SEARCH UNSEEN", False),
    ("SEARCH FROM", b'SEARCH FROM "alice"', False),
    ("SEARCH BODY", b'SEARCH BODY "zanzibar"', False),
    ("SORT (DATE)", b"SORT (DATE) UTF-8 ALL", False),
]
# A quick command takes a fraction of a millisecond, most of it the round
# trip; on this VM the round trip itself takes some hundred runs to settle,
# for either server (the first fifty SELECTs of a session ran ~1.3-1.9x slower
# than the next thousand). So a quick command is run QUICK_WARMUP times
# unmeasured, then measured until a second is spent or QUICK_RUNS runs; its
# first (cold) run is reported beside the median.
QUICK_WARMUP, QUICK_RUNS, QUICK_BUDGET_MS = 200, 2000, 1000


async def large_mailbox(server, user: str, repeats: int, timeout: float) -> dict[str, Figure]:
    await asyncio.to_thread(server.settle)
    client = await connect_login(server, user)
    await client.command(b"SELECT INBOX")
    out = {}
    for name, text, quick in LARGE_COMMANDS:
        times, cpus, failure, answer, first, warming = [], [], None, "", None, QUICK_WARMUP if quick else 0
        # Others: at least `repeats` runs, and until a fifth of a second is
        # spent, up to 50, so a median is not one scheduler hiccup.
        most, budget = (QUICK_RUNS, QUICK_BUDGET_MS) if quick else (50, 200)
        while len(times) < repeats or (sum(times) < budget and len(times) < most):
            if first is not None and first > 10_000:
                break       # a command this slow is measured once: the run has a time budget
            untagged: list = []
            with GenCpu() as g:
                try:
                    await asyncio.wait_for(client.command(text, untagged=untagged), timeout)
                except ImapError as e:
                    failure = str(e)[:80]
                    break
            if first is None:
                first = g.wall * 1000
            if warming:
                warming -= 1
                continue
            times.append(g.wall * 1000)
            cpus.append(g.cpu)
            answer = _answer_size(untagged)
        if failure is not None:
            out[name] = Figure(None, "ms", None, "lower", f"failed: {failure}")
        else:
            warm = f" after {QUICK_WARMUP} unmeasured" if quick else ""
            cold = f"{first:.2f}" if first < 10 else f"{first:.0f}"
            out[name] = Figure(statistics.median(times), "ms", statistics.median(cpus), "lower",
                               f"{len(times)} runs{warm}, first {cold} ms, {answer}")
    await client.logout()
    return out


def _answer_size(untagged: list[bytes]) -> str:
    """How much a command answered: the numbers of a SEARCH or SORT, else the FETCH lines
    (so the two servers' answers can be compared in the results)."""
    for line in untagged:
        if line.startswith((b"* SEARCH", b"* SORT")):
            return f"{len(line.split()) - 2} hits"
    fetches = sum(1 for line in untagged if b" FETCH " in line[:20])
    return f"{fetches} FETCH lines" if fetches else f"{len(untagged)} untagged"


# -- 5. big messages ------------------------------------------------------------------------
class PssSampler:
    """Peak PSS of a server while a block runs, sampled from a thread."""

    def __init__(self, server, interval: float = 0.02):
        self.server = server
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.base = self.server.pss_kib()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.pss_kib())
            self._stop.wait(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


async def big_messages(server, user: str, sizes: dict[str, int], repeats: int,
                       timeout: float) -> dict[str, Figure]:
    """FETCH BODY[] of big messages: MB/s and how much the server's memory grows."""
    client = await connect_login(server, user)
    untagged: list = []
    await client.command(b"SELECT INBOX", untagged=untagged)
    out = {}
    for seq, (label, size) in enumerate(sizes.items(), start=1):
        with PssSampler(server) as pss, GenCpu() as g:
            before = client.literal_bytes
            for _ in range(repeats):
                await asyncio.wait_for(client.command(b"FETCH %d BODY.PEEK[]" % seq), timeout)
            got = client.literal_bytes - before
        out[f"FETCH BODY[] {label}: throughput"] = Figure(got / g.wall / 1e6, "MB/s", g.cpu, "higher",
                                                          f"{repeats} fetches")
        out[f"FETCH BODY[] {label}: server memory growth"] = Figure(
            (pss.peak - pss.base) / 1024, "MiB", None, "lower", "peak PSS over PSS before")
    await client.logout()
    return out


def big_message(size: int, seed: int) -> bytes:
    """A message of about size bytes: text part and a base64 attachment."""
    import base64
    rnd = random.Random(seed)
    payload = rnd.randbytes(size * 3 // 4)
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (b"From: Big Sender <big@example.com>\r\nTo: bench@example.com\r\n"
            b"Subject: big message %d\r\nMessage-ID: <big%d@bench.example>\r\n"
            b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n"
            b"--b0undary\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n"
            b"--b0undary\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\n\r\n"
            % (seed, seed) + b64 + b"--b0undary--\r\n")


def read_mbox(path: str) -> list[bytes]:
    """Messages of an mbox, with CRLF line ends, as a server would store them."""
    import mailbox
    out = []
    for msg in mailbox.mbox(path):
        raw = msg.as_bytes()
        out.append(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return out


def tagged_copy(raw: bytes, n: int, rare_word: str | None = None) -> bytes:
    """A distinct copy of a message (so content-addressed stores can't share it)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    head = b"X-Bench-Copy: %d\r\n" % n + head
    if rare_word and sep:
        body = rare_word.encode() + b" " + body
    return head + sep + body
