"""The web app's pages in Debian's Chromium against a real `posthouse serve`:
log in, folders and messages (delivered over LMTP and APPENDed over IMAP),
the reading pane and an attachment, a hostile HTML mail that runs nothing and
loads nothing from elsewhere until images are allowed, a contact made from a
sender with its timeline and the original (and "no longer there" once it is
deleted), CSRF refused, and one user's mail out of another's reach.
Screenshots of each page go to the test's tmp_path."""
from __future__ import annotations

import hashlib
from contextlib import closing
import imaplib
import re
import threading
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from .conftest import DOMAIN, PASSWORDS


# ---------------------------------------------------------------- helpers

class Elsewhere:
    """A web server on another origin: counts what it is asked for (a tracking
    pixel's host) and serves a page that forges a POST to the web app."""

    def __init__(self):
        self.hits: list[str] = []
        self.forge_page = b""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits.append(self.path)
                body = outer.forge_page if self.path.startswith("/forge") else b"GIF89a"
                self.send_response(200)
                self.send_header("Content-Type", "text/html" if self.path.startswith("/forge") else "image/gif")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def elsewhere():
    e = Elsewhere()
    yield e
    e.close()


def plain_message(subject: str, message_id: str, *, attachment: bytes | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = "Carol Client <carol@client.example>"
    m["To"] = f"alice@{DOMAIN}"
    m["Subject"] = subject
    m["Message-ID"] = f"<{message_id}>"
    m["Date"] = "Fri, 04 Dec 2026 10:00:00 +0000"
    m.set_content("Hello Alice,\n\nthe quarterly figures are attached.\n\nCarol\n")
    if attachment is not None:
        m.add_attachment(attachment, maintype="application", subtype="pdf", filename="figures.pdf")
    return bytes(m)


def hostile_message(pixel_origin: str) -> bytes:
    html = f"""<html><head><title>owned</title>
<style>body {{ background: url('{pixel_origin}/css-background.png') }}
@import url('{pixel_origin}/imported.css');
@font-face {{ font-family: x; src: url('{pixel_origin}/font.woff') }}</style>
<script>alert('script ran')</script>
<meta http-equiv="refresh" content="0;url={pixel_origin}/refresh">
<link rel="stylesheet" href="{pixel_origin}/linked.css">
</head>
<body onload="alert('onload ran')">
<h2 id="greeting">A special offer</h2>
<img src="x" onerror="alert('onerror ran')">
<img src="{pixel_origin}/pixel.gif" width="1" height="1" alt="">
<img src="http://tracker.evil.example/open.gif">
<p style="background-image: url('{pixel_origin}/inline-style.png')">Styled text.</p>
<a id="js" href="javascript:alert('link ran')">click me</a>
<a id="ok" href="https://www.example.org/">a fine link</a>
<form action="{pixel_origin}/steal" method="post"><input name="password"><button>Log in again</button></form>
<svg width="10" height="10"><script>alert('svg ran')</script><image href="{pixel_origin}/svg-image.png"/></svg>
<iframe src="{pixel_origin}/framed"></iframe>
<object data="{pixel_origin}/object"></object>
<video poster="{pixel_origin}/poster.png"></video>
</body></html>"""
    m = EmailMessage()
    m["From"] = "Mallory <mallory@evil.example>"
    m["To"] = f"alice@{DOMAIN}"
    m["Subject"] = "Hostile HTML"
    m["Message-ID"] = "<hostile@evil.example>"
    m["Date"] = "Fri, 04 Dec 2026 11:00:00 +0000"
    m.set_content("the text alternative")
    m.add_alternative(html, subtype="html")
    return bytes(m)


def imap_login(server, user: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    imap.login(user, PASSWORDS[user])
    return imap


def log_in(page, server, user: str) -> None:
    page.goto(server.url + "/")
    page.wait_for_url(re.compile(r"/login"))
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("form.login button[type=submit]")
    page.wait_for_selector("header.top .who")


def shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def http_session(server, user: str) -> tuple[httpx.Client, str]:
    """A logged-in HTTP client (no browser) and its session's CSRF token."""
    c = httpx.Client(base_url=server.url, timeout=30)
    form = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)[1]
    r = c.post("/login", data={"name": user, "password": PASSWORDS[user], "csrf": token, "next": "/"})
    assert r.status_code == 303, r.text
    page = c.get("/contacts")
    return c, re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


# ---------------------------------------------------------------- tests

def test_login_folders_reading_pane_and_attachment(browser, webserver, tmp_path):
    pdf = b"%PDF-1.4\n% the figures\n" + bytes(range(256))
    webserver.deliver("alice", plain_message("Quarterly figures", "figures@client.example", attachment=pdf))
    imap = imap_login(webserver, "alice")
    try:
        # (the list sorts by arrival, the INTERNALDATE: APPEND's is whole seconds, so a second later than
        # the delivery just before it, or the two could tie and sort either way)
        imap.append("INBOX", "", imaplib.Time2Internaldate(datetime.now(timezone.utc) + timedelta(seconds=2)),
                    plain_message("Appended over IMAP", "appended@client.example"))
    finally:
        imap.logout()
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    try:
        page.goto(webserver.url + "/mail/1?folder=INBOX")
        page.wait_for_url(re.compile(r"/login\?next="))
        shot(page, tmp_path, "login")
        page.fill("input[name=name]", "alice")
        page.fill("input[name=password]", "wrong")
        page.click("form.login button[type=submit]")
        assert "Wrong user name or password" in page.inner_text(".error"), page.content()
        page.fill("input[name=password]", PASSWORDS["alice"])
        page.click("form.login button[type=submit]")
        page.wait_for_url(re.compile(r"/mail/1\?folder=INBOX"))     # back where it was going
        log = open(f"{webserver.tmp}/serve.log").read()     # logged as the mail protocols log logins
        assert "login-failed user=alice protocol=web" in log and "login user=alice protocol=web" in log
        cookie = next(c for c in context.cookies() if c["name"] == "posthouse_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
        folders = page.inner_text("aside.folders")
        assert "INBOX" in folders and "Sent" in folders and "Trash" in folders
        unread = page.inner_text("aside.folders li:has(a.current) .unread")
        assert int(unread) >= 2
        subjects = page.locator("table.messages .subject").all_inner_texts()
        assert subjects[:2] == ["Appended over IMAP", "Quarterly figures"]     # newest first
        shot(page, tmp_path, "folder")
        page.click("table.messages a:has-text('Quarterly figures')")
        page.wait_for_selector("article.reading")
        assert page.inner_text("article.reading .subject") == "Quarterly figures"
        assert "carol@client.example" in page.inner_text("dl.headers")
        assert "quarterly figures are attached" in page.inner_text("pre.body")
        shot(page, tmp_path, "message")
        with page.expect_download() as download:
            page.click("ul.attachments a:has-text('figures.pdf')")
        assert download.value.suggested_filename == "figures.pdf"
        assert open(download.value.path(), "rb").read() == pdf
        page.set_viewport_size({"width": 390, "height": 844})     # a phone
        shot(page, tmp_path, "message-phone")
        page.goto(webserver.url + "/mail/1?folder=INBOX")
        shot(page, tmp_path, "folder-phone")
    finally:
        context.close()


def test_hostile_html_runs_nothing_and_loads_nothing_until_allowed(browser, webserver, elsewhere, tmp_path):
    webserver.deliver("alice", hostile_message(elsewhere.origin))
    context = browser.new_context()
    page = context.new_page()
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        log_in(page, webserver, "alice")
        page.goto(webserver.url + "/mail/1?folder=INBOX")
        page.click("table.messages a:has-text('Hostile HTML')")
        frame = page.frame_locator("iframe.body")
        assert frame.locator("h2").inner_text() == "A special offer"
        page.wait_for_timeout(1500)     # time for anything that would load or run (none should)
        shot(page, tmp_path, "hostile")
        assert dialogs == []
        foreign = [u for u in requests if not u.startswith(webserver.url) and not u.startswith(("data:", "about:"))]
        assert foreign == [], foreign
        assert elsewhere.hits == []
        assert frame.locator("body").locator("script, form, input, svg, iframe, object, meta, link, video").count() == 0
        assert frame.locator("a:has-text('click me')").get_attribute("href") is None
        assert frame.locator("a:has-text('a fine link')").get_attribute("href") == "https://www.example.org/"
        assert frame.locator("a:has-text('a fine link')").get_attribute("rel") == "noopener noreferrer"
        assert "blocked" in page.inner_text("p.notice")
        sandbox = page.get_attribute("iframe.body", "sandbox")
        assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
        # Allowed for this message: now (and only now) the images come; still no script.
        page.click("p.notice a:has-text('Show images')")
        page.frame_locator("iframe.body").locator("h2").wait_for()
        deadline = 50
        while "/pixel.gif" not in elsewhere.hits and deadline:
            page.wait_for_timeout(100)
            deadline -= 1
        assert "/pixel.gif" in elsewhere.hits
        assert not any(h.startswith(("/steal", "/framed", "/object", "/refresh", "/svg")) for h in elsewhere.hits)
        assert dialogs == []
        shot(page, tmp_path, "hostile-images-allowed")
    finally:
        context.close()


def _log_fact(webserver, folder: str, message_id: str) -> None:
    """What the tracker (not running in these tests) would tell the CRM about
    alice's message: a small real stand-in feeding the real CRM."""
    from posthouse.config import load_config
    from posthouse.crmside import open_crm_side
    from posthouse.tracker.facts import MessageSeen, Place
    imap = imap_login(webserver, "alice")
    try:
        _, status = imap.status(folder, "(UIDVALIDITY)")
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", status[0]).group(1))
        imap.select(folder, readonly=True)
        _, data = imap.uid("SEARCH", None, "HEADER", "Message-ID", message_id)
        uid = int(data[0].split()[-1])
        _, fetched = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
        raw = fetched[0][1]
    finally:
        imap.logout()
    config = load_config(webserver.config)
    side = open_crm_side(config)
    try:
        account = next(a for a in side.accounts.list(owner="alice") if a.kind == "local")
        side.crm.apply([MessageSeen(
            place=Place(account.id, folder, uidvalidity, uid), message_id=message_id, emailid=None,
            content_hash=hashlib.sha256(raw).hexdigest(),
            internaldate=datetime(2026, 12, 4, 10, 1, tzinfo=timezone.utc), size=len(raw), flags=(), modseq=None, skeleton=raw, special_use=None)])
    finally:
        side.close()


def test_contact_from_sender_timeline_and_original(browser, webserver, tmp_path):
    webserver.deliver("alice", plain_message("Lunch on Friday?", "lunch@client.example"))
    _log_fact(webserver, "INBOX", "lunch@client.example")
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, webserver, "alice")
        page.goto(webserver.url + "/mail/1?folder=INBOX")
        page.click("table.messages a:has-text('Lunch on Friday?')")
        page.click("button:has-text('Create contact from sender')")
        page.wait_for_url(re.compile(r"/contacts/\d+$"))
        assert page.inner_text("section.records h1") == "Carol Client"
        assert "carol@client.example" in page.inner_text("dl.fields")
        timeline = page.inner_text("ol.timeline")
        assert "Lunch on Friday?" in timeline and "Received" in timeline
        shot(page, tmp_path, "contact")
        page.set_viewport_size({"width": 390, "height": 844})
        shot(page, tmp_path, "contact-phone")
        page.set_viewport_size({"width": 1280, "height": 720})
        contact_url = page.url
        page.goto(webserver.url + "/contacts")
        page.fill("form.search input[name=q]", "carol")      # htmx: the list follows the typing
        page.wait_for_url(re.compile(r"/contacts\?q=carol"))
        assert "Carol Client" in page.inner_text("table.contacts")
        shot(page, tmp_path, "contacts")
        page.fill("form.search input[name=q]", "zzz-nobody")
        page.wait_for_selector("#contact-list p.empty")
        page.goto(webserver.url + "/contacts?q=nobody-of-that-name")
        assert "No contact matches" in page.inner_text("#contact-list")
        # The original, from the server; then deleted there: the page says so.
        page.goto(contact_url)
        page.click("ol.timeline a:has-text('Lunch on Friday?')")
        page.wait_for_selector("article.reading")
        assert "quarterly figures are attached" in page.inner_text("pre.body")
        shot(page, tmp_path, "original")
        imap = imap_login(webserver, "alice")
        try:
            imap.select("INBOX")
            _, data = imap.uid("SEARCH", None, "HEADER", "Message-ID", "lunch@client.example")
            imap.uid("STORE", data[0].split()[-1].decode(), "+FLAGS", r"(\Deleted)")
            imap.expunge()
        finally:
            imap.logout()
        page.reload()
        assert "No longer on the mail server" in page.inner_text("h1")
        shot(page, tmp_path, "original-gone")
    finally:
        context.close()


def test_csrf_refused(webserver, elsewhere):
    client, token = http_session(webserver, "alice")
    with closing(client):
        form = {"folder": "INBOX", "uid": "1"}
        assert client.post("/mail/1/sender-contact", data=form).status_code == 403                      # no token
        assert client.post("/mail/1/sender-contact", data={**form, "csrf": "x" * 43}).status_code == 403   # wrong
        assert client.post("/mail/1/sender-contact", data={**form, "csrf": token},
                           headers={"Origin": elsewhere.origin}).status_code == 403       # another origin
        assert client.post("/mail/1/sender-contact", data={**form, "csrf": token},
                           headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert client.post("/logout", data={"csrf": "wrong"}).status_code == 403
        assert client.get("/contacts").status_code == 200       # still logged in
        # A forged login (no login-form token) is refused too.
        anon = httpx.Client(base_url=webserver.url, timeout=30)
        with anon:
            assert anon.post("/login", data={"name": "alice", "password": PASSWORDS["alice"]}).status_code == 403


def test_csrf_from_another_origin_refused_in_the_browser(browser, webserver, elsewhere, tmp_path):
    """A page elsewhere posts a form at the web app, even with a leaked token:
    refused (the browser says where the request comes from)."""
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, webserver, "alice")
        page.goto(webserver.url + "/contacts")
        leaked = page.get_attribute("input[name=csrf]", "value")
        elsewhere.forge_page = (
            f'<form id="f" method="post" action="{webserver.url}/mail/1/sender-contact">'
            f'<input name="csrf" value="{leaked}"><input name="folder" value="INBOX"><input name="uid" value="1">'
            f'</form><script>document.getElementById("f").submit()</script>').encode()
        page.goto(elsewhere.origin + "/forge")
        page.wait_for_url(webserver.url + "/mail/1/sender-contact")     # the forged form went off...
        assert "Refused" in page.inner_text("h1")                        # ...and was refused
        shot(page, tmp_path, "csrf-refused")
    finally:
        context.close()


def test_another_users_mail_is_not_found(webserver):
    webserver.deliver("alice", plain_message("For Alice only", "private@client.example"))
    client, token = http_session(webserver, "bob")
    with closing(client):
        bob_home = client.get("/")
        assert bob_home.status_code == 303 and bob_home.headers["location"].startswith("/mail/2")
        for url in ("/mail/1?folder=INBOX", "/mail/1/message?folder=INBOX&uid=1",
                    "/mail/1/attachment?folder=INBOX&uid=1&part=2"):
            r = client.get(url)
            assert r.status_code == 404, (url, r.status_code)
            assert "For Alice only" not in r.text
        r = client.post("/mail/1/sender-contact", data={"folder": "INBOX", "uid": "1", "csrf": token})
        assert r.status_code == 404
        # bob's own mailbox works (and is empty)
        assert "No messages here" in client.get("/mail/2?folder=INBOX").text


def test_headers_and_errors(webserver):
    webserver.deliver("alice", plain_message("Headers", "headers@client.example"))
    client, _ = http_session(webserver, "alice")
    with closing(client):
        listing = client.get("/mail/1?folder=INBOX")
        uid = re.search(r"/mail/1/message\?folder=INBOX&amp;uid=(\d+)", listing.text)[1]
        page = client.get(f"/mail/1/message?folder=INBOX&uid={uid}")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "https:" not in policy       # remote images: only once allowed
        assert "https:" in client.get(f"/mail/1/message?folder=INBOX&uid={uid}&images=1"
                                      ).headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        missing = client.get("/mail/1/message?folder=INBOX&uid=999999")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
        assert client.get("/mail/1?folder=No-Such-Folder").status_code == 404
        assert client.get("/no/such/page").status_code == 404
        api = client.get("/api/v1/accounts")        # the API keeps its JSON and its tokens (no cookie login)
        assert api.status_code == 401 and api.json()["error"]
        bad = client.get("/mail/1/message?folder=INBOX&uid=0")
        assert bad.status_code == 422 and "uid" in bad.text and "text/html" in bad.headers["content-type"]
