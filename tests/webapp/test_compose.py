"""The compose pages in Debian's Chromium against a real `posthouse serve`
whose submission port is on (local accounts send through it as the service
identity): mail to bob is delivered locally, mail to other domains is relayed
through an SMTP sink on loopback (the smarthost). New message with an
attachment, reply, reply all and forward of mail delivered over LMTP; the
copy in Sent found with imaplib; drafts saved in Drafts as the user types,
replaced, resumed and removed on send; CSRF, other users' drafts, header
injection, a refused recipient and an oversized attachment."""
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
from contextlib import closing
from email.message import EmailMessage

import httpx
import pytest

from .conftest import DOMAIN, PASSWORDS, WebServer, _cli, free_port, stop_server

MAX_MESSAGE = 3 * 1024 * 1024       # the server's max_message_size here: an oversized attachment is cheap
SALES = f"alice+sales@{DOMAIN}"     # alice's second identity (her subaddress: her submission takes it)


# ---------------------------------------------------------------- the server, with submission and a smarthost

@pytest.fixture(scope="module")
def sink():
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self):
            self.received: list[tuple[str, list[str], bytes]] = []

        async def handle_DATA(self, server, session, envelope):
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
            return "250 OK queued"

    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture(scope="module")
def mailserver(tmp_path_factory, sink):
    tmp = str(tmp_path_factory.mktemp("compose"))
    web_port, imap_port, lmtp_port, submission_port = free_port(), free_port(), free_port(), free_port()
    config = os.path.join(tmp, "posthouse.toml")
    with open(config, "w") as f:
        f.write(f'data_dir = "{tmp}/data"\nfsync = false\nparse_processes = 0\nstore_process = false\n'
                f'failure_delay = 0.2\ndomains = ["{DOMAIN}"]\nmax_message_size = {MAX_MESSAGE}\n'
                f'[imap]\nport = {imap_port}\ntls_port = false\n[lmtp]\nport = {lmtp_port}\n[smtp]\nport = false\n'
                '[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
                f'[submission]\nport = {submission_port}\ntls_port = false\n'
                f'[relay]\nhost = "127.0.0.1"\nport = {sink[1]}\ntls = "none"\nretry_base = 0.2\n'
                f'[web]\nport = {web_port}\n[tracker]\nenabled = false\n')
    for name, password in PASSWORDS.items():
        _cli(config, "user", "add", name, "--password-stdin", stdin=password + "\n")
    log = open(os.path.join(tmp, "serve.log"), "w+")
    proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", config, "serve"],
                            stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 60
        while "web listening" not in open(log.name).read():
            assert proc.poll() is None and time.monotonic() < deadline, open(log.name).read()
            time.sleep(0.1)
        _cli(config, "account", "add", "alice", "--local", "--address", SALES)     # a second identity
        _cli(config, "account", "add", "bob", "--local")
        yield WebServer(f"http://127.0.0.1:{web_port}", config, imap_port, lmtp_port, tmp)
    finally:
        stop_server(proc, log)
    text = open(log.name).read()
    assert "Traceback" not in text, text[-5000:]


# ---------------------------------------------------------------- helpers

