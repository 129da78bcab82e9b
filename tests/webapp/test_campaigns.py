"""Campaigns end to end, as the issue names it: a real `posthouse serve` with
the tracker on and its outbound queue relaying to an SMTP sink on loopback
(aiosmtpd), Debian's Chromium driven by Playwright.

A campaign to 20 contacts (one opted out, one hard-bouncing: both skipped);
the sink gets one message each for the other 18, with its own Message-ID and
the RFC 2369/8058 unsubscribe headers. Then, into alice's INBOX over LMTP: a
hard and a soft bounce, an auto-reply, an unsubscribe by reply, a complaint
(ARF) and two human replies, made from the shapes of tests/data/replies with
the campaign's Message-IDs and addresses; a one-click POST to one
List-Unsubscribe URL. The campaign page must count and list each, every link
must open, and each reply must carry its keyword over IMAP. Also: a forged
token is 404, and a restart sends nothing twice."""
from __future__ import annotations

import email
import email.policy
import imaplib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import DOMAIN, PASSWORDS, WebServer, _cli, free_port, stop_server

REPLIES = Path(__file__).resolve().parents[1] / "data" / "replies"
LABELS = json.loads((REPLIES / "labels.json").read_text())
CONTACTS = 20
OPTED_OUT, BOUNCING = 5, 6          # contact numbers skipped at send time
TIMEOUT = 90                        # seconds any one wait may take (a slow, shared machine)


