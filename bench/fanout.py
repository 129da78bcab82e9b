#!/usr/bin/env python3
"""Fan-out: N sessions IDLE on one mailbox; one APPEND; how soon each sees it.

The sessions (one user's INBOX, watched N times from loopback) are spread
round-robin over the server's ports (its nodes), opened by --procs generator
processes. Each round, one APPEND from another session; each IDLE session
notes when its `* n EXISTS` arrives. Reported: p50, p99 and max of that delay,
how many saw it within 1 s, and how many not at all (within --timeout).

    python3 bench/fanout.py                          # 10,000 sessions, 3 rounds, every server
    python3 bench/fanout.py --sessions 1000 --servers posthouse,dovecot
    python3 bench/fanout.py --quick                  # seconds: the test suite's smoke run

Servers as in capacity.py (posthouse, posthouse-workers, dovecot,
posthouse-pg, posthouse-pg3); one runs at a time. Posthouse's connection
limits are lifted in its config; Dovecot's (mail_max_userip_connections,
process and client limits) are raised to the session count.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from loadgen import Conn, Generators, connect, emit, own_cpu, worker_main  # noqa: E402
from servers import HOST, PASSWORD  # noqa: E402

ALL_SERVERS = ("posthouse", "posthouse-workers", "dovecot", "posthouse-pg", "posthouse-pg3")
DEFAULT_SERVERS = ("posthouse", "posthouse-workers", "dovecot", "posthouse-pg3")
USER = "fan"


# -- the generator (in its own processes) -------------------------------------------
class Watcher(Conn):
    def __init__(self, arrived):
        super().__init__()
        self.waiting: dict[int, asyncio.Future] = {}
        self.idling: asyncio.Future | None = None
        self.armed = False
        self.seen: float | None = None
        self.arrived = arrived

    async def run(self, text: bytes) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.waiting[self.send(text)] = fut
        await fut

    async def idle(self) -> None:
        self.idling = asyncio.get_running_loop().create_future()
        self.send(b"IDLE")
        await self.idling

    def tagged(self, number, status, rest):
        fut = self.waiting.pop(number, None)
        if fut is not None and not fut.done():
            if status == b"OK":
                fut.set_result(None)
            else:
                fut.set_exception(RuntimeError(f"{status.decode()}{rest.decode(errors='replace')[:100]}"))
        elif self.idling is not None and not self.idling.done():
            self.idling.set_exception(RuntimeError(f"IDLE: {status.decode()}{rest.decode(errors='replace')[:100]}"))

    def chunk(self, buf: bytes) -> None:
        if self.armed:
            if b" EXISTS\r\n" in buf:
                self.seen = time.monotonic()
                self.armed = False
                self.arrived()
        elif self.idling is not None and not self.idling.done():
            if buf.startswith(b"+ ") or b"\n+ " in buf:
                self.idling.set_result(None)

    def lost(self) -> None:
        if self.idling is not None and not self.idling.done():
            self.idling.set_exception(ConnectionError("closed"))
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError("closed"))


async def watch(job: dict, ready) -> dict:
    """One generator process: its IDLE sessions, then job["rounds"] rounds."""
    sem = asyncio.Semaphore(64)
    remaining = [0]
    all_seen = asyncio.Event()

    def arrived():
        remaining[0] -= 1
        if remaining[0] == 0:
            all_seen.set()

    async def open_one(number: int) -> Watcher:
        async with sem:
            w = await connect(Watcher, HOST, job["ports"][number % len(job["ports"])], arrived)
            await w.run(b'LOGIN "%s" "%s"' % (job["user"].encode(), PASSWORD.encode()))
            await w.run(b"SELECT INBOX")
            await w.idle()
            return w

    sessions = await asyncio.wait_for(asyncio.gather(*(open_one(n) for n in job["sessions"])),
                                      job["setup_timeout"])
    for _ in range(job["rounds"]):
        start = await ready()
        cpu0 = own_cpu()
        all_seen.clear()
        remaining[0] = len(sessions)
        for w in sessions:
            w.seen, w.armed = None, True
        try:
            await asyncio.wait_for(all_seen.wait(), max(1.0, start + job["timeout"] - time.monotonic()))
        except asyncio.TimeoutError:
            pass
        emit({"seen": [w.seen for w in sessions if w.seen is not None],
              "missed": sum(1 for w in sessions if w.seen is None),
              "closed": sum(1 for w in sessions if w.closed.done()), "cpu": own_cpu() - cpu0})
    for w in sessions:
        w.transport.close()
    return {"done": True}


# -- the benchmark's own process ------------------------------------------------------
def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))]


async def fan_out(target, args) -> dict:
    import imap_client
    from capacity import message
    from servers import pss_kib, process_tree
    n = args.sessions
    procs = max(1, min(args.procs, n))
    jobs = [{"ports": target.ports, "user": USER, "sessions": list(range(k, n, procs)), "rounds": args.rounds,
             "timeout": args.timeout, "setup_timeout": args.setup_timeout} for k in range(procs)]
    gens = Generators(os.path.abspath(__file__), jobs)
    rounds = []
    try:
        t0 = time.monotonic()
        await asyncio.to_thread(gens.ready, args.setup_timeout + 30)
        setup = time.monotonic() - t0
        pids = [p for s in target.servers for p in process_tree(s.proc.pid)]
        memory = pss_kib(pids) / 1024
        appender = await imap_client.Client.connect(HOST, target.ports[0])
        await appender.login(USER, PASSWORD)
        for r in range(args.rounds):
            if r:
                await asyncio.to_thread(gens.ready, 60)
            at = time.monotonic() + 0.3
            gens.go(at)
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            sent = time.monotonic()
            await appender.command(b"APPEND INBOX", message(0, 500 + r))
            acked = time.monotonic() - sent
            res = await asyncio.to_thread(gens.lines, args.timeout + 30)
            delays = sorted((t - sent) * 1000 for x in res for t in x["seen"])
            rounds.append({"delays": delays, "missed": sum(x["missed"] for x in res),
                           "closed": sum(x["closed"] for x in res), "acked_ms": acked * 1000,
                           "gen_cpu": sum(x["cpu"] for x in res)})
        await appender.logout()
        await asyncio.to_thread(gens.results, 60)
    finally:
        gens.stop()
    # A session that never saw it counts as infinitely late (so a p99 can say "never").
    delays = sorted([d for r in rounds for d in r["delays"]] + [float("inf")] * sum(r["missed"] for r in rounds))
    return {"server": target.name, "note": target.note, "sessions": n, "setup_s": setup,
            "memory_mib": memory, "processes": len(pids), "rounds": rounds,
            "p50": percentile(delays, 50), "p99": percentile(delays, 99), "max": delays[-1] if delays else float("nan"),
            "within_1s": sum(1 for d in delays if d <= 1000) / max(1, n * len(rounds)),
            "missed": sum(r["missed"] for r in rounds), "load": os.getloadavg()[0]}


def ms(value: float) -> str:
    return "never" if value == float("inf") else f"{value:,.0f} ms"


def row_text(r: dict) -> str:
    return (f"{r['server']:<18} {r['sessions']:>6,} IDLE sessions: EXISTS p50 {ms(r['p50'])}, "
            f"p99 {ms(r['p99'])}, max {ms(r['max'])}; {r['within_1s'] * 100:.1f}% within 1 s, "
            f"{r['missed']} missed over {len(r['rounds'])} rounds  (set up in {r['setup_s']:.1f} s; "
            f"{r['processes']} server processes, {r['memory_mib']:,.0f} MiB PSS; load {r['load']:.1f})")


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--worker"]:
        return worker_main(watch)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few seconds: 40 sessions, 2 rounds")
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="APPENDs, one at a time")
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS), help=f"of {', '.join(ALL_SERVERS)}")
    parser.add_argument("--procs", type=int, default=2, help="generator processes")
    parser.add_argument("--timeout", type=float, default=30, help="seconds a round waits for every session")
    parser.add_argument("--json", help="also write the figures (JSON) here")
    parser.add_argument("--setup-timeout", type=float, default=600, help="seconds to open every session")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.rounds, args.timeout = 40, 2, 10
    names = [n for n in args.servers.split(",") if n]
    unknown = set(names) - set(ALL_SERVERS)
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.sessions + 2000
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))     # (the servers inherit it)
    import capacity
    from run import _raise_inotify_limit
    if "dovecot" in names:
        from servers import ensure_dovecot
        ensure_dovecot()
        _raise_inotify_limit(args.sessions + 1000)
    workdir = tempfile.mkdtemp(prefix="posthouse-fanout-")
    os.chmod(workdir, 0o755)
    notes, pg, rows = [], [], []
    try:
        for name in names:
            # One server at a time: 10,000 sessions (and Dovecot's process each) are enough at once.
            targets = capacity.start_servers([name], workdir, [USER], os.cpu_count() or 1, notes, pg,
                                             dovecot_sessions=args.sessions)
            for t in targets:
                try:
                    asyncio.run(capacity.load(t, [USER], 5))
                    r = asyncio.run(fan_out(t, args))
                    rows.append(r)
                    print(row_text(r), flush=True)
                finally:
                    t.stop()
    finally:
        for p in pg:
            p.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    for n in notes:
        print("note:", n)
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "notes": notes}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
