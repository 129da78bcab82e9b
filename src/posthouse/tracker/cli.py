"""`posthouse tracker`: run the activity tracker on its own (it also runs
inside `posthouse serve`), following every account whose lease it can take,
until SIGTERM or Ctrl-C."""
from __future__ import annotations

import asyncio
import signal


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tracker", help="run the activity tracker (follow the connected mail accounts)",
        description="Follow every connected mail account whose lease this process can take, "
                    "until SIGTERM or Ctrl-C. Several trackers may run at once on one database.")
    p.add_argument("--name", help="this tracker's name in the account leases (default: host:pid)")
    p.set_defaults(func=cmd_tracker)


def cmd_tracker(args) -> int:
    from ..config import load_config
    from ..campaigns.results import observe as campaign_results
    from ..crmside import open_crm_side
    from .engine import Tracker, options_from_config
    config = load_config(args.config, args.data_dir)
    side = open_crm_side(config)
    side.crm.observers.append(campaign_results(side.crm))   # (serve's keyword worker sets their keywords)
    from ..webhooks.service import queue_webhooks; queue_webhooks(side)  # noqa: E702  (events -> webhook queue)
    try:
        asyncio.run(_run_until_signal(Tracker(side.engine, side.accounts, side.crm, name=args.name,
                                                 options=options_from_config(config))))
    finally:
        side.close()
    return 0


async def _run_until_signal(tracker) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    task = asyncio.create_task(tracker.run())
    await stopping.wait()
    await tracker.stop()
    await task