def imap_login(server, user: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    imap.login(user, PASSWORDS[user])
    return imap


def messages_in(server, user: str, folder: str, criteria: str = "ALL") -> list[tuple[int, set[str], EmailMessage]]:
    """(uid, flags, message) of each message in the folder that matches."""
    imap = imap_login(server, user)
    try:
        imap.select(f'"{folder}"', readonly=True)
        _, data = imap.uid("SEARCH", None, criteria)
        out = []
        for uid in data[0].split():
            _, fetched = imap.uid("FETCH", uid.decode(), "(FLAGS BODY.PEEK[])")
            flags = set(re.search(rb"FLAGS \(([^)]*)\)", fetched[0][0]).group(1).decode().split())
            out.append((int(uid), flags, email.message_from_bytes(fetched[0][1], policy=email.policy.default)))
        return out
    finally:
        imap.logout()


def uid_of(server, user: str, folder: str, message_id: str) -> int:
    imap = imap_login(server, user)
    try:
        imap.select(f'"{folder}"', readonly=True)
        _, data = imap.uid("SEARCH", None, "HEADER", "Message-ID", message_id)
        return int(data[0].split()[-1])
    finally:
        imap.logout()


def wait_for(condition, what: str, tries: int = 150):
    for _ in range(tries):
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def incoming(subject: str, message_id: str, *, cc: str | None = None, to: str | None = None,
             attachment: bytes | None = None, references: str | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = "Carol Client <carol@client.example>"
    m["To"] = to or f"alice@{DOMAIN}"
    if cc:
        m["Cc"] = cc
    m["Subject"] = subject
    m["Message-ID"] = f"<{message_id}>"
    if references:
        m["References"] = references
    m["Date"] = "Fri, 04 Dec 2026 10:00:00 +0000"
    m.set_content("Hello Alice,\n\ncan we meet on Tuesday?\n\nCarol\n")
    if attachment is not None:
        m.add_attachment(attachment, maintype="application", subtype="pdf", filename="figures.pdf")
    return bytes(m)


def log_in(page, server, user: str) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("form.login button[type=submit]")
    page.wait_for_selector("header.top .who")


def shot(page, tmp_path, name: str) -> None:
    where = os.environ.get("POSTHOUSE_SCREENSHOTS") or str(tmp_path)
    page.screenshot(path=os.path.join(where, f"compose-{name}.png"), full_page=True)


def http_session(server, user: str) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=server.url, timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)[1]
    r = c.post("/login", data={"name": user, "password": PASSWORDS[user], "csrf": token, "next": "/"})
    assert r.status_code == 303, r.text
    page = c.get(f"/mail/{1 if user == 'alice' else 2}/compose")
    assert page.status_code == 200, page.text
    return c, re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def attachments_of(message: EmailMessage) -> dict[str, bytes]:
    return {part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()}


def sent_with(server, subject: str) -> EmailMessage:
    found = [m for _, _, m in messages_in(server, "alice", "Sent") if m["Subject"] == subject]
    assert len(found) == 1, [m["Subject"] for _, _, m in messages_in(server, "alice", "Sent")]
    return found[0]


def clear_drafts(server, user: str = "alice") -> None:
    """Drafts left by an earlier test that failed half-way: gone, so counts start at nothing."""
    imap = imap_login(server, user)
    try:
        imap.select("Drafts")
        imap.uid("STORE", "1:*", "+FLAGS.SILENT", r"(\Deleted)")
        imap.expunge()
    finally:
        imap.logout()


def drafts_of(server, user: str = "alice") -> list[tuple[int, set[str], EmailMessage]]:
    return [d for d in messages_in(server, user, "Drafts") if "\\Deleted" not in d[1]]


# ---------------------------------------------------------------- tests

def test_compose_with_an_attachment_and_send(browser, mailserver, sink, tmp_path):
    data = b"%PDF-1.4\n% the plan\n" + bytes(range(256)) * 40
    dave = json.loads(_cli(mailserver.config, "contact", "add", "--name", "Dave Client", "--email", "dave@client.example"))
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, mailserver, "alice")
        page.goto(mailserver.url + "/mail/1/compose")
        assert page.locator("select[name=from] option").all_inner_texts() == [f"alice@{DOMAIN}", SALES]
        page.select_option("select[name=from]", SALES)
        page.fill("input[name=to]", f"Bob <bob@{DOMAIN}>, dave@client.example")
        page.fill("input[name=subject]", "The plan, attached")
        page.fill("textarea[name=text]", "Hello both,\n\nthe plan is attached.\n\nAlice")
        page.set_input_files("input[name=attachments]",
                             files=[{"name": "plan.pdf", "mimeType": "application/pdf", "buffer": data}])
        shot(page, tmp_path, "new")
        page.click("button.send")
        page.wait_for_url(re.compile(r"/mail/1/compose/sent\?"))
        assert "Message sent" in page.inner_text("h1")
        shot(page, tmp_path, "sent")
        page.click("a.sent-copy")       # the copy in Sent, in the reading pane
        page.wait_for_selector("article.reading")
        assert page.inner_text("article.reading .subject") == "The plan, attached"
        page.goto(f"{mailserver.url}/contacts/{dave['id']}")     # logged on the contact at once
        assert "The plan, attached" in page.inner_text("ol.timeline")
    finally:
        context.close()
    sent = sent_with(mailserver, "The plan, attached")
    assert sent["From"].addresses[0].addr_spec == SALES        # the identity chosen
    assert attachments_of(sent) == {"plan.pdf": data}
    assert "the plan is attached" in sent.get_body(("plain",)).get_content()
    # delivered to bob here, relayed to the other domain through the smarthost
    at_bob = wait_for(lambda: [m for _, _, m in messages_in(mailserver, "bob", "INBOX")
                               if m["Subject"] == "The plan, attached"], "local delivery to bob")
    assert attachments_of(at_bob[0]) == {"plan.pdf": data}
    relayed = wait_for(lambda: [r for r in sink[0].received if b"The plan, attached" in r[2]], "the relay")
    assert relayed[0][1] == ["dave@client.example"]
    assert drafts_of(mailserver) == []      # sent quickly: any draft made on the way is gone