def wait_for(what: str, check, timeout: float = TIMEOUT, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Sink:
    """An SMTP server on loopback standing in for the smarthost: keeps every message."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.messages: list[tuple[str, list[str], bytes]] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                outer.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content
                                                                                          or envelope.content)))
                return "250 OK"
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.port = self.controller.port

    def close(self):
        self.controller.stop()


def write_config(tmp: str, ports: dict, sink_port: int) -> str:
    config = os.path.join(tmp, "posthouse.toml")
    with open(config, "w") as f:
        f.write(f'data_dir = "{tmp}/data"\nfsync = false\nparse_processes = 0\nstore_process = false\n'
                f'failure_delay = 0.2\ndomains = ["{DOMAIN}"]\n'
                f'[imap]\nport = {ports["imap"]}\ntls_port = false\n[lmtp]\nport = {ports["lmtp"]}\n[smtp]\nport = false\n'
                '[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
                f'[submission]\nport = false\ntls_port = false\n[web]\nport = {ports["web"]}\n'
                '[tracker]\nenabled = true\npoll_interval = 1\nsweep_interval = 2\n'
                f'[relay]\nhost = "127.0.0.1"\nport = {sink_port}\ntls = "none"\nretry_base = 1\n'
                '[campaigns]\nrate = 1200\n')
    return config


def launch(config: str, tmp: str, name: str):
    log = open(os.path.join(tmp, name), "w+")
    proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", config, "serve"],
                            stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 60
        while "web listening" not in open(log.name).read():
            assert proc.poll() is None and time.monotonic() < deadline, open(log.name).read()
            time.sleep(0.1)
    except BaseException:
        stop_server(proc, log)
        raise
    return proc, log


@pytest.fixture(scope="module")
def campaign_server(tmp_path_factory):
    """The webserver fixture's variant for campaigns: the tracker on, [relay] the sink."""
    tmp = str(tmp_path_factory.mktemp("campaigns"))
    sink = Sink()
    ports = {"web": free_port(), "imap": free_port(), "lmtp": free_port()}
    config = write_config(tmp, ports, sink.port)
    for name, password in PASSWORDS.items():
        _cli(config, "user", "add", name, "--password-stdin", stdin=password + "\n")
    running = {}
    try:
        running["proc"], running["log"] = launch(config, tmp, "serve.log")
        for name in PASSWORDS:
            _cli(config, "account", "add", name, "--local")
        server = WebServer(f"http://127.0.0.1:{ports['web']}", config, ports["imap"], ports["lmtp"], tmp)
        yield server, sink, running
    finally:
        if running.get("proc") is not None:
            stop_server(running["proc"], running["log"])
        sink.close()
    logs = "".join(open(os.path.join(tmp, n)).read() for n in os.listdir(tmp) if n.startswith("serve"))
    assert "Traceback" not in logs, logs[-5000:]


def crm_of(server):
    from posthouse.crm.service import Crm
    from posthouse.db.engine import make_engine
    return Crm(make_engine(None, os.path.join(server.tmp, "data")))


def make_contacts(crm) -> dict[int, dict]:
    from sqlalchemy import update
    from posthouse.crm.tables import contact_emails
    made = {}
    for n in range(1, CONTACTS + 1):
        made[n] = crm.add_contact(name=f"Person{n:02d} Tester", emails=[f"p{n:02d}@people.example"],
                                  company="Acme" if n % 2 else None, tags=["launch"])
    made[21] = crm.add_contact(name="Not Picked", emails=["other@people.example"], tags=["other"])
    crm.edit_contact(made[OPTED_OUT]["id"], opted_out=True)
    with crm.engine.begin() as conn:     # (as a hard bounce of an earlier mailing left it)
        conn.execute(update(contact_emails).where(contact_emails.c.address == f"p{BOUNCING:02d}@people.example")
                     .values(bouncing=True, bounce_reason="userunknown"))
    return made


def log_in(page, server, user: str) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("form.login button[type=submit]")
    page.wait_for_selector("header.top .who")


def adapt(path: str, address: str, message_id: str, sender: str) -> bytes:
    """A message of the labelled set, made to answer our campaign message:
    its original Message-ID, its addresses and the original sender swapped."""
    text = (REPLIES / path).read_text()
    label = LABELS[path]
    text = text.replace(label["original_message_id"], message_id)
    for r in label.get("recipients") or ():
        text = text.replace(r["address"], address)
    if label["kind"] not in ("bounce", "complaint"):
        first = re.search(r"^From: .*?<?([^<>\s]+@[^<>\s]+)>?\s*$", text, re.M)[1]
        text = text.replace(first, address)
    text = text.replace("anna.schmidt@posthouse.example", sender)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def deliver(server, to: str, message: bytes, mail_from: str = "") -> None:
    import smtplib
    with smtplib.LMTP("127.0.0.1", server.lmtp_port, timeout=30) as lmtp:
        lmtp.sendmail(mail_from, [to], message)


def shot(page, name: str, tmp_path) -> str:
    folder = Path(os.environ.get("POSTHOUSE_SCREENSHOTS") or tmp_path)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return str(path)


def counts(page) -> dict[str, str]:
    return {el.get_attribute("id"): el.inner_text().strip()
            for el in page.query_selector_all("#counts [id^=count-]")}


def test_campaign_to_twenty_contacts(campaign_server, browser, tmp_path):
    server, sink, _ = campaign_server
    crm = crm_of(server)
    made = make_contacts(crm)
    address = {n: c["emails"][0]["address"] for n, c in made.items()}
    alice = f"alice@{DOMAIN}"
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server, "alice")

    # -- make it: an unknown merge field is refused, the preview renders one contact
    page.goto(server.url + "/campaigns/new")
    page.fill("input[name=name]", "Launch")
    page.fill("input[name=tag]", "launch")
    page.select_option("select[name=sender]", label=alice)
    page.fill("input[name=subject]", "News for {{first_name}}")
    page.fill("textarea[name=body]", "Hello {{nickname}}")
    page.click("#create")
    assert "{{nickname}}" in page.inner_text("#campaign-error")
    page.fill("textarea[name=body]", "Hello {{name}} of {{company}},\n\nwe launched. ({{email}})\n")
    page.click("#preview")
    assert page.inner_text("#preview-subject") == "News for Person01"
    assert "Hello Person01 Tester of Acme," in page.inner_text("#preview-body")
    assert "(p01@people.example)" in page.inner_text("#preview-body")
    page.click("#create")
    page.wait_for_url(re.compile(r"/campaigns/\d+$"))
    campaign_url = page.url
    assert counts(page)["count-recipients"] == str(CONTACTS)
    page.click("#start")
    page.wait_for_url(campaign_url)
    # the counts follow the sending without a reload (htmx polls while it is being sent)
    from playwright.sync_api import expect
    expect(page.locator("#count-sent")).to_have_text(str(CONTACTS - 2), timeout=TIMEOUT * 1000)

    # -- sent through the queue to the sink: 18 messages, the opted-out and the bouncing skipped
    wait_for("18 messages at the sink", lambda: len(sink.messages) >= CONTACTS - 2)
    time.sleep(1)       # (nothing more may come)
    assert len(sink.messages) == CONTACTS - 2
    sent = {}
    for mail_from, rcpts, data in sink.messages:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        assert mail_from == alice and len(rcpts) == 1
        sent[rcpts[0]] = msg
    assert set(sent) == {address[n] for n in range(1, CONTACTS + 1)} - {address[OPTED_OUT], address[BOUNCING]}
    ids = {msg["Message-ID"] for msg in sent.values()}
    assert len(ids) == len(sent)
    for rcpt, msg in sent.items():
        n = int(rcpt[1:3])
        assert msg["Subject"] == f"News for Person{n:02d}"
        assert msg["From"] == alice and rcpt in msg["To"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert re.fullmatch(rf"<{re.escape(server.url)}/u/\d+\.[0-9a-f]{{32}}>, <mailto:{alice}\?subject=unsubscribe>",
                            msg["List-Unsubscribe"]), msg["List-Unsubscribe"]
        assert f"Hello Person{n:02d} Tester" in msg.get_content()
    page.reload()
    wait_for("the campaign done", lambda: (page.reload(), page.inner_text("#campaign-state"))[1] == "done", every=1)
    c = counts(page)
    assert (c["count-sent"], c["count-skipped"], c["count-failed"]) == (str(CONTACTS - 2), "2", "0")
    skipped = page.inner_text("#recipients")
    assert "opted out" in skipped and "hard-bouncing address" in skipped

    # -- what comes back: into alice's INBOX over LMTP, sorted by the tracker
    mid = lambda n: sent[address[n]]["Message-ID"].strip("<>")     # noqa: E731
    injected = {
        "hard": (1, "bounce/h3_postfix_local_unknown_user.eml"),
        "soft": (2, "bounce/postfix_delayed_gmail_overquota.eml"),
        "auto": (3, "auto-reply/sieve_vacation.eml"),
        "unsub": (4, "unsubscribe/reply_just_unsubscribe.eml"),
        "complaint": (7, "complaint/generic_arf_fraud.eml"),
        "reply1": (8, "reply/plain_reply.eml"),
        "reply2": (9, "reply/h_apple_mail.eml"),
    }
    message_ids = {}
    for key, (n, path) in injected.items():
        data = adapt(path, address[n], mid(n), alice)
        message_ids[key] = email.message_from_bytes(data)["Message-ID"]
        # (the envelope sender as each really comes: null for reports and auto-replies, else the person's)
        person = key in ("unsub", "reply1", "reply2")
        deliver(server, alice, data, mail_from=address[n] if person else "")

    # -- one-click unsubscribe, as a mail provider does it: no cookie, no CSRF token
    url = re.match(r"<([^>]+)>", sent[address[10]]["List-Unsubscribe"])[1]
    with httpx.Client(timeout=30) as http:
        forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
        assert http.post(forged, data={"List-Unsubscribe": "One-Click"}).status_code == 404
        assert http.get(url).status_code == 200
        done = http.post(url, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200 and "will get no more" in done.text
        assert http.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200     # idempotent

    want = {"count-bounced": "2", "count-bounced-hard": "1", "count-bounced-soft": "1", "count-auto-replies": "1",
            "count-complaints": "1", "count-unsubscribes": "2", "count-unsubscribes-one-click": "1",
            "count-unsubscribes-reply": "1", "count-replies": "2", "count-sent": str(CONTACTS - 2)}

    def all_counted():
        page.reload()
        got = counts(page)
        return all(got.get(k) == v for k, v in want.items())
    try:
        wait_for("every result on the campaign page", all_counted, every=1)
    except AssertionError:
        raise AssertionError(f"counts {counts(page)}, want {want}") from None
    bounces = page.inner_text("#bounces")
    assert "hard" in bounces and "soft" in bounces and "userunknown" in bounces and "mailboxfull" in bounces
    shot(page, "campaign", tmp_path)

    # -- every link opens: the contact pages and each reply in the mail client
    links = [a.get_attribute("href") for a in page.query_selector_all(
        "#bounces a, #auto-replies a, #complaints a, #unsubscribes a, #replies a")]
    message_links = [h for h in links if h.startswith("/mail/")]
    contact_links = [h for h in links if h.startswith("/contacts/")]
    assert len(message_links) == 7 and len(contact_links) == 8, links     # (the one-click has no message)
    for href in links:
        response = page.goto(server.url + href)
        assert response.status == 200, href
        if href.startswith("/mail/"):
            assert page.query_selector("text=no longer") is None
    page.goto(server.url + message_links[0])
    shot(page, "campaign-result-message", tmp_path)

    # -- opted out now: the unsubscribers (reply and one-click) and the complainer
    for n in (4, 7, 10):
        assert crm.get_contact(made[n]["id"])["opted_out"] is True, n

    # -- the keywords, over IMAP
    want_kw = {"hard": "$Bounce", "soft": "$Bounce", "auto": "$AutoReply", "unsub": "$Unsubscribe",
               "complaint": "$Complaint", "reply1": "$CampaignReply", "reply2": "$CampaignReply"}

    def flags_by_message_id():
        imap = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
        try:
            imap.login("alice", PASSWORDS["alice"])
            imap.select("INBOX", readonly=True)
            _, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        finally:
            imap.logout()
        out = {}
        for item in data:
            if isinstance(item, tuple):
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])[1].decode().split()
                header = email.message_from_bytes(item[1])
                out[header["Message-ID"]] = flags
        return out

    def keywords_set():
        got = flags_by_message_id()
        return all(want_kw[k] in got.get(message_ids[k], []) for k in want_kw) and got
    try:
        got = wait_for("the keywords over IMAP", keywords_set, every=1)
    except AssertionError:
        raise AssertionError(f"flags {flags_by_message_id()}") from None
    for k, m in message_ids.items():       # each has its own keyword, and no other's
        others = set(want_kw.values()) - {want_kw[k]}
        assert not others & set(got[m]), (k, got[m])
    context.close()


