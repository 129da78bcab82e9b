"""Reading and writing the tracker's cursors (tracker_folders) and its log
(tracker_log). Blocking: the engine calls these on a thread."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from . import uidsets
from .tables import tracker_folders, tracker_log


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class FolderState:
    account_id: int
    name: str
    id: int | None = None
    uidvalidity: int | None = None
    uidnext: int | None = None          # None: never synced (or just reset)
    highestmodseq: int | None = None
    low_uid: int | None = None
    backfill_done: bool = False
    messages_total: int = 0
    messages_done: int = 0
    special_use: str | None = None
    known: set[int] = field(default_factory=set)

    def forget(self) -> None:
        """Back to never synced (after a reset)."""
        self.uidvalidity = self.uidnext = self.highestmodseq = self.low_uid = None
        self.backfill_done = False
        self.messages_total = self.messages_done = 0
        self.known = set()


class Cursors:
    def __init__(self, engine: Engine):
        self.engine = engine

    def load(self, account_id: int) -> dict[str, FolderState]:
        with self.engine.connect() as db:
            rows = db.execute(select(tracker_folders).where(tracker_folders.c.account_id == account_id)).all()
        return {r.name: FolderState(
            account_id, r.name, r.id, r.uidvalidity, r.uidnext, r.highestmodseq, r.low_uid,
            bool(r.backfill_done), r.messages_total, r.messages_done, r.special_use,
            uidsets.from_text(r.known_uids)) for r in rows}

    def save(self, state: FolderState, log: tuple[str, str] | None = None) -> None:
        """Store the cursor (and a log line, in the same transaction)."""
        values = dict(uidvalidity=state.uidvalidity, uidnext=state.uidnext, highestmodseq=state.highestmodseq,
                      low_uid=state.low_uid, backfill_done=state.backfill_done,
                      messages_total=state.messages_total, messages_done=state.messages_done,
                      special_use=state.special_use, known_uids=uidsets.to_text(state.known), updated_at=now())
        with self.engine.begin() as db:
            if state.id is None:
                state.id = db.execute(insert(tracker_folders).values(
                    account_id=state.account_id, name=state.name, **values)).inserted_primary_key[0]
            else:
                db.execute(update(tracker_folders).where(tracker_folders.c.id == state.id).values(
                    name=state.name, **values))
            if log:
                db.execute(insert(tracker_log).values(account_id=state.account_id, at=now(),
                                                      level=log[0], text=log[1]))

    def remove(self, state: FolderState, log: tuple[str, str] | None = None) -> None:
        with self.engine.begin() as db:
            if state.id is not None:
                db.execute(delete(tracker_folders).where(tracker_folders.c.id == state.id))
            if log:
                db.execute(insert(tracker_log).values(account_id=state.account_id, at=now(),
                                                      level=log[0], text=log[1]))

    def log(self, account_id: int, level: str, text: str) -> None:
        with self.engine.begin() as db:
            db.execute(insert(tracker_log).values(account_id=account_id, at=now(), level=level, text=text[:2000]))

    def read_log(self, account_id: int, limit: int = 20) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(select(tracker_log).where(tracker_log.c.account_id == account_id)
                              .order_by(tracker_log.c.id.desc()).limit(limit)).all()
        return [dict(at=r.at, level=r.level, text=r.text) for r in rows]

    def folders(self, account_id: int) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(select(tracker_folders).where(tracker_folders.c.account_id == account_id)
                              .order_by(tracker_folders.c.name)).all()
        return [dict(name=r.name, special_use=r.special_use, uidvalidity=r.uidvalidity, uidnext=r.uidnext,
                     highestmodseq=r.highestmodseq, backfill_done=bool(r.backfill_done),
                     messages_total=r.messages_total, messages_done=r.messages_done, updated_at=r.updated_at)
                for r in rows]
