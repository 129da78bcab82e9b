"""Many accounts followed by one tracker process.

    python3 bench/tracker_scale.py                    # 1,000 accounts
    python3 bench/tracker_scale.py --accounts 200 --samples 50

A private Posthouse (servers.py) with N local users (INBOX and Sent), each
given a few messages from a contact over LMTP; one tracker process
(tracker_runner.py, on that Posthouse's data directory: the real AccountStore,
Crm and reply sorter) started with no account, its RSS read once settled;
then the N users' accounts added as `posthouse account add USER --local`
adds them (kind local: the service identity, SASL PLAIN with the user as
authorization identity; added through the AccountStore directly, 1,000
CLI processes would take minutes). Once the tracker's status says every
account follows with its folders backfilled, and after a settle time:
- memory per account: (RSS now - RSS with no account) / N  (goal < 100 KiB);
- connections held: the tracker process's established TCP sockets
  (/proc/PID/fd against /proc/net/tcp), to the IMAP port and in all;
- new mail in random accounts: S messages, each to a random account over
  LMTP one at a time, the time from the 250 to the message's row in the CRM
  database (polled); p50 and p99 (goal p99 < 2 s).
Every wait is bounded; the tracker and the server are stopped at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lmtp_client import LmtpClient                                              # noqa: E402
from servers import HOST, PosthouseServer                                       # noqa: E402
from tracker_common import (account_store, crm_counts, percentile, rss_kib, runner, tcp_connections,  # noqa: E402
                            wait_status)

SENDER = "carl.contact@scale.example"
GOAL_KIB = 100
GOAL_P99 = 2.0


def users(n: int) -> list[str]:
    return [f"u{i:05d}" for i in range(n)]


def message(to: str, subject: str, message_id: str) -> bytes:
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    return (f"From: Carl Contact <{SENDER}>\r\nTo: {to}@bench.example\r\nSubject: {subject}\r\n"
            f"Date: {date}\r\nMessage-ID: <{message_id}>\r\n\r\nHello from the scale run.\r\n").encode()


async def prefill(port: int, names: list[str], per_account: int) -> None:
    """per_account messages in every INBOX: each one to up to 100 users at a time."""
    lmtp = await LmtpClient.connect(HOST, port)
    try:
        for k in range(per_account):
            for i in range(0, len(names), 100):
                group = names[i:i + 100]
                await lmtp.deliver(SENDER, group, message("team", f"earlier mail {k}",
                                                          f"pre.{k}.{i}@scale.example"))
    finally:
        await lmtp.quit()


async def latencies(port: int, names: list[str], samples: int, db_path: str, timeout: float,
                    poll: float) -> tuple[list[float], int]:
    run = uuid.uuid4().hex[:8]
    rng = random.Random(run)
    out, missed = [], 0
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    lmtp = await LmtpClient.connect(HOST, port)
    try:
        for i in range(samples):
            name = rng.choice(names)
            mid = f"{run}.{i}@scale.example"
            await lmtp.deliver(SENDER, [name], message(name, f"new mail {i}", mid))
            t0 = time.monotonic()
            while True:
                if db.execute("SELECT 1 FROM messages WHERE message_id IN (?, ?)", (mid, f"<{mid}>")).fetchone():
                    out.append(time.monotonic() - t0)
                    break
                if time.monotonic() - t0 > timeout:
                    missed += 1
                    break
                await asyncio.sleep(poll)
    finally:
        await lmtp.quit()
        db.close()
    return out, missed


def steady_rss(pid: int, seconds: float) -> int:
    """The median of RSS readings over `seconds`."""
    readings = []
    end = time.monotonic() + seconds
    while True:
        readings.append(rss_kib(pid))
        if time.monotonic() >= end:
            return int(statistics.median(readings))
        time.sleep(0.25)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--messages-per-account", type=int, default=5, help="mail in each INBOX before the sync")
    ap.add_argument("--samples", type=int, default=100, help="new messages to random accounts")
    ap.add_argument("--settle", type=float, default=10, help="seconds idle before the memory reading")
    ap.add_argument("--poll-interval", type=float, default=10.0, help="the tracker's look for new accounts")
    ap.add_argument("--sync-timeout", type=float, default=0, help="seconds allowed for the first sync "
                                                                   "(default 120 + 0.5 per account)")
    ap.add_argument("--sample-timeout", type=float, default=30)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    names = users(args.accounts)
    work = tempfile.mkdtemp(prefix="posthouse-tracker-scale-")
    server = tracker = None
    try:
        t0 = time.monotonic()
        server = PosthouseServer(work, names, mailboxes=[("INBOX", None), ("Sent", "\\Sent")])
        asyncio.run(asyncio.wait_for(prefill(server.lmtp_port, names, args.messages_per_account), 600))
        print(f"{len(names)} users, {args.messages_per_account} messages each, in {time.monotonic() - t0:.0f}s",
              flush=True)
        subprocess.run([sys.executable, "-m", "posthouse", "--config", server.config_path, "contact", "add",
                        "--name", "Carl Contact", "--email", SENDER], check=True, capture_output=True, timeout=120)
        engine, store = account_store(None, server.config_path)
        from posthouse.auth.service_identity import ServiceIdentity
        ServiceIdentity(store.data_dir).secret()     # the server makes it too; whoever is first
        data_dir = store.data_dir

        status_path = os.path.join(work, "status.json")
        tracker = runner(None, os.path.join(work, "tracker.log"), "--status", status_path, "--status-interval", "2",
                         "--poll-interval", str(args.poll_interval), config=server.config_path)
        wait_status(status_path, tracker, lambda s: "rss_kib" in s, 120, "the tracker to start")
        time.sleep(2)
        base = steady_rss(tracker.pid, 3)
        print(f"tracker with no account: RSS {base / 1024:.1f} MiB", flush=True)

        t1 = time.monotonic()
        for name in names:
            store.add(owner=name, kind="local", auth="service", login=name, imap_host=HOST,
                      imap_port=server.port, imap_tls="none", since=None, addresses=[f"{name}@bench.example"])
        engine.dispose()
        timeout = args.sync_timeout or 120 + 0.5 * len(names)
        status = wait_status(status_path, tracker,
                             lambda s: s.get("synced") and s.get("following") == len(names), timeout,
                             f"{len(names)} accounts to sync")
        synced_after = time.monotonic() - t1
        print(f"all {len(names)} accounts synced and followed {synced_after:.1f}s after they were added", flush=True)
        time.sleep(args.settle)
        rss = steady_rss(tracker.pid, 5)
        imap_conns = tcp_connections(tracker.pid, server.port)
        all_conns = tcp_connections(tracker.pid)
        counts = crm_counts(data_dir)

        lat, missed = asyncio.run(asyncio.wait_for(
            latencies(server.lmtp_port, names, args.samples, os.path.join(data_dir, "crm.sqlite3"),
                      args.sample_timeout, 0.005),
            args.samples * (args.sample_timeout + 5) + 60))
        per_account = (rss - base) / len(names)
        print(f"\n{len(names)} local accounts on Posthouse followed by one tracker process "
              f"(NOTIFY; {args.messages_per_account} messages each in INBOX)")
        print(f"  first sync of every account: {synced_after:.1f} s  ({status.get('states')})")
        print(f"  tracker RSS: {base / 1024:.1f} MiB with no account, {rss / 1024:.1f} MiB with {len(names)}"
              f" -> {per_account:.1f} KiB per account (goal < {GOAL_KIB} KiB: "
              f"{'met' if per_account < GOAL_KIB else 'NOT met'}, {per_account / GOAL_KIB:.2f}x)")
        print(f"  connections held: {imap_conns} to the IMAP port ({all_conns} TCP in all)"
              f" = {imap_conns / len(names):.2f} per account")
        print(f"  CRM database: {counts['messages']} messages, {counts['places']} places, "
              f"{counts['activities']} activities")
        if lat:
            p99 = percentile(lat, 99)
            print(f"  new mail in {args.samples} random accounts -> message in the CRM database: "
                  f"p50 {percentile(lat, 50) * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms  max {max(lat) * 1000:.0f} ms"
                  f"  missed {missed}  (goal p99 < {GOAL_P99:.0f} s: {'met' if p99 < GOAL_P99 else 'NOT met'}, "
                  f"{p99 / GOAL_P99:.2f}x)")
        else:
            print(f"  new mail in random accounts: no sample arrived ({missed} missed)")
        return 0 if lat else 1
    finally:
        if tracker is not None:
            tracker.terminate()
            tracker.kill()
        if server is not None:
            server.stop()
        if args.keep:
            print("work directory:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
