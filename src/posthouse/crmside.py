"""The CRM side as `posthouse serve` and `posthouse tracker` run it: one
database engine (migrated on open), the account store, and the CRM (the
tracker's fact sink, with the reply sorter), shared by the tracker and the
web app so that both see the same accounts and contacts."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable

from .accounts.store import AccountStore
from .crm.classify import classify
from .crm.service import Crm
from .db.engine import make_engine
from .db.migrate import upgrade


@dataclass
class CrmSide:
    engine: object
    accounts: AccountStore
    crm: Crm
    migrated: tuple[str | None, str | None] = (None, None)     # the schema's revision before and now

    def close(self) -> None:
        self.engine.dispose()


def open_crm_side(config, *, local_users: Callable[[], Iterable[str]] | None = None) -> CrmSide:
    if not config.database_url:
        os.makedirs(config.data_dir, exist_ok=True)
    engine = make_engine(config.database_url, config.data_dir)
    migrated = upgrade(engine)
    accounts = AccountStore(engine, config.data_dir, config, local_users=local_users)
    crm = Crm.for_accounts(engine, accounts, classify=classify, fold_plus=config.crm_fold_plus)
    return CrmSide(engine, accounts, crm, migrated)


class LocalUsers:
    """The mail store's user names, for the CRM's "colleagues are never
    contacts": read from the store now and then on the event loop, handed to
    the CRM's threads from this cache (a thread can't wait on the loop)."""

    def __init__(self, service, every: float = 30.0):
        self.service, self.every = service, every
        self.names: list[str] = []
        self._task = None

    def __call__(self) -> list[str]:
        return self.names

    async def refresh(self) -> None:
        self.names = list(await self.service.call("list_users"))

    async def start(self) -> None:
        import asyncio
        await self.refresh()

        async def loop():
            while True:
                await asyncio.sleep(self.every)
                try:
                    await self.refresh()
                except Exception:       # a store restarting: the old list serves meanwhile
                    pass
        self._task = asyncio.get_running_loop().create_task(loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
