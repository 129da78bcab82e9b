#!/usr/bin/env python3
"""Capacity: commands per second when every client keeps commands in flight.

Each client holds one persistent session (over 100 users) and keeps up to
--depth commands in flight with no think time, as imaptest's stress does:
SELECT or EXAMINE, UID FETCH 1:* (FLAGS), UID FETCH BODY.PEEK[] of small
messages, UID STORE +FLAGS/-FLAGS, UID STORE +FLAGS (\\Deleted) and EXPUNGE,
APPEND, UID SEARCH. Tagged OK, NO and BAD are counted each second; the
server's CPU (its process and every descendant, from /proc; PostgreSQL's own
beside it) is divided by the commands answered OK. The generator runs in
--procs processes and reports its own CPU, so a saturated generator shows.

    python3 bench/capacity.py                   # 10, 50, 200 clients on every server (~10 min)
    python3 bench/capacity.py --quick           # seconds: the test suite's smoke run
    python3 bench/capacity.py --servers posthouse,dovecot --clients 10 --seconds 10

Servers: posthouse (one process: workers = 1 when the config knows the key),
posthouse-workers (workers = cores; skipped, saying so, when the config has no
`workers`), dovecot, posthouse-pg (database_url on a private PostgreSQL,
one node), posthouse-pg3 (three `posthouse serve` nodes over that database,
the clients spread over them round-robin). Everything listens on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from loadgen import Conn, Generators, connect, cpu_seconds, own_cpu, sleep_until, worker_main  # noqa: E402
from servers import HOST, PASSWORD  # noqa: E402

ALL_SERVERS = ("posthouse", "posthouse-workers", "dovecot", "posthouse-pg", "posthouse-pg-workers", "posthouse-pg3")

# The commands, by kind (the index is the kind's number in the counters).
KINDS = ("SELECT", "EXAMINE", "FETCH FLAGS", "FETCH BODY", "STORE +FLAGS", "STORE -FLAGS",
         "STORE \\Deleted", "EXPUNGE", "APPEND", "SEARCH")
K = {name: i for i, name in enumerate(KINDS)}
# A client's cycle: one SELECT (with changes) three times in four, else one
# EXAMINE (reading only). SELECT/EXAMINE wait for what is in flight and are
# answered before anything follows them, as a client must (the others are
# UID commands, which pipelining can't make ambiguous).
SELECT_CYCLE = ("SELECT", "FETCH FLAGS", "FETCH BODY", "FETCH BODY", "STORE +FLAGS", "FETCH BODY",
                "STORE -FLAGS", "SEARCH", "STORE \\Deleted", "EXPUNGE", "APPEND")
EXAMINE_CYCLE = ("EXAMINE", "FETCH FLAGS", "FETCH BODY", "FETCH BODY", "SEARCH")
SEARCHES = (b'UID SEARCH UNSEEN', b'UID SEARCH FROM "alice"', b'UID SEARCH BODY "quarterly"')
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


def message(user: int, n: int) -> bytes:
    """A small message (about 1.2 kB), distinct from every other (no store can share it)."""
    sender = ("alice", "bob", "carol", "dave")[n % 4]
    words = ("the quarterly report" if n % 5 == 0 else "a note about lunch")
    return (b"From: %s <%s@example.com>\r\nTo: user%d@example.com\r\n"
            b"Subject: message %d about %s\r\nMessage-ID: <c%d.%d@bench.example>\r\n"
            b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n"
            % (sender.title().encode(), sender.encode(), user, n, words.encode(), user, n)
            + (b"This is %s, written to be read and filed.\r\n" % words.encode()) * 25)


# -- the generator (in its own processes) -------------------------------------------
class Stats:
    def __init__(self):
        self.counts = [0] * (len(KINDS) * 3)
        self.failures: list[str] = []        # the first few NO/BAD, to say why

    def total_ok(self) -> int:
        return sum(self.counts[0::3])


class Session(Conn):
    def __init__(self, number: int, depth: int, messages: int, stats: Stats):
        super().__init__()
        self.rnd = random.Random(number)
        self.number = number
        self.depth = depth
        self.window = messages * 2       # UIDs are drawn from the last this many
        self.stats = stats
        self.inflight: dict[int, int] = {}
        self.plan: list[str] = []
        self.cycles = 0
        self.uidnext = 2
        self.barrier = False        # a SELECT/EXAMINE is under way
        self.running = False
        self.appended = 0
        self.login: asyncio.Future | None = None

    async def log_in(self, user: str) -> None:
        self.login = asyncio.get_running_loop().create_future()
        self.login_tag = self.send(b'LOGIN "%s" "%s"' % (user.encode(), PASSWORD.encode()))
        await self.login

    def start(self) -> None:
        self.running = True
        self.pump()

    def _uid(self) -> int:
        return self.rnd.randint(max(1, self.uidnext - self.window), max(1, self.uidnext - 1))

    def _text(self, kind: str) -> bytes:
        if kind == "SELECT":
            return b"SELECT INBOX"
        if kind == "EXAMINE":
            return b"EXAMINE INBOX"
        if kind == "FETCH FLAGS":
            return b"UID FETCH 1:* (FLAGS)"
        if kind == "FETCH BODY":
            return b"UID FETCH %d BODY.PEEK[]" % self._uid()
        if kind == "STORE +FLAGS":
            return b"UID STORE %d +FLAGS (\\Seen \\Flagged)" % self._uid()
        if kind == "STORE -FLAGS":
            return b"UID STORE %d -FLAGS (\\Seen)" % self._uid()
        if kind == "STORE \\Deleted":
            return b"UID STORE %d +FLAGS (\\Deleted)" % self._uid()
        if kind == "EXPUNGE":
            return b"EXPUNGE"
        if kind == "APPEND":
            self.appended += 1
            msg = message(self.number, 1_000_000 + self.appended)
            return b"APPEND INBOX {%d+}\r\n%s" % (len(msg), msg)
        return SEARCHES[self.rnd.randrange(len(SEARCHES))]

    def pump(self) -> None:
        out = []
        while self.running and not self.barrier:
            if not self.plan:
                self.cycles += 1
                self.plan = list(EXAMINE_CYCLE if self.cycles % 4 == 2 else SELECT_CYCLE)
            kind = self.plan[0]
            if kind in ("SELECT", "EXAMINE"):
                if self.inflight:
                    break
                self.barrier = True
            elif len(self.inflight) >= self.depth:
                break
            self.plan.pop(0)
            n = self.next_tag
            self.next_tag += 1
            self.inflight[n] = K[kind]
            out.append(b"c%d %s\r\n" % (n, self._text(kind)))
        if out:
            self.transport.write(b"".join(out))

    def chunk(self, buf: bytes) -> None:
        if self.barrier:
            m = _UIDNEXT.search(buf)
            if m:
                self.uidnext = int(m.group(1))

    def tagged(self, number: int, status: bytes, rest: bytes) -> None:
        if self.login is not None and number == self.login_tag:
            if status == b"OK":
                self.login.set_result(None)
            else:
                self.login.set_exception(RuntimeError(f"LOGIN: {status.decode()}{rest.decode(errors='replace')}"))
            return
        kind = self.inflight.pop(number, None)
        if kind is None:
            return
        s = 0 if status == b"OK" else 1 if status == b"NO" else 2
        self.stats.counts[kind * 3 + s] += 1
        if s and len(self.stats.failures) < 5:
            self.stats.failures.append(f"{KINDS[kind]}: {status.decode()}{rest.decode(errors='replace')[:120]}")
        if kind <= 1:
            self.barrier = False
        elif kind == 8 and s == 0:
            m = _APPENDUID.search(rest)
            if m:
                self.uidnext = max(self.uidnext, int(m.group(1)) + 1)
        if self.running:
            self.pump()

    def lost(self) -> None:
        self.running = False


async def generate(job: dict, ready) -> dict:
    """One generator process: its sessions, the window, its counts."""
    stats = Stats()
    sem = asyncio.Semaphore(32)

    async def open_one(number: int) -> Session:
        async with sem:
            port = job["ports"][number % len(job["ports"])]
            s = await connect(Session, HOST, port, number, job["depth"], job["messages"], stats)
            await s.log_in(job["users"][number % len(job["users"])])
            return s

    sessions = await asyncio.wait_for(asyncio.gather(*(open_one(n) for n in job["sessions"])), job["timeout"])
    start = await ready()
    await sleep_until(start)
    for s in sessions:
        s.start()
    await sleep_until(start + job["warmup"])
    first, cpu0 = list(stats.counts), own_cpu()
    timeline, last = [], stats.total_ok()
    end = start + job["warmup"] + job["seconds"]
    for second in range(1, int(job["seconds"]) + 1):
        await sleep_until(min(end, start + job["warmup"] + second))
        now = stats.total_ok()
        timeline.append(now - last)
        last = now
    await sleep_until(end)
    final, cpu = list(stats.counts), own_cpu() - cpu0
    for s in sessions:
        s.running = False
    # What is in flight is let finish (bounded), so no server sees a cut request.
    drain = time.monotonic() + 5
    while any(s.inflight for s in sessions) and time.monotonic() < drain:
        await asyncio.sleep(0.05)
    for s in sessions:
        s.transport.close()
    counts = [b - a for a, b in zip(first, final)]
    return {"counts": {KINDS[k]: counts[k * 3:k * 3 + 3] for k in range(len(KINDS))},
            "timeline": timeline, "cpu": cpu, "failures": stats.failures,
            "gone": sum(1 for s in sessions if s.closed.done()),
            "whole_run": {KINDS[k]: stats.counts[k * 3:k * 3 + 3] for k in range(len(KINDS))}}


# -- the servers -------------------------------------------------------------------
class Target:
    """A server under test: where its clients connect, and which processes' CPU is its."""

    def __init__(self, name: str, servers: list, db_pid: int | None = None, note: str = ""):
        self.name, self.servers, self.db_pid, self.note = name, servers, db_pid, note

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    def cpu(self) -> tuple[float, float]:
        server = cpu_seconds([s.proc.pid for s in self.servers])
        db = cpu_seconds([self.db_pid]) if self.db_pid else 0.0
        return server, db

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def workers_key() -> bool:
    """Does this tree's config know `workers = N` (issue 24's session processes)?"""
    from posthouse.config_schema import TopLevel
    return "workers" in TopLevel.model_fields


