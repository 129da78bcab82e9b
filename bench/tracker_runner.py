"""One tracker process for the tracker benchmarks, wired as `posthouse serve`
wires it: the CRM database of a data directory (crm.sqlite3 there unless the
config's database_url says otherwise), the real AccountStore, the real Crm
sink with the real reply sorter, and posthouse.tracker.Tracker following
every active account in the database.

    python3 bench/tracker_runner.py --config posthouse.toml --status status.json
    python3 bench/tracker_runner.py --data-dir DIR --until-synced

--until-synced: stop once every account's folders are all backfilled (the
tracker's own status() says so) and print a JSON line with the time it took.
Otherwise it runs until SIGTERM/SIGINT. --status FILE: a JSON snapshot of
its progress (accounts, workers, how many follow, this process's RSS),
rewritten twice a second, for the benchmark driving it.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import sys
import time


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class NullSink:
    """Takes the facts and keeps nothing: the tracker's own cost without the CRM's."""

    def apply(self, facts) -> None:
        pass


def build(args):
    """(tracker, store): the engine, AccountStore, Crm and Tracker."""
    from posthouse.accounts.store import AccountStore
    from posthouse.crm.classify import classify
    from posthouse.crm.service import Crm
    from posthouse.db.engine import make_engine
    from posthouse.db.migrate import upgrade
    from posthouse.tracker.engine import Tracker
    config = None
    if args.config:
        from posthouse.config import load_config
        config = load_config(args.config, args.data_dir)
        data_dir, url = config.data_dir, config.database_url
    else:
        data_dir, url = args.data_dir, None
    engine = make_engine(url, data_dir)
    upgrade(engine)
    store = AccountStore(engine, data_dir, config)
    crm = Crm(engine, own_addresses=store.own_addresses,
              privacy_level=lambda id: getattr(store.get(id), "privacy", "snippet"),
              account_owner=lambda id: getattr(store.get(id), "owner", None),
              classify=None if args.sink == "crm-noclassify" else classify)
    options = dict(use_notify=not args.no_notify, poll_interval=args.poll_interval)
    if args.batch_size:
        options["batch_size"] = args.batch_size
    if args.sink == "null":
        crm = NullSink()
    tracker = Tracker(engine, store, crm, name=f"bench-runner-{os.getpid()}", **options)
    return tracker, store


def synced(tracker, account_ids) -> bool:
    """Every account's worker follows, and status() says each folder's backfill is done."""
    for account_id in account_ids:
        entry = tracker.workers.get(account_id)
        if entry is None or entry[0].state != "following":
            return False
    for account_id in account_ids:
        folders = tracker.status(account_id)["folders"]
        if not folders or not all(f["backfill_done"] for f in folders):
            return False
    return True


async def main_async(args) -> int:
    tracker, store = build(args)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    t0 = time.monotonic()
    task = asyncio.create_task(tracker.run())
    result = {"synced": False}
    try:
        confirmed = False
        while not stopping.is_set() and not task.done():
            ids = [a.id for a in await asyncio.to_thread(store.list) if a.state == "active"]
            states = collections.Counter(w.state for w, _t in tracker.workers.values())
            following = states.get("following", 0)
            # The cheap check first (worker states in memory); status() reads the database.
            if ids and following == len(ids) and not confirmed:
                confirmed = await asyncio.to_thread(synced, tracker, ids)
                if confirmed:
                    result = {"synced": True, "seconds": time.monotonic() - t0, "accounts": len(ids)}
            if args.status:
                snapshot = dict(accounts=len(ids), workers=len(tracker.workers), following=following,
                                states=dict(states), synced=confirmed, rss_kib=rss_kib(),
                                seconds=time.monotonic() - t0,
                                errors=sorted({w.last_error for w, _t in tracker.workers.values()
                                               if w.last_error})[:5])
                tmp = args.status + ".tmp"
                with open(tmp, "w") as f:
                    json.dump(snapshot, f)
                os.replace(tmp, args.status)
            if confirmed and args.until_synced:
                break
            if args.timeout and time.monotonic() - t0 > args.timeout:
                print(json.dumps({"synced": False, "timeout": args.timeout, "states": dict(states)}),
                      flush=True)
                return 2
            try:
                await asyncio.wait_for(stopping.wait(), args.status_interval)
            except asyncio.TimeoutError:
                pass
    finally:
        await asyncio.wait_for(tracker.stop(), 30)
        await task
    if args.until_synced:
        print(json.dumps(result), flush=True)
        return 0 if result["synced"] else 1
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="a posthouse.toml (its data_dir and database_url)")
    ap.add_argument("--data-dir", help="the data directory (secrets.key, service.secret, crm.sqlite3)")
    ap.add_argument("--until-synced", action="store_true", help="stop when every folder is backfilled")
    ap.add_argument("--status", help="write a JSON progress snapshot to this file")
    ap.add_argument("--status-interval", type=float, default=0.5)
    ap.add_argument("--no-notify", action="store_true", help="IDLE and STATUS sweeps even where NOTIFY is offered")
    ap.add_argument("--poll-interval", type=float, default=10.0, help="the tracker's look for new accounts")
    ap.add_argument("--batch-size", type=int, default=0, help="messages per FETCH batch (0: the tracker's default)")
    ap.add_argument("--sink", choices=["crm", "crm-noclassify", "null"], default="crm",
                    help="null: drop the facts (what the sync costs without the CRM); "
                         "crm-noclassify: the CRM without the reply sorter")
    ap.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (0: never)")
    args = ap.parse_args()
    if not args.config and not args.data_dir:
        ap.error("--config or --data-dir")
    try:
        import uvloop       # as `posthouse serve` runs
        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
