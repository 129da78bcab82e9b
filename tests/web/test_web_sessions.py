"""The pages' login sessions in the CRM database (web_sessions): a second
store on the same database (a restarted server) knows the session, only the
id's hash is stored, logout ends it everywhere, expired sessions are refused
and swept, garbage ids find nothing."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from posthouse.db.engine import make_engine
from posthouse.db.migrate import upgrade
from posthouse.web.pages import sessions as sessions_module
from posthouse.web.pages.sessions import SessionStore, hash_id
from posthouse.web.session_tables import web_sessions


@pytest.fixture()
def engine(tmp_path):
    engine = make_engine(None, str(tmp_path))
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_restart_keeps_the_session_and_stores_only_its_hash(engine):
    before = SessionStore(engine)
    session = before.create("alice")
    after = SessionStore(engine)            # a new process on the same database
    again = after.get(session.id)
    assert again is not None and (again.user, again.csrf) == ("alice", session.csrf)
    with engine.connect() as conn:
        rows = conn.execute(select(web_sessions)).all()
    assert [r.id_hash for r in rows] == [hash_id(session.id)]
    assert session.id not in repr(rows)
    for garbage in (None, "", "x" * 101, "nope", session.id + "x", "\udcff", "' OR 1=1 --"):
        assert after.get(garbage) is None


def test_logout_ends_it_everywhere(engine, monkeypatch):
    one, two = SessionStore(engine), SessionStore(engine)
    session = one.create("bob")
    assert two.get(session.id) is not None      # (cached in two now)
    one.end(session.id)
    assert one.get(session.id) is None
    monkeypatch.setattr(sessions_module, "CHECK_EVERY", 0.0)    # two looks again at once
    assert two.get(session.id) is None
    one.end(session.id)                         # twice: no harm
    one.end(None)


def test_expired_sessions_refused_and_swept(engine):
    short = SessionStore(engine, idle=0.2)
    session = short.create("carol")
    kept = SessionStore(engine).create("dave")
    time.sleep(0.5)
    assert SessionStore(engine, idle=0.2).get(session.id) is None
    SessionStore(engine).create("erin")
    assert short.sweep(force=True) >= 0
    with engine.connect() as conn:
        users = sorted(r.user for r in conn.execute(select(web_sessions.c.user)))
    assert users == ["dave", "erin"] and SessionStore(engine).get(kept.id).user == "dave"


def test_without_a_database_sessions_live_in_memory():
    store = SessionStore()
    session = store.create("alice")
    assert store.get(session.id) is session
    store.end(session.id)
    assert store.get(session.id) is None