def test_reply_and_reply_all(browser, mailserver, sink, tmp_path):
    mailserver.deliver("alice+sales", incoming("Meeting on Tuesday", "meet@client.example", to=f"{SALES}, bob@{DOMAIN}",
                                         cc="Dave <dave@client.example>", references="<earlier@client.example>"))
    uid = uid_of(mailserver, "alice", "INBOX", "meet@client.example")
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, mailserver, "alice")
        page.goto(f"{mailserver.url}/mail/1/compose?reply={uid}&folder=INBOX")
        assert page.input_value("input[name=to]") == "Carol Client <carol@client.example>"
        assert page.input_value("input[name=cc]") == ""
        assert page.input_value("input[name=subject]") == "Re: Meeting on Tuesday"
        assert page.input_value("select[name=from]") == SALES     # the identity it was sent to
        text = page.input_value("textarea[name=text]")
        assert "Carol Client <carol@client.example> wrote:" in text and "> can we meet on Tuesday?" in text
        page.click("textarea[name=text]")
        page.keyboard.press("Control+Home")
        page.keyboard.type("Tuesday suits me.")
        shot(page, tmp_path, "reply")
        page.click("button.send")
        page.wait_for_url(re.compile(r"/compose/sent\?"))

        page.goto(f"{mailserver.url}/mail/1/compose?reply={uid}&folder=INBOX&reply_all=1")
        assert page.input_value("input[name=to]") == f"Carol Client <carol@client.example>, bob@{DOMAIN}"
        assert page.input_value("input[name=cc]") == "Dave <dave@client.example>"      # and never alice herself
        page.fill("input[name=subject]", "Re: Meeting on Tuesday (all)")
        shot(page, tmp_path, "reply-all")
        page.click("button.send")
        page.wait_for_url(re.compile(r"/compose/sent\?"))
    finally:
        context.close()
    reply = sent_with(mailserver, "Re: Meeting on Tuesday")
    assert reply["In-Reply-To"] == "<meet@client.example>"
    assert reply["References"].split() == ["<earlier@client.example>", "<meet@client.example>"]
    assert [a.addr_spec for a in reply["To"].addresses] == ["carol@client.example"] and reply["Cc"] is None
    assert reply["From"].addresses[0].addr_spec == SALES
    assert reply.get_body(("plain",)).get_content().startswith("Tuesday suits me.")
    everyone = sent_with(mailserver, "Re: Meeting on Tuesday (all)")
    assert everyone["In-Reply-To"] == "<meet@client.example>"
    assert [a.addr_spec for a in everyone["To"].addresses] == ["carol@client.example", f"bob@{DOMAIN}"]
    assert [a.addr_spec for a in everyone["Cc"].addresses] == ["dave@client.example"]
    wait_for(lambda: [m for _, _, m in messages_in(mailserver, "bob", "INBOX")
                      if m["Subject"] == "Re: Meeting on Tuesday (all)"], "bob's copy of the reply to all")