def test_forged_and_bad_tokens_are_404_and_leak_nothing(campaign_server):
    server, _, _ = campaign_server
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for token in ("1.00000000000000000000000000000000", "999999.0123456789abcdef0123456789abcdef",
                      "garbage", "1", "-1.x", "%00", "1." + "a" * 200):
            for method in ("GET", "POST"):
                r = http.request(method, f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
                assert r.status_code == 404, (method, token, r.status_code)
                assert "not valid" in r.text and "@" not in r.text.split("<main>")[-1]


def test_a_restart_sends_nothing_twice(campaign_server):
    """After the campaign above: the server stopped and started again on the
    same data directory, its sender resumes and finds nothing left to send."""
    server, sink, running = campaign_server
    before = len(sink.messages)
    assert before == CONTACTS - 2
    stop_server(running["proc"], running["log"])
    running["proc"], running["log"] = launch(server.config, server.tmp, "serve-2.log")
    wait_for("the sender's first round", lambda: "campaigns:" in open(running["log"].name).read())
    time.sleep(3)       # (rounds every second: a resend would show by now)
    assert len(sink.messages) == before


def http_session(server, user: str) -> tuple[httpx.Client, str]:
    """A logged-in HTTP client (no browser) and its session's CSRF token."""
    c = httpx.Client(base_url=server.url, timeout=30)
    form = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)[1]
    r = c.post("/login", data={"name": user, "password": PASSWORDS[user], "csrf": token, "next": "/"})
    assert r.status_code == 303, r.text
    page = c.get("/campaigns/new")
    return c, re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def test_forged_requests_and_hostile_input_on_the_campaign_pages(campaign_server):
    """No CSRF token or another site's Origin: refused. Bob sees alice's
    campaigns (a team) but can't send one, nor send from her address. A
    hostile name and template are shown as text, never run."""
    server, sink, _ = campaign_server
    crm = crm_of(server)
    crm.add_contact(name='<img src=x onerror=alert(1)>', emails=["hostile@people.example"], tags=["hostile"])
    alice, alice_csrf = http_session(server, "alice")
    bob, bob_csrf = http_session(server, "bob")
    try:
        form = {"name": "<script>alert(1)</script>", "tag": "hostile", "subject": "Hi {{name}}",
                "body": "{{name}} {% raw %}{{ 7*7 }}", "action": "create"}
        own = re.search(r'<option value="([^"]+)"', alice.get("/campaigns/new").text)[1]
        assert alice.post("/campaigns/new", data={**form, "sender": own}).status_code == 403     # no token
        assert alice.post("/campaigns/new", data={**form, "sender": own, "csrf": alice_csrf},
                          headers={"Origin": "http://evil.example"}).status_code == 403
        bad = alice.post("/campaigns/new", data={**form, "sender": own, "csrf": alice_csrf})
        assert bad.status_code == 400 and "malformed merge field" in bad.text      # {{ 7*7 }} is no field
        # bob can't send from alice's address
        taken = bob.post("/campaigns/new", data={**form, "body": "Hello {{name}}", "sender": own, "csrf": bob_csrf})
        assert taken.status_code == 400 and "your own accounts" in taken.text
        made = alice.post("/campaigns/new", data={**form, "body": "Hello {{name}} {% x %}", "sender": own,
                                                  "csrf": alice_csrf})
        assert made.status_code == 303
        url = made.headers["location"]
        page = bob.get(url)          # the team sees every campaign
        assert page.status_code == 200 and "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<img src=x" not in page.text
        assert 'id="start"' not in page.text        # not bob's to send
        assert bob.post(url + "/start", data={"csrf": bob_csrf}).status_code == 403
        assert alice.post(url + "/start", data={}).status_code == 403                    # no token
        assert bob.get("/campaigns/999999").status_code == 404
        before = len(sink.messages)
        assert alice.post(url + "/start", data={"csrf": alice_csrf}).status_code == 303
        wait_for("the hostile campaign sent", lambda: len(sink.messages) > before)
        msg = email.message_from_bytes(sink.messages[-1][2], policy=email.policy.default)
        assert msg.get_content().strip() == "Hello <img src=x onerror=alert(1)> {% x %}"      # text, as it was
    finally:
        alice.close()
        bob.close()
