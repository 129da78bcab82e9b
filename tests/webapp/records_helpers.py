"""Shared by the records tests: a `posthouse serve` with the tracker on (and
fast webhook retries), reading its CRM database, and waiting for the tracker."""
from __future__ import annotations

import os
import re
import time

import httpx
import pytest
from sqlalchemy import create_engine, select

from .conftest import PASSWORDS, start_server, stop_server


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """serve with the tracker on, webhook retries 0.2 s apart, loopback receivers allowed."""
    tmp = str(tmp_path_factory.mktemp("records"))
    server, proc, log = start_server(tmp, tracker=True, extra_config=(
        "[webhooks]\nattempts = 4\nretry_base = 0.2\ntimeout = 5\n"
        "allow_private = true\n"))      # (the test's receivers are on 127.0.0.1)
    yield server
    stop_server(proc, log)
    text = open(log.name).read()
    assert "Traceback" not in text, text[-5000:]


def shot(page, tmp_path, name: str) -> None:
    """A screenshot: to $POSTHOUSE_SCREENSHOTS if set, else the test's tmp_path."""
    folder = os.environ.get("POSTHOUSE_SCREENSHOTS") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    page.screenshot(path=os.path.join(folder, f"records-{name}.png"), full_page=True)


def crm_engine_of(server):
    return create_engine(f"sqlite:///{server.tmp}/data/crm.sqlite3")


def wait_until(what, timeout: float = 60.0, every: float = 0.2):
    """what() until truthy (its value), else AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {getattr(what, '__name__', what)}")
        time.sleep(every)


def tracked_place(server, message_id: str, folder: str | None = None):
    """The CRM's live place of a message (the tracker has logged it there), or None."""
    from posthouse.crm.tables import message_places, messages
    engine = crm_engine_of(server)
    try:
        with engine.connect() as conn:
            query = (select(message_places.c.folder, message_places.c.uid)
                     .join(messages, messages.c.id == message_places.c.message)
                     .where(messages.c.message_id == message_id, message_places.c.gone_at.is_(None)))
            if folder is not None:
                query = query.where(message_places.c.folder == folder)
            return conn.execute(query).first()
    finally:
        engine.dispose()


def http_session(server, user: str) -> tuple[httpx.Client, str]:
    """A logged-in HTTP client (no browser) and its session's CSRF token."""
    c = httpx.Client(base_url=server.url, timeout=60)
    form = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)[1]
    r = c.post("/login", data={"name": user, "password": PASSWORDS[user], "csrf": token, "next": "/"})
    assert r.status_code == 303, r.text
    page = c.get("/contacts")
    return c, re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