def test_forward_keeps_the_attachments(browser, mailserver, tmp_path):
    pdf = b"%PDF-1.4\n% figures\n" + os.urandom(5000)
    mailserver.deliver("alice", incoming("Quarterly figures", "figures@client.example", attachment=pdf))
    uid = uid_of(mailserver, "alice", "INBOX", "figures@client.example")
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, mailserver, "alice")
        page.goto(f"{mailserver.url}/mail/1/compose?forward={uid}&folder=INBOX")
        assert page.input_value("input[name=subject]") == "Fwd: Quarterly figures"
        assert "---------- Forwarded message ----------" in page.input_value("textarea[name=text]")
        assert "figures.pdf" in page.inner_text("ul.kept")
        page.fill("input[name=to]", f"bob@{DOMAIN}")
        page.set_input_files("input[name=attachments]",
                             files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"my notes\n"}])
        shot(page, tmp_path, "forward")
        page.click("button.send")
        page.wait_for_url(re.compile(r"/compose/sent\?"))
    finally:
        context.close()
    forwarded = sent_with(mailserver, "Fwd: Quarterly figures")
    assert attachments_of(forwarded) == {"figures.pdf": pdf, "notes.txt": b"my notes\n"}
    assert "can we meet on Tuesday?" in forwarded.get_body(("plain",)).get_content()


def test_drafts_saved_as_the_user_types_replaced_resumed_and_removed_on_send(browser, mailserver, tmp_path):
    clear_drafts(mailserver)
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, mailserver, "alice")
        page.goto(mailserver.url + "/mail/1/compose")
        saves: list[str] = []
        page.on("request", lambda r: saves.append(r.url) if r.method == "POST" and "/compose/draft" in r.url else None)
        page.fill("input[name=to]", f"bob@{DOMAIN}")
        page.fill("input[name=subject]", "Draft in progress")
        page.locator("textarea[name=text]").press_sequentially("First words", delay=20)
        page.wait_for_selector("form.compose[data-draft-saved]")
        assert len(saves) == 1      # one save after the typing paused, not one per key
        first = int(page.get_attribute("form.compose", "data-draft-saved"))
        assert page.input_value("input[name=draft]") == str(first)
        drafts = drafts_of(mailserver)
        assert [uid for uid, _, _ in drafts] == [first]
        uid, flags, draft = drafts[0]
        assert {"\\Draft", "\\Seen"} <= flags
        assert draft["Subject"] == "Draft in progress" and "First words" in draft.get_body(("plain",)).get_content()
        assert draft["To"] == f"bob@{DOMAIN}"
        shot(page, tmp_path, "draft-saved")

        page.locator("textarea[name=text]").press_sequentially(" and more", delay=20)
        second = wait_for(lambda: int(page.get_attribute("form.compose", "data-draft-saved")) != first
                          and int(page.get_attribute("form.compose", "data-draft-saved")), "the second save")
        drafts = drafts_of(mailserver)
        assert [uid for uid, _, _ in drafts] == [second] and second != first      # replaced: still one
        assert "First words and more" in drafts[0][2].get_body(("plain",)).get_content()

        # Resumed elsewhere (another tab), then sent: the draft goes.
        other = context.new_page()
        other.goto(f"{mailserver.url}/mail/1/compose?draft={second}")
        assert other.input_value("input[name=to]") == f"bob@{DOMAIN}"
        assert other.input_value("input[name=subject]") == "Draft in progress"
        assert other.input_value("textarea[name=text]") == "First words and more"
        shot(other, tmp_path, "draft-resumed")
        other.click("button.send")
        other.wait_for_url(re.compile(r"/compose/sent\?"))
        assert drafts_of(mailserver) == []
        assert sent_with(mailserver, "Draft in progress")
    finally:
        context.close()


