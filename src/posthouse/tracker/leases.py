"""Which tracker works which account: a lease in the accounts table
(lease_owner, lease_until). A tracker takes an account whose lease is free,
its own, or expired, and renews it while it works; one that dies lets its
leases run out, and another tracker takes them."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Table, and_, or_, update
from sqlalchemy.engine import Engine

from .cursors import now


def accounts_table() -> Table:
    from ..db.metadata import load_tables
    table = load_tables().tables.get("accounts")
    if table is None:
        raise RuntimeError("the accounts table is not declared (posthouse.accounts.tables is missing)")
    return table


class Leases:
    def __init__(self, engine: Engine, owner: str, seconds: float = 60.0, table: Table | None = None):
        self.engine = engine
        self.owner = owner
        self.seconds = seconds
        self.table = table if table is not None else accounts_table()

    def claim(self, account_id: int) -> bool:
        """Take or renew the lease on one account; False if another tracker holds it."""
        t = self.table
        at = now()
        with self.engine.begin() as db:
            result = db.execute(update(t).where(and_(
                t.c.id == account_id,
                or_(t.c.lease_owner.is_(None), t.c.lease_owner == self.owner,
                    t.c.lease_until.is_(None), t.c.lease_until < at),
            )).values(lease_owner=self.owner, lease_until=at + timedelta(seconds=self.seconds)))
            return result.rowcount == 1

    def release(self, account_id: int) -> None:
        t = self.table
        with self.engine.begin() as db:
            db.execute(update(t).where(and_(t.c.id == account_id, t.c.lease_owner == self.owner))
                       .values(lease_owner=None, lease_until=None))