def postgres_pid(pg) -> int:
    with open(os.path.join(pg.dir, "data", "postmaster.pid")) as f:
        return int(f.readline())


def start_servers(names: list[str], workdir: str, users: list[str], cores: int, notes: list[str],
                  pg_holder: list, dovecot_sessions: int = 400) -> list[Target]:
    from servers import DovecotServer, PosthouseServer
    has_workers = workers_key()
    one = "workers = 1\n" if has_workers else ""
    targets = []
    for name in names:
        if name == "posthouse":
            targets.append(Target(name, [PosthouseServer(workdir, users, top_level=one, subdir=name)],
                                  note="workers = 1" if has_workers else "one process"))
        elif name == "posthouse-workers":
            if not has_workers:
                notes.append("posthouse-workers: skipped, this tree's config has no `workers` key")
                continue
            targets.append(Target(name, [PosthouseServer(workdir, users, top_level=f"workers = {cores}\n",
                                                         subdir=name)], note=f"workers = {cores}"))
        elif name == "dovecot":
            targets.append(Target(name, [DovecotServer(workdir, users, dovecot_sessions)], note="Debian's, sdbox"))
        elif name in ("posthouse-pg", "posthouse-pg-workers", "posthouse-pg3"):
            pg = pg_holder[0] if pg_holder else start_postgres(notes)
            if pg is None:
                continue
            if not pg_holder:
                pg_holder.append(pg)
            url = pg.new_database(prefix="bench")
            node_workers = f"workers = {cores}\n" if name == "posthouse-pg-workers" and has_workers else one
            top = node_workers + f'database_url = "{url}"\n'
            count = 3 if name == "posthouse-pg3" else 1
            nodes = [PosthouseServer(workdir, users if k == 0 else [], top_level=top, subdir=f"{name}-{k}")
                     for k in range(count)]
            targets.append(Target(name, nodes, postgres_pid(pg),
                                  note=f"{count} node{'s' if count > 1 else ''}"
                                       f"{f' of {cores} workers' if name == 'posthouse-pg-workers' else ''}, "
                                       f"PostgreSQL (synchronous_commit on)"))
    return targets


