"""Which tracker works which account: a lease in the accounts table
(lease_owner, lease_until). A tracker takes an account whose lease is free,
its own, or expired, and renews it while it works; one that dies lets its
leases run out, and another tracker takes them."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Engine

from ..accounts.tables import accounts
from .cursors import now


class Leases:
    def __init__(self, engine: Engine, owner: str, seconds: float = 60.0):
        self.engine = engine
        self.owner = owner
        self.seconds = seconds
        self.table = accounts

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

    def claim_many(self, account_ids) -> set[int]:
        """claim() for many accounts in one transaction (a tracker following
        a thousand accounts renews their leases in one statement, not a
        thousand write transactions); the ids this tracker holds now."""
        t = self.table
        ids = list(account_ids)
        held: set[int] = set()
        at = now()
        with self.engine.begin() as db:
            for start in range(0, len(ids), 500):      # (bound parameters per statement)
                chunk = ids[start:start + 500]
                db.execute(update(t).where(and_(
                    t.c.id.in_(chunk),
                    or_(t.c.lease_owner.is_(None), t.c.lease_owner == self.owner,
                        t.c.lease_until.is_(None), t.c.lease_until < at),
                )).values(lease_owner=self.owner, lease_until=at + timedelta(seconds=self.seconds)))
                held.update(db.execute(select(t.c.id).where(and_(
                    t.c.id.in_(chunk), t.c.lease_owner == self.owner))).scalars())
        return held

    def release(self, account_id: int) -> None:
        t = self.table
        with self.engine.begin() as db:
            db.execute(update(t).where(and_(t.c.id == account_id, t.c.lease_owner == self.owner))
                       .values(lease_owner=None, lease_until=None))