def test_draft_with_an_attachment_keeps_it_until_sent(browser, mailserver, tmp_path):
    clear_drafts(mailserver)
    data = os.urandom(20000)
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, mailserver, "alice")
        page.goto(mailserver.url + "/mail/1/compose")
        page.fill("input[name=to]", f"bob@{DOMAIN}")
        page.set_input_files("input[name=attachments]",
                             files=[{"name": "data.bin", "mimeType": "application/octet-stream", "buffer": data}])
        page.fill("input[name=subject]", "Draft with a file")
        page.wait_for_selector("form.compose[data-draft-saved]")
        page.wait_for_selector("ul.kept li:has-text('data.bin')")       # in the draft now, not uploaded again
        assert page.eval_on_selector("input[name=attachments]", "e => e.files.length") == 0
        (uid, _, draft), = drafts_of(mailserver)
        assert attachments_of(draft) == {"data.bin": data}
        page.click("button.send")
        page.wait_for_url(re.compile(r"/compose/sent\?"))
    finally:
        context.close()
    assert attachments_of(sent_with(mailserver, "Draft with a file")) == {"data.bin": data}
    assert drafts_of(mailserver) == []


def test_csrf_refused(mailserver):
    clear_drafts(mailserver)
    client, token = http_session(mailserver, "alice")
    form = {"from": f"alice@{DOMAIN}", "to": f"bob@{DOMAIN}", "subject": "forged", "text": "x"}
    with closing(client):
        for path in ("/mail/1/compose/send", "/mail/1/compose/draft"):
            assert client.post(path, data=form).status_code == 403                          # no token
            assert client.post(path, data={**form, "csrf": "x" * 43}).status_code == 403      # a forged one
            assert client.post(path, data={**form, "csrf": token},
                               headers={"Origin": "http://elsewhere.example"}).status_code == 403
    assert not [m for _, _, m in messages_in(mailserver, "alice", "Sent") if m["Subject"] == "forged"]
    assert drafts_of(mailserver) == []


def test_another_users_draft_is_not_found(mailserver):
    clear_drafts(mailserver)
    alice, alice_token = http_session(mailserver, "alice")
    bob, bob_token = http_session(mailserver, "bob")
    with closing(alice), closing(bob):
        saved = alice.post("/mail/1/compose/draft", data={"csrf": alice_token, "from": f"alice@{DOMAIN}",
                                                          "to": "x@client.example", "subject": "Alice's secret draft",
                                                          "text": "private"})
        assert saved.status_code == 200, saved.text
        uid = saved.json()["draft"]
        for url in (f"/mail/1/compose?draft={uid}", f"/mail/2/compose?draft={uid}",
                    f"/mail/1/compose?reply={uid}&folder=Drafts", f"/mail/1/compose?forward={uid}&folder=Drafts"):
            r = bob.get(url)
            assert r.status_code == 404 and "secret" not in r.text, (url, r.status_code)
        for path in ("/mail/1/compose/draft", "/mail/2/compose/draft", "/mail/1/compose/send"):
            r = bob.post(path, data={"csrf": bob_token, "from": f"bob@{DOMAIN}", "to": f"bob@{DOMAIN}",
                                     "draft": str(uid), "keep": "draft:1", "text": "overwrite"})
            assert r.status_code == 404 and "secret" not in r.text, (path, r.status_code, r.text[:300])
        # a message in Drafts that is no draft (no \\Draft flag) can't be resumed, replaced or sent as one
        imap = imap_login(mailserver, "alice")
        try:
            imap.append("Drafts", "(\\Seen)", None, incoming("Not a draft", "notadraft@client.example"))
        finally:
            imap.logout()
        plain = uid_of(mailserver, "alice", "Drafts", "notadraft@client.example")
        assert alice.get(f"/mail/1/compose?draft={plain}").status_code == 404
        for path in ("/mail/1/compose/draft", "/mail/1/compose/send"):
            r = alice.post(path, data={"csrf": alice_token, "from": f"alice@{DOMAIN}", "to": f"bob@{DOMAIN}",
                                       "draft": str(plain), "keep": "draft:1", "text": "x"})
            assert r.status_code == 404, (path, r.status_code)
        r = alice.post("/mail/1/compose/draft", data={"csrf": alice_token, "draft": str(plain), "text": "x"})
        assert r.status_code == 404
        r = alice.post("/mail/1/compose/send", data={"csrf": alice_token, "from": f"alice@{DOMAIN}", "draft": str(plain),
                                                     "to": f"bob@{DOMAIN}", "subject": "Sent over a non-draft"})
        assert r.status_code == 303     # sent, but the message that is no draft was left alone
        in_drafts = messages_in(mailserver, "alice", "Drafts")
        assert sorted(d[0] for d in in_drafts if "\\Deleted" not in d[1]) == [uid, plain]
        assert next(d for d in in_drafts if d[0] == uid)[2]["Subject"] == "Alice's secret draft"
        # a draft that is gone already (sent from another tab): the next save makes a new one
        r = alice.post("/mail/1/compose/draft", data={"csrf": alice_token, "draft": "999999", "subject": "Anew"})
        assert r.status_code == 200 and r.json()["draft"] > uid
        clear_drafts(mailserver)
        saved = alice.post("/mail/1/compose/draft", data={"csrf": alice_token, "subject": "Alice's secret draft"})
        uid = saved.json()["draft"]
        # alice removes her own, by sending it
        r = alice.post("/mail/1/compose/send", data={"csrf": alice_token, "from": f"alice@{DOMAIN}",
                                                     "to": f"bob@{DOMAIN}", "subject": "Alice's secret draft",
                                                     "text": "private", "draft": str(uid)})
        assert r.status_code == 303, r.text
        assert drafts_of(mailserver) == []


