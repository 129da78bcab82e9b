"""Live updates against a real `posthouse serve`: with the tracker on, a
message delivered over LMTP appears in the open folder page without a reload,
and a flag set with imaplib shows too (the tracker's facts -> the hub -> the
page's event stream -> htmx). With the tracker off, the web app's own watcher
(NOTIFY on the account) feeds the same stream. Who may listen to what."""
from __future__ import annotations

import json
import re
import threading
import time
from contextlib import ExitStack, closing

import httpx

from posthouse.web.live import MAX_LISTENERS_PER_USER

from .conftest import DOMAIN
from .test_pages import http_session, imap_login, log_in, plain_message, shot


def _uid_of(imap, subject: str) -> bytes:
    imap.select("INBOX")
    typ, data = imap.uid("SEARCH", "SUBJECT", f'"{subject}"')
    assert typ == "OK" and data[0], data
    return data[0].split()[-1]


def test_new_mail_and_flags_appear_without_reload(browser, live_webserver, tmp_path):
    server = live_webserver
    server.deliver("alice", plain_message("Already here", "live-1@client.example"))
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, server, "alice")
        page.goto(server.url + "/mail/1?folder=INBOX")
        page.wait_for_selector("text=Already here")
        page.wait_for_selector("body[data-live=on]", timeout=30_000)
        page.evaluate("window.__sameDocument = true")     # gone if the page were reloaded
        server.deliver("alice", plain_message("Arrived while watching", "live-2@client.example"))
        page.wait_for_selector("text=Arrived while watching", timeout=30_000)
        assert page.evaluate("window.__sameDocument === true")
        shot(page, tmp_path, "live-new-mail")

        with closing(imap_login(server, "alice")) as imap:
            uid = _uid_of(imap, "Arrived while watching")
            assert imap.uid("STORE", uid, "+FLAGS", r"(\Flagged)")[0] == "OK"
        page.wait_for_function(
            """(subject) => [...document.querySelectorAll('li, tr')].some(
                   row => row.textContent.includes(subject) && row.classList.contains('flagged'))""",
            arg="Arrived while watching", timeout=30_000)
        assert page.evaluate("window.__sameDocument === true")
        shot(page, tmp_path, "live-flagged")
    finally:
        context.close()


def _events(lines, wanted, limit: int = 50, within: float = 90) -> list[dict]:
    """Events of the stream's lines (name + data) until wanted(event), `limit`
    events or `within` seconds (checked at each line: keep-alives come every 20 s)."""
    seen, event = [], {}
    deadline = time.monotonic() + within
    for line in lines:
        if time.monotonic() > deadline:
            return seen
        if line.startswith("event: "):
            event = {"event": line[7:]}
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif line == "" and event:
            seen.append(event)
            if wanted(event) or len(seen) >= limit:
                return seen
            event = {}
    return seen


def test_event_stream_is_the_users_own(live_webserver):
    server = live_webserver
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        r = anon.get("/events?account=1")
        assert r.status_code == 303 and "/login" in r.headers["location"]     # no session: no stream
    client, _csrf = http_session(server, "bob")
    with closing(client):
        for hostile in ("/events?account=1", "/events?account=999999", "/events?account=1&folder=INBOX"):
            r = client.get(hostile)
            assert r.status_code == 404, (hostile, r.status_code)           # alice's or nobody's: not found
        for garbage in ("/events", "/events?account=x", "/events?account=-1", "/events?account=2&folder=",
                        "/events?account=2&folder=a%00b", "/events?account=" + "9" * 40):
            assert client.get(garbage).status_code in (404, 422), garbage
        with client.stream("GET", "/events?account=2") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = _events(stream.iter_lines(), lambda e: True)
            assert first[0] == {"event": "hello", "data": {"account": 2}}


def test_streams_bounded_per_user_and_freed_when_closed(live_webserver):
    client, _csrf = http_session(live_webserver, "bob")
    with closing(client):
        client.timeout = httpx.Timeout(30, pool=30)
        with ExitStack() as streams:
            readers = []    # (kept: an abandoned line iterator closes its connection when collected)
            for _ in range(MAX_LISTENERS_PER_USER):
                stream = streams.enter_context(client.stream("GET", "/events?account=2"))
                assert stream.status_code == 200
                readers.append(stream.iter_lines())
                assert _events(readers[-1], lambda e: True)[0]["event"] == "hello"
            with client.stream("GET", "/events?account=2") as refused:
                assert refused.status_code == 429
        # The streams closed, their places are free again (once the server has seen them go).
        for _ in range(100):
            with client.stream("GET", "/events?account=2") as stream:
                if stream.status_code == 200:
                    break
            time.sleep(0.1)
        assert stream.status_code == 200


def test_watcher_feeds_the_stream_when_the_tracker_is_off(webserver):
    """The `webserver` fixture runs without the tracker: the web app's own
    NOTIFY connection reports the delivery and the flag change."""
    client, _csrf = http_session(webserver, "alice")
    with closing(client), client.stream("GET", "/events?account=1&folder=INBOX") as stream:
        lines = stream.iter_lines()
        assert _events(lines, lambda e: True)[0]["event"] == "hello"
        # (the watcher needs a moment to log in and ask NOTIFY: deliver until it reports)
        stop = threading.Event()

        def deliver():
            n = 0
            while not stop.is_set() and n < 20:
                webserver.deliver("alice", plain_message(f"Watched {n}", f"watched-{n}@client.example"))
                n += 1
                stop.wait(1.0)
        sender = threading.Thread(target=deliver)
        sender.start()
        try:
            got = _events(lines, lambda e: e["event"] == "refresh" and e["data"]["folder"] == "INBOX")
        finally:
            stop.set()
            sender.join()
        assert got[-1]["event"] == "refresh" and got[-1]["data"]["account"] == 1, got
        with closing(imap_login(webserver, "alice")) as imap:
            uid = _uid_of(imap, "Watched 0")
            assert imap.uid("STORE", uid, "+FLAGS", r"(\Flagged)")[0] == "OK"
        got = _events(lines, lambda e: e["event"] == "refresh" and e["data"]["folder"] == "INBOX")
        assert got[-1]["event"] == "refresh", got