def start_postgres(notes: list[str]):
    sys.path.insert(0, ROOT)
    from tests.pgserver import PrivatePostgres
    pg = PrivatePostgres(fsync=True)       # durable, as the other servers are
    why = pg.why_not()
    if why:
        notes.append(f"posthouse-pg, posthouse-pg3: skipped ({why})")
        return None
    pg.start()
    return pg


async def load(target: Target, users: list[str], messages: int) -> None:
    import workloads as w
    fake = type("Srv", (), {"port": target.ports[0], "settle": lambda self: 0.0})()
    await asyncio.gather(*(w.load_mailbox(fake, u, [message(i, n) for n in range(messages)],
                                          batch=messages, connections=1)
                           for i, u in enumerate(users)))
    for s in target.servers:
        await asyncio.to_thread(s.settle)


# -- one measured point ---------------------------------------------------------------
def measure(target: Target, clients: int, args, users: list[str]) -> dict:
    procs = max(1, min(args.procs, clients))
    jobs = [{"ports": target.ports, "users": users, "sessions": list(range(k, clients, procs)),
             "depth": args.depth, "messages": args.messages, "warmup": args.warmup,
             "seconds": args.seconds, "timeout": 120} for k in range(procs)]
    gens = Generators(os.path.abspath(__file__), jobs)
    try:
        gens.ready(150)
        start = time.monotonic() + 0.5
        gens.go(start)
        time.sleep(max(0.0, start + args.warmup - time.monotonic()))
        cpu0, wall0 = target.cpu(), time.monotonic()
        time.sleep(max(0.0, start + args.warmup + args.seconds - time.monotonic()))
        cpu1, wall1 = target.cpu(), time.monotonic()
        results = gens.results(60)
    finally:
        gens.stop()
    seconds = args.seconds
    counts = {k: [sum(r["counts"][k][i] for r in results) for i in range(3)] for k in KINDS}
    ok = sum(c[0] for c in counts.values())
    failed = sum(c[1] + c[2] for c in counts.values())
    timeline = [sum(t) for t in zip(*(r["timeline"] for r in results))]
    server_cpu, db_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    wall = wall1 - wall0
    return {"server": target.name, "clients": clients, "cmd_s": ok / seconds, "failed_s": failed / seconds,
            "per_kind": {k: c[0] / seconds for k, c in counts.items()},
            "no_bad": {k: c[1:] for k, c in counts.items() if c[1] or c[2]},
            "server_cores": server_cpu / wall, "db_cores": db_cpu / wall,
            "cpu_us": (server_cpu + db_cpu) / max(ok, 1) * 1e6,
            "gen_cores": sum(r["cpu"] for r in results) / seconds,
            "gen_max": max(r["cpu"] for r in results) / seconds, "procs": procs,
            "timeline": (min(timeline), max(timeline)) if timeline else (0, 0),
            "failures": [f for r in results for f in r["failures"]][:5],
            "gone": sum(r["gone"] for r in results), "load": os.getloadavg()[0],
            # Warm-up, window and the commands let finish after it: what was answered how.
            "whole_run": {k: [sum(r["whole_run"][k][i] for r in results) for i in range(3)] for k in KINDS}}