def test_hostile_input_refused_with_the_text_kept(mailserver):
    client, token = http_session(mailserver, "alice")
    base = {"csrf": token, "from": f"alice@{DOMAIN}", "to": f"bob@{DOMAIN}", "subject": "Hostile",
            "text": "my precious words"}
    with closing(client):
        cases = [
            ({"subject": "Hi\r\nBcc: mallory@evil.example"}, "subject may not contain a line break"),
            ({"to": f"bob@{DOMAIN}\r\nBcc: mallory@evil.example"}, "To may not contain a line break"),
            ({"to": "not an address"}, "not an email address"),
            ({"to": ""}, "at least one recipient"),
            ({"from": "mallory@evil.example"}, "is not one of this account"),
            ({"keep": "../../etc/passwd"}, "not an attachment"),
        ]
        for change, expected in cases:
            r = client.post("/mail/1/compose/send", data={**base, **change})
            assert r.status_code == 400, (change, r.status_code)
            assert expected in r.text.replace("&#39;", "'"), (change, r.text[:2000])
            assert "my precious words" in r.text        # nothing lost
        # The SMTP server refuses a recipient: said on the page, the text kept.
        r = client.post("/mail/1/compose/send", data={**base, "to": f"nobody-here@{DOMAIN}"})
        assert r.status_code == 502 and "not sent" in r.text and "my precious words" in r.text, r.text[:2000]
        # One recipient refused, another taken: sent, and the page says which was refused.
        r = client.post("/mail/1/compose/send", data={**base, "subject": "Half taken",
                                                      "to": f"bob@{DOMAIN}, nobody-here@{DOMAIN}"})
        assert r.status_code == 200 and "Message sent" in r.text and "were refused" in r.text, r.text[:3000]
        assert f"nobody-here@{DOMAIN}" in r.text.split("were refused")[1]
        # A file over the server's message size: refused, saying so, the rest kept.
        big = os.urandom(MAX_MESSAGE * 3 // 4 + 1024)
        r = client.post("/mail/1/compose/send", data=base, files={"attachments": ("big.bin", big)})
        assert r.status_code == 400 and "too large" in r.text and "my precious words" in r.text
        # and one far over it never reaches the page at all
        r = client.post("/mail/1/compose/send", data=base,
                        files={"attachments": ("huge.bin", b"\0" * (MAX_MESSAGE + 2 * 1024 * 1024))})
        assert r.status_code == 413
        # a file name with a path and controls is cleaned
        r = client.post("/mail/1/compose/send", data={**base, "subject": "Odd name"},
                        files={"attachments": ("../..\\dir\\evil.txt", b"data")})
        assert r.status_code == 303, r.text[:2000]
    assert attachments_of(sent_with(mailserver, "Odd name")) == {"evil.txt": b"data"}
    sent = [m["Subject"] for _, _, m in messages_in(mailserver, "alice", "Sent")]
    assert "Hostile" not in sent and not any("mallory" in s for s in sent)


def test_too_large_attachment_refused_in_the_browser(browser, mailserver, tmp_path):
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, mailserver, "alice")
        page.goto(mailserver.url + "/mail/1/compose")
        page.set_input_files("input[name=attachments]", files=[
            {"name": "huge.bin", "mimeType": "application/octet-stream", "buffer": b"\0" * MAX_MESSAGE}])
        assert "too large" in page.inner_text(".attach-error")
        assert page.eval_on_selector("input[name=attachments]", "e => e.files.length") == 0
        shot(page, tmp_path, "too-large")
        page.set_viewport_size({"width": 390, "height": 844})
        shot(page, tmp_path, "phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390      # nothing wider than a phone
        page.set_viewport_size({"width": 1280, "height": 900})
        # A refused address: said on the page, what was typed still there.
        page.fill("input[name=to]", "bob at example")
        page.fill("input[name=subject]", "Typo")
        page.fill("textarea[name=text]", "words worth keeping")
        page.click("button.send")
        page.wait_for_selector("p.error")
        assert "not an email address" in page.inner_text("p.error")
        assert page.input_value("textarea[name=text]") == "words worth keeping"
        assert page.input_value("input[name=to]") == "bob at example"
        shot(page, tmp_path, "error")
    finally:
        context.close()


def test_drafts_folder_made_when_missing_and_files_kept_when_sending_fails(mailserver):
    imap = imap_login(mailserver, "bob")
    try:
        assert imap.delete("Drafts")[0] == "OK"
    finally:
        imap.logout()
    client, token = http_session(mailserver, "bob")
    with closing(client):
        r = client.post("/mail/2/compose/draft", data={"csrf": token, "to": "half-typ", "subject": "First draft"})
        assert r.status_code == 200, r.text
        (uid, flags, draft), = drafts_of(mailserver, "bob")
        assert uid == r.json()["draft"] and "\\Draft" in flags and draft["To"] == "half-typ"
        # A send that fails (a bad address) with a file: the file is kept in the draft, the page lists it.
        r = client.post("/mail/2/compose/send", data={"csrf": token, "from": f"bob@{DOMAIN}", "to": "half-typ",
                                                      "subject": "With a file", "text": "words", "draft": str(uid)},
                        files={"attachments": ("kept.txt", b"keep me")})
        assert r.status_code == 400 and "not an email address" in r.text and "words" in r.text
        kept = re.search(r'name="keep" value="(draft:\d+)"', r.text)[1]
        new_uid = re.search(r'name="draft" value="(\d+)"', r.text)[1]
        (uid2, _, draft), = drafts_of(mailserver, "bob")
        assert str(uid2) == new_uid and attachments_of(draft) == {"kept.txt": b"keep me"}
        # fixed and sent: the file goes with it, the draft goes
        r = client.post("/mail/2/compose/send", data={"csrf": token, "from": f"bob@{DOMAIN}", "to": f"alice@{DOMAIN}",
                                                      "subject": "With a file", "text": "words", "draft": new_uid,
                                                      "keep": kept})
        assert r.status_code == 303, r.text[:2000]
    assert drafts_of(mailserver, "bob") == []
    got = wait_for(lambda: [m for _, _, m in messages_in(mailserver, "alice", "INBOX") if m["Subject"] == "With a file"],
                   "bob's mail to alice")
    assert attachments_of(got[0]) == {"kept.txt": b"keep me"}
