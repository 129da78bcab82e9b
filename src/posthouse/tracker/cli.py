"""`posthouse tracker`: run the activity tracker on its own (it also runs
inside `posthouse serve`), following every account whose lease it can take,
until SIGTERM or Ctrl-C."""
from __future__ import annotations

import asyncio
import signal
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tracker", help="run the activity tracker (follow the connected mail accounts)",
        description="Follow every connected mail account whose lease this process can take, "
                    "until SIGTERM or Ctrl-C. Several trackers may run at once on one database.")
    p.add_argument("--name", help="this tracker's name in the account leases (default: host:pid)")
    p.set_defaults(func=cmd_tracker)


def cmd_tracker(args) -> int:
    from ..config import load_config
    config = load_config(args.config, args.data_dir)
    try:
        from ..accounts.store import AccountStore
    except ImportError as e:
        print(f"posthouse tracker: the accounts part is missing (posthouse.accounts.store: {e})", file=sys.stderr)
        return 1
    try:
        from ..crm.service import Crm
    except ImportError as e:
        print(f"posthouse tracker: the CRM part is missing (posthouse.crm.service: {e})", file=sys.stderr)
        return 1
    from ..db.engine import make_engine
    from ..db.migrate import upgrade
    from .engine import Tracker

    engine = make_engine(config.database_url, config.data_dir)
    upgrade(engine)
    accounts = AccountStore(engine, config.data_dir, config)

    def privacy_level(account_id: int) -> str:
        account = accounts.get(account_id)
        return getattr(account, "privacy", None) or "snippet"

    crm = Crm(engine, own_addresses=accounts.own_addresses, privacy_level=privacy_level)
    tracker = Tracker(engine, accounts, crm, name=args.name)
    asyncio.run(_run_until_signal(tracker))
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
