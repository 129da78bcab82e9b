#!/usr/bin/env python3
"""Posthouse against Dovecot: the same mail, the same workloads, the same run.

    python3 bench/run.py            # the full run (about 13 minutes), writes bench/RESULTS.md
    python3 bench/run.py --quick    # seconds; what the test suite runs

Everything listens on 127.0.0.1 and every loop is bounded by count and time.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workloads as w  # noqa: E402
from servers import DovecotServer, PosthouseServer, ensure_dovecot, generator_scheduling  # noqa: E402

GEN_MBOX = os.path.join(HERE, "..", "..", "shared", "tools", "gen_mbox.py")
RARE_WORD = "zanzibar"


@dataclass
class Scale:
    users: int
    mailbox_messages: int         # per user, for the mixed load
    idle: tuple
    delivery: int
    mixed_clients: tuple
    mixed_seconds: float
    large: int
    big_sizes: dict
    big_repeats: int
    timeout: float


FULL = Scale(users=100, mailbox_messages=50, idle=(1000, 10000), delivery=5000,
             mixed_clients=(10, 50, 200), mixed_seconds=9, large=100_000,
             big_sizes={"1 MB": 1_000_000, "10 MB": 10_000_000}, big_repeats=5, timeout=300)
QUICK = Scale(users=4, mailbox_messages=10, idle=(20,), delivery=40, mixed_clients=(3,),
              mixed_seconds=1, large=300, big_sizes={"100 kB": 100_000, "1 MB": 1_000_000},
              big_repeats=2, timeout=60)


def sample_messages(workdir: str, count: int) -> list[bytes]:
    if not os.path.exists(GEN_MBOX):
        raise SystemExit(f"{GEN_MBOX} is missing: the benchmark needs ../shared beside the project")
    path = os.path.join(workdir, "sample.mbox")
    subprocess.run([sys.executable, GEN_MBOX, path, str(count), "42"], check=True,
                   stdout=subprocess.DEVNULL)
    return w.read_mbox(path)


def rare_word_eligible(raw: bytes) -> bool:
    head = raw.partition(b"\r\n\r\n")[0].lower()
    return b"content-type: text/plain" in head and b"base64" not in head


def large_set(sample: list[bytes], count: int) -> list[bytes]:
    """count distinct messages; one in a thousand carries RARE_WORD in a plain-text body."""
    eligible = [raw for raw in sample if rare_word_eligible(raw)]
    if not eligible:
        raise SystemExit("the sample has no plain-text message to carry the rare word")
    out = []
    for n in range(count):
        if n % 1000 == 7:
            out.append(w.tagged_copy(eligible[(n // 1000) % len(eligible)], n, RARE_WORD))
        else:
            out.append(w.tagged_copy(sample[n % len(sample)], n))
    return out


def small_message(n: int) -> bytes:
    return (b"From: Sender <sender@example.com>\r\nTo: deliver@example.com\r\n"
            b"Subject: delivery %d\r\nMessage-ID: <d%d@bench.example>\r\n"
            b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n" % (n, n)
            + b"A short message body, as most mail is.\r\n" * 20)


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    dovecot = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    try:
        rev = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        rev = "?"
    try:
        import uvloop
        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()} ({loop}); "
            f"Dovecot {dovecot}; Posthouse {rev}")


class Report:
    def __init__(self):
        self.rows: list[tuple[str, str, w.Figure | None, w.Figure | None, str]] = []

    def add(self, section: str, name: str, ph: w.Figure | None, dc: w.Figure | None, goal: str = "") -> None:
        self.rows.append((section, name, ph, dc, goal))
        print(self._line(section, name, ph, dc, goal), flush=True)

    @staticmethod
    def ratio(ph, dc) -> str:
        if not ph or not dc or ph.value is None or dc.value is None or not dc.value or not ph.value:
            return "-"
        # Ratio Posthouse over Dovecot, oriented so that above 1 means Posthouse is better.
        r = ph.value / dc.value if ph.better == "higher" else dc.value / ph.value
        return f"{r:.2f}x"

    @staticmethod
    def _fmt(f) -> str:
        if f is None:
            return "-"
        if f.value is None:
            return f"failed ({f.detail})"
        v = (f"{f.value:.3f}" if f.value < 1 else f"{f.value:,.1f}" if f.value < 1000
             else f"{f.value:,.0f}")     # (a sub-millisecond figure keeps its microseconds)
        return f"{v} {f.unit}"

    @staticmethod
    def _cpu(f) -> str:
        return "-" if f is None or f.gen_cpu is None else f"{f.gen_cpu:.0f}%"

    def _line(self, section, name, ph, dc, goal) -> str:
        return (f"{section:<10} {name:<42} posthouse {self._fmt(ph):>16} (gen {self._cpu(ph):>4})  "
                f"dovecot {self._fmt(dc):>16} (gen {self._cpu(dc):>4})  ratio {self.ratio(ph, dc):>7}"
                + (f"  goal: {goal}" if goal else ""))

    def markdown(self, header: str) -> str:
        out = [header, "",
               "Ratio: Posthouse over Dovecot, turned so that above 1.00x means Posthouse did better "
               "(higher throughput or lower time/memory). gen: the load generator's own CPU, % of one core.", "",
               "| workload | measure | Posthouse | Dovecot | ratio | goal | notes |",
               "|---|---|---|---|---|---|---|"]
        for section, name, ph, dc, goal in self.rows:
            notes = "; ".join(x for x in (
                f"posthouse gen {self._cpu(ph)}" + (f", {ph.detail}" if ph and ph.detail else ""),
                f"dovecot gen {self._cpu(dc)}" + (f", {dc.detail}" if dc and dc.detail else "")) if x)
            out.append(f"| {section} | {name} | {self._fmt(ph)} | {self._fmt(dc)} | "
                       f"{self.ratio(ph, dc)} | {goal} | {notes} |")
        return "\n".join(out) + "\n"


# Throughput workloads run in this many rounds, the two servers taking turns
# (A B B A A B): a machine whose speed drifts during the run (a shared VM)
# then weighs on both alike. Each server's figure is its median round.
ROUNDS = 3


async def interleaved(servers, run_round) -> dict:
    """run_round(server, round) -> a Figure, or a dict whose "total" is one;
    for each server, the result of its median round (by that figure)."""
    results: dict[str, list] = {srv.name: [] for srv in servers}
    for r in range(ROUNDS):
        for srv in (servers if r % 2 == 0 else servers[::-1]):
            results[srv.name].append(await run_round(srv, r))
    def figure(res):
        return res["total"] if isinstance(res, dict) else res
    out = {}
    for name, rounds in results.items():
        ok = [res for res in rounds if figure(res).value is not None]
        if len(ok) < len(rounds):
            out[name] = next(res for res in rounds if figure(res).value is None)     # a failure shows
            continue
        ok.sort(key=lambda res: figure(res).value)
        median = ok[len(ok) // 2]
        fig = figure(median)
        values = ", ".join(f"{figure(res).value:,.0f}" for res in rounds)
        fig.detail = "; ".join(x for x in (fig.detail, f"median of {ROUNDS} interleaved rounds ({values})") if x)
        out[name] = median
    return out


async def run_all(scale: Scale, workdir: str, report: Report, only: set[str] | None) -> None:
    users = [f"user{i:03d}" for i in range(scale.users)]
    special = ["deliver", "big", "bigmsg"]
    sample = sample_messages(workdir, 2000 if scale is FULL else 200)
    print(f"sample: {len(sample)} messages from gen_mbox.py", flush=True)
    servers = []
    try:
        t0 = time.perf_counter()
        servers.append(PosthouseServer(workdir, users + special))
        servers.append(DovecotServer(workdir, users + special, max(scale.idle) + 400))
        print(f"servers up in {time.perf_counter() - t0:.1f}s", flush=True)
        ph, dc = servers

        def want(name):
            return only is None or name in only

        # Load: each user's INBOX for the mixed load; the large mailbox.
        for srv in servers:
            per_user = [[w.tagged_copy(sample[(u * 7 + k) % len(sample)], u * 1000 + k)
                         for k in range(scale.mailbox_messages)] for u in range(len(users))]
            t = time.perf_counter()
            await asyncio.gather(*(w.load_mailbox(srv, u, msgs, batch=50, connections=1)
                                   for u, msgs in zip(users, per_user)))
            print(f"{srv.name}: loaded {len(users)} users x {scale.mailbox_messages} messages "
                  f"in {time.perf_counter() - t:.1f}s", flush=True)
        if want("large"):
            big_box = large_set(sample, scale.large)
            rates = {}
            for srv in servers:
                rates[srv.name] = w.Figure(await w.load_mailbox(srv, "big", big_box), "msg/s", None, "higher",
                                           "MULTIAPPEND batches of 200 over 2 connections")
            report.add("load", f"APPEND {scale.large:,} messages", rates["posthouse"], rates["dovecot"])
            del big_box

        if want("idle"):
            wake = small_message(0)
            for count in scale.idle:
                res = {}
                for srv in servers:
                    res[srv.name] = await w.idle_sessions(srv, users, count, wake, scale.timeout)
                for key in res["posthouse"]:
                    goal = "< 50 KiB" if "memory" in key else ("< 1000 ms" if count >= 10000 else "")
                    report.add("idle", key, res["posthouse"][key], res["dovecot"][key], goal)

        if want("delivery"):
            msgs = [small_message(n) for n in range(scale.delivery)]
            rounds = [msgs[r::ROUNDS] for r in range(ROUNDS)]
            for conns in (1, 4):
                res = await interleaved(servers, lambda srv, r: w.lmtp_delivery(
                    srv, "deliver", rounds[r], conns, scale.timeout))
                report.add("delivery", f"LMTP, {conns} conn, fsync on", res["posthouse"], res["dovecot"], ">= 2x")
            for conns in (1, 4):
                res = await interleaved(servers, lambda srv, r: w.delivery(
                    srv, "deliver", rounds[r], conns, scale.timeout))
                report.add("delivery", f"APPEND, {conns} conn, fsync on", res["posthouse"], res["dovecot"])

        if want("mixed"):
            append_msg = small_message(1)
            for per_login in (True, False):
                profile = "login per session" if per_login else "persistent sessions"
                for clients in scale.mixed_clients:
                    res = await interleaved(servers, lambda srv, r: w.mixed(
                        srv, users, clients, scale.mixed_seconds / ROUNDS, per_login, append_msg))
                    report.add("mixed", f"{profile}, {clients} clients: all",
                               res["posthouse"]["total"], res["dovecot"]["total"], ">= 1x")
                    for kind in w.MIXED_COMMANDS:
                        p = res["posthouse"]["per_type"].get(kind)
                        d = res["dovecot"]["per_type"].get(kind)
                        if p is None and d is None:
                            continue
                        report.add("mixed", f"{profile}, {clients} clients: {kind}",
                                   w.Figure(p, "cmd/s"), w.Figure(d, "cmd/s"), ">= 1x")

        if want("large"):
            res = {srv.name: await w.large_mailbox(srv, "big", 3, scale.timeout) for srv in servers}
            for name, *_ in w.LARGE_COMMANDS:
                goal = "< 50 ms" if name == "SEARCH BODY" else ">= 1x"
                report.add("large", f"{scale.large:,} msgs: {name}", res["posthouse"].get(name),
                           res["dovecot"].get(name), goal)

        if want("big"):
            bigs = [w.big_message(size, i) for i, size in enumerate(scale.big_sizes.values())]
            for srv in servers:
                for msg in bigs:
                    await w.load_mailbox(srv, "bigmsg", [msg], batch=1, connections=1)
            res = {srv.name: await w.big_messages(srv, "bigmsg", scale.big_sizes, scale.big_repeats, scale.timeout)
                   for srv in servers}
            for key in res["posthouse"]:
                report.add("big", key, res["posthouse"][key], res["dovecot"][key],
                           "no growth with size" if "memory" in key else "")
    finally:
        for srv in servers:
            srv.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small run in seconds (the test suite's smoke run)")
    parser.add_argument("--only", help="comma-separated workloads: idle,delivery,mixed,large,big")
    parser.add_argument("--results", help="where to write the Markdown table "
                        "(default bench/RESULTS.md for a full run, nowhere for --quick)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * max(scale.idle) + 2000
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    _raise_inotify_limit(max(scale.idle) + 1000)
    ensure_dovecot()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    generator_scheduling()
    workdir = tempfile.mkdtemp(prefix="posthouse-bench-")
    os.chmod(workdir, 0o755)
    report = Report()
    started = time.perf_counter()
    print(machine(), flush=True)
    try:
        asyncio.run(run_all(scale, workdir, report, set(args.only.split(",")) if args.only else None))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print(f"benchmark done in {elapsed:.0f}s", flush=True)
    results = args.results or (None if args.quick else os.path.join(HERE, "RESULTS.md"))
    if results:
        header = (f"# Benchmark results\n\nMachine: {machine()}\n\n"
                  f"Run: `python3 bench/run.py{' --quick' if args.quick else ''}`, "
                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {elapsed:.0f} s in all.")
        with open(results, "w") as f:
            f.write(report.markdown(header))
        print(f"wrote {results}")
    return 0


def _raise_inotify_limit(instances: int) -> None:
    """Dovecot's IDLE uses one inotify instance per session; the default 128 would make it poll."""
    path = "/proc/sys/fs/inotify/max_user_instances"
    try:
        with open(path) as f:
            current = int(f.read())
        if current < instances:
            with open(path, "w") as f:
                f.write(str(instances))
    except (OSError, ValueError):
        print(f"note: could not raise {path}; Dovecot's IDLE may fall back to polling", flush=True)


if __name__ == "__main__":
    sys.exit(main())