def row_text(r: dict, dovecot: dict | None) -> str:
    ratio = f"{r['cmd_s'] / dovecot['cmd_s']:.2f}x" if dovecot and dovecot["cmd_s"] else "-"
    db = f" + db {r['db_cores']:.2f}" if r["db_cores"] else ""
    return (f"{r['server']:<18} {r['clients']:>4} clients  {r['cmd_s']:>9,.0f} cmd/s  "
            f"(per second {r['timeline'][0]:,}-{r['timeline'][1]:,}; NO/BAD {r['failed_s']:,.1f}/s)  "
            f"server {r['server_cores']:.2f} cores{db}, {r['cpu_us']:,.0f} us CPU/cmd  "
            f"gen {r['gen_cores'] * 100:.0f}% ({r['procs']} procs, max {r['gen_max'] * 100:.0f}%)  "
            f"vs dovecot {ratio}  load {r['load']:.1f}")


def markdown(rows: list[dict], names: list[str], clients: list[int], notes: list[str], header: str) -> str:
    out = [header, "",
           "| clients | server | cmd/s | vs Dovecot | server CPU (cores) | CPU us/cmd | "
           "NO+BAD/s | generator CPU | load avg |", "|---|---|---|---|---|---|---|---|---|"]
    for c in clients:
        dc = next((r for r in rows if r["clients"] == c and r["server"] == "dovecot"), None)
        for name in names:
            r = next((r for r in rows if r["clients"] == c and r["server"] == name), None)
            if r is None:
                continue
            ratio = f"{r['cmd_s'] / dc['cmd_s']:.2f}x" if dc and dc["cmd_s"] else "-"
            db = f" + {r['db_cores']:.2f} PostgreSQL" if r["db_cores"] else ""
            out.append(f"| {c} | {name} | {r['cmd_s']:,.0f} | {ratio} | {r['server_cores']:.2f}{db} | "
                       f"{r['cpu_us']:,.0f} | {r['failed_s']:,.1f} | "
                       f"{r['gen_cores'] * 100:.0f}% in {r['procs']} ({r['gen_max'] * 100:.0f}% max) | "
                       f"{r['load']:.1f} |")
    out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--worker"]:
        return worker_main(generate)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few seconds: 3 clients, 4 users, 1 s")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS),
                        help=f"comma-separated, of {', '.join(ALL_SERVERS)}")
    parser.add_argument("--clients", default="10,50,200", help="client counts (default 10,50,200)")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--messages", type=int, default=30, help="messages per user's INBOX at the start")
    parser.add_argument("--depth", type=int, default=4, help="commands each client keeps in flight")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each point")
    parser.add_argument("--procs", type=int, default=2, help="generator processes")
    parser.add_argument("--results", help="also write the table (Markdown) here")
    parser.add_argument("--json", help="also write every point's figures (JSON) here")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.messages, args.seconds, args.warmup = 4, 8, 1, 0.5
        if args.clients == "10,50,200":
            args.clients = "3"
    names = [n for n in args.servers.split(",") if n]
    unknown = set(names) - set(ALL_SERVERS)
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    clients = [int(c) for c in args.clients.split(",")]
    cores = os.cpu_count() or 1
    users = [f"cap{i:03d}" for i in range(args.users)]
    if "dovecot" in names:
        from servers import ensure_dovecot
        ensure_dovecot()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    from run import machine as run_machine

    def machine() -> str:
        try:
            return run_machine()
        except OSError:          # (no dovecot to ask its version)
            return f"{os.cpu_count()} cores"
    workdir = tempfile.mkdtemp(prefix="posthouse-capacity-")
    os.chmod(workdir, 0o755)
    notes = [f"{args.users} users x {args.messages} messages; each client keeps {args.depth} commands "
             f"in flight; {args.warmup:g} s warm-up, then {args.seconds:g} s measured per point; "
             f"the generator in {args.procs} processes (SCHED_BATCH)"]
    targets, pg, rows = [], [], []
    started = time.monotonic()
    print(machine(), flush=True)
    try:
        targets = start_servers(names, workdir, users, cores, notes, pg)
        for t in targets:
            t0 = time.monotonic()
            asyncio.run(load(t, users, args.messages))
            print(f"{t.name}: {t.note}; loaded {len(users)} x {args.messages} in "
                  f"{time.monotonic() - t0:.1f} s", flush=True)
        for c in clients:
            # Every server at one client count, then the next count: a machine
            # whose speed drifts weighs on all of them alike.
            for t in targets:
                r = measure(t, c, args, users)
                rows.append(r)
                dc = next((x for x in rows if x["clients"] == c and x["server"] == "dovecot"), None)
                print(row_text(r, dc if t.name != "dovecot" else None), flush=True)
                if r["failures"]:
                    print(f"    NO/BAD, first: {r['failures']}", flush=True)
                if r["gone"]:
                    print(f"    {r['gone']} sessions closed by the server", flush=True)
    finally:
        for t in targets:
            t.stop()
        for p in pg:
            p.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    # Ratios against Dovecot's figure at the same client count (printed above
    # as each point ran; Dovecot's own row comes after the first ones).
    print("\nsummary (cmd/s, ratio to Dovecot):")
    for c in clients:
        dc = next((x for x in rows if x["clients"] == c and x["server"] == "dovecot"), None)
        for r in (x for x in rows if x["clients"] == c):
            print(row_text(r, dc if r["server"] != "dovecot" else None))
    for n in notes[1:]:
        print("note:", n)
    elapsed = time.monotonic() - started
    print(f"capacity done in {elapsed:.0f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "notes": notes}, f, indent=1)
    if args.results:
        header = (f"# Capacity (pipelined sessions)\n\nMachine: {machine()}\n\n"
                  f"Run: `python3 bench/capacity.py {' '.join(argv if argv is not None else sys.argv[1:])}`, "
                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {elapsed:.0f} s.")
        with open(args.results, "w") as f:
            f.write(markdown(rows, [t.name for t in targets], clients, notes, header))
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
