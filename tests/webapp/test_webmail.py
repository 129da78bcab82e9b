"""The webmail pages on a real `posthouse serve` (tests/webapp/conftest.py),
checked over IMAP with imaplib: the list sorted and paged with the
contract's ids, \\Seen on open, flag / unread / move / delete to Trash /
archive, search, the conversation across folders, attachments downloaded
and previewed with safe headers (hostile names and types harmless), remote
images allowed per sender, an attachment saved on a contact, CSRF and
another user's URLs refused; in Chromium: the keyboard shortcuts and the
phone-sized layout. Screenshots go to the test's tmp_path."""
from __future__ import annotations

import imaplib
import os
import re
from contextlib import closing
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from urllib.parse import quote

import pytest

from .conftest import DOMAIN
from .test_pages import http_session, imap_login, log_in

SCREENSHOTS = os.environ.get("POSTHOUSE_SCREENSHOTS")


def shot(page, tmp_path, name: str) -> None:
    target = SCREENSHOTS or str(tmp_path)
    page.wait_for_load_state("networkidle")     # (the folder counts come after the page)
    page.screenshot(path=os.path.join(target, f"webmail-{name}.png"), full_page=True)


def message(subject: str, message_id: str, *, sender="Dana Doe <dana@client.example>", date="Fri, 04 Dec 2026 10:00:00 +0000",
            in_reply_to: str | None = None, references: str | None = None, html: str | None = None,
            attachments=()) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = f"alice@{DOMAIN}"
    m["Subject"] = subject
    m["Message-ID"] = f"<{message_id}>"
    m["Date"] = date
    if in_reply_to:
        m["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        m["References"] = references
    m.set_content(f"Text of {subject}.\n")
    if html:
        m.add_alternative(html, subtype="html")
    for data, maintype, subtype, name in attachments:
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return bytes(m)


def append(server, user: str, folder: str, raw: bytes, when: datetime, flags: str = "") -> int:
    imap = imap_login(server, user)
    try:
        typ, data = imap.append(folder, flags, imaplib.Time2Internaldate(when), raw)
        assert typ == "OK", data
        uid = re.search(rb"APPENDUID \d+ (\d+)", data[0])
        return int(uid[1])
    finally:
        imap.logout()


def flags_of(server, user: str, folder: str, uid: int) -> str:
    imap = imap_login(server, user)
    try:
        imap.select(folder, readonly=True)
        _, data = imap.uid("FETCH", str(uid), "(FLAGS)")
        return (data[0] or b"").decode()
    finally:
        imap.logout()


def find(server, user: str, folder: str, message_id: str) -> list[int]:
    imap = imap_login(server, user)
    try:
        typ, _ = imap.select(quote_folder(folder), readonly=True)
        if typ != "OK":
            return []
        _, data = imap.uid("SEARCH", None, "HEADER", "Message-ID", message_id)
        return [int(x) for x in data[0].split()]
    finally:
        imap.logout()


def quote_folder(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def post(client, token: str, url: str, **form):
    return client.post(url, data={"csrf": token, **form})


T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------- the list

def test_list_sorted_paged_with_stable_ids(webserver):
    imap = imap_login(webserver, "bob")
    try:
        for i in range(55):
            imap.append("INBOX", "", imaplib.Time2Internaldate(T0 + timedelta(minutes=i)),
                        message(f"Bulk {i:02d}", f"bulk{i}@client.example"))
    finally:
        imap.logout()
    client, _ = http_session(webserver, "bob")
    with closing(client):
        first = client.get("/mail/2?folder=INBOX")
        assert first.status_code == 200
        subjects = re.findall(r'<td class="subject"><a [^>]*>([^<]*)</a>', first.text)
        assert subjects == [f"Bulk {i:02d}" for i in range(54, 4, -1)]     # newest first, 50 a page
        assert "page 1 of 2" in first.text and "55 messages" in first.text
        assert re.search(r'<tbody id="message-list" hx-get="/mail/2/list\?folder=INBOX&amp;page=1" '
                         r'hx-trigger="posthouse:refresh from:body"', first.text)
        assert re.search(r'<nav id="folders" hx-get="/mail/2/folders\?folder=INBOX"\s+'
                         r'hx-trigger="load, posthouse:folders from:body"', first.text)
        rows = re.findall(r'<tr id="msg-(\d+)" data-uid="(\d+)" [^>]*class="(unseen|seen)', first.text)
        assert len(rows) == 50 and all(a == b and c == "unseen" for a, b, c in rows)
        second = client.get("/mail/2/list?folder=INBOX&page=2")      # the fragment: rows only
        assert "<html" not in second.text and len(re.findall(r'<tr id="msg-', second.text)) == 5
        folders = client.get("/mail/2/folders?folder=INBOX")
        assert "<html" not in folders.text and re.search(r'title="unread">55<', folders.text)
        assert client.get("/mail/2/list?folder=No-Such").status_code == 404


# ---------------------------------------------------------------- actions

def test_seen_on_open_flag_unread_move_trash_archive(webserver):
    raw = message("Act on me", "act@client.example")
    uid = append(webserver, "alice", "INBOX", raw, T0)
    client, token = http_session(webserver, "alice")
    with closing(client):
        assert "\\Seen" not in flags_of(webserver, "alice", "INBOX", uid)
        page = client.get(f"/mail/1/message?folder=INBOX&uid={uid}")
        assert page.status_code == 200 and "Act on me" in page.text
        assert "\\Seen" in flags_of(webserver, "alice", "INBOX", uid)      # the reading pane marked it read
        r = post(client, token, "/mail/1/action", folder="INBOX", uid=uid, do="flag")
        assert r.status_code == 303 and r.headers["location"] == f"/mail/1/message?folder=INBOX&uid={uid}"
        assert "\\Flagged" in flags_of(webserver, "alice", "INBOX", uid)
        # htmx asks for the row back, with its new state.
        r = client.post("/mail/1/action", data={"csrf": token, "folder": "INBOX", "uid": uid, "do": "unflag"},
                        headers={"HX-Request": "true"})
        assert r.status_code == 200 and f'<tr id="msg-{uid}"' in r.text and "flagged" not in r.text.split(">")[0]
        assert "\\Flagged" not in flags_of(webserver, "alice", "INBOX", uid)
        post(client, token, "/mail/1/action", folder="INBOX", uid=uid, do="unseen")
        assert "\\Seen" not in flags_of(webserver, "alice", "INBOX", uid)
        # Move to another folder (the folder picker), then delete: into Trash; then archive from Trash.
        r = post(client, token, "/mail/1/action", folder="INBOX", uid=uid, do="move", target="Drafts")
        assert r.status_code == 303 and r.headers["location"] == "/mail/1?folder=INBOX"
        assert find(webserver, "alice", "INBOX", "act@client.example") == []
        [in_drafts] = find(webserver, "alice", "Drafts", "act@client.example")
        assert post(client, token, "/mail/1/action", folder="INBOX", uid=uid, do="move",
                    target="No-Such-Folder").status_code == 404
        post(client, token, "/mail/1/action", folder="Drafts", uid=in_drafts, do="trash")
        [in_trash] = find(webserver, "alice", "Trash", "act@client.example")
        assert find(webserver, "alice", "Drafts", "act@client.example") == []
        r = post(client, token, "/mail/1/action", folder="Trash", uid=in_trash, do="archive",
                 back="/mail/1?folder=Trash&page=1")
        assert r.headers["location"] == "/mail/1?folder=Trash&page=1"
        imap = imap_login(webserver, "alice")
        try:
            _, listing = imap.list()
            archive = [line for line in listing if b'"Archive"' in line or b" Archive" in line]
            assert archive and b"\\Archive" in archive[0], listing      # created, marked \Archive
        finally:
            imap.logout()
        assert find(webserver, "alice", "Archive", "act@client.example")
        # Gone, then asked again: 404, not a crash; junk input: 400; a foreign "back": not followed.
        assert post(client, token, "/mail/1/action", folder="Trash", uid=in_trash, do="flag").status_code == 404
        assert post(client, token, "/mail/1/action", folder="INBOX", uid="x", do="flag").status_code == 400
        assert post(client, token, "/mail/1/action", folder="INBOX", uid=1, do="explode").status_code == 400
        assert post(client, token, "/mail/1/action", folder="IN\r\nBOX", uid=1, do="flag").status_code == 400
        uid2 = append(webserver, "alice", "INBOX", message("Second", "second@client.example"), T0)
        r = post(client, token, "/mail/1/action", folder="INBOX", uid=uid2, do="seen", back="https://evil.example/")
        assert r.headers["location"] == f"/mail/1/message?folder=INBOX&uid={uid2}"
        r = post(client, token, "/mail/1/action", folder="INBOX", uid=uid2, do="seen", back="/mail/10/x")
        assert r.headers["location"].startswith("/mail/1/message")
        # CSRF: no token, or another site's request: refused, nothing changed.
        assert client.post("/mail/1/action", data={"folder": "INBOX", "uid": uid2, "do": "trash"}).status_code == 403
        assert client.post("/mail/1/action", data={"csrf": token, "folder": "INBOX", "uid": uid2, "do": "trash"},
                           headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert find(webserver, "alice", "INBOX", "second@client.example") == [uid2]


# ---------------------------------------------------------------- search

def test_search_fields_server_side(webserver):
    append(webserver, "alice", "INBOX", message("Invoice March", "inv1@client.example",
                                                sender="Billing <billing@vendor.example>"), T0 - timedelta(days=40))
    append(webserver, "alice", "INBOX", message("Invoice April", "inv2@client.example",
                                                sender="Billing <billing@vendor.example>",
                                                attachments=[(b"%PDF-1.4", "application", "pdf", "april.pdf")]),
           T0 - timedelta(days=10))
    append(webserver, "alice", "INBOX", message("Naïve café menu", "cafe@client.example"), T0)
    client, _ = http_session(webserver, "alice")
    with closing(client):
        def subjects(**query):
            r = client.get("/mail/1/search", params={"folder": "INBOX", **query})
            assert r.status_code == 200, r.text
            return re.findall(r'<td class="subject"><a [^>]*>([^<]*)</a>', r.text)
        assert subjects(**{"from": "billing@vendor"}) == ["Invoice April", "Invoice March"]
        assert subjects(subject="invoice", attachment="1") == ["Invoice April"]
        since = (T0 - timedelta(days=20)).date().isoformat()
        until = (T0 - timedelta(days=5)).date().isoformat()
        assert subjects(subject="invoice", since=since, until=until) == ["Invoice April"]
        assert subjects(subject="café") == ["Naïve café menu"]         # non-ASCII: CHARSET UTF-8
        assert subjects(subject='"quoted" \\ back') == []               # quoting holds
        assert "Nothing matches" in client.get("/mail/1/search", params={"folder": "INBOX",
                                                                          "subject": "zzz-nothing"}).text
        assert client.get("/mail/1/search", params={"folder": "INBOX", "since": "not-a-date"}).status_code == 422
        assert client.get("/mail/1/search", params={"folder": "INBOX", "subject": "x" * 500}).status_code == 422
        assert client.get("/mail/1/search", params={"folder": "INBOX"}).status_code == 303     # empty: the folder
        # The fragment refreshes the search, not the whole folder.
        frag = client.get("/mail/1/list", params={"folder": "INBOX", "from": "billing@vendor"})
        assert len(re.findall(r'<tr id="msg-', frag.text)) == 2


# ---------------------------------------------------------------- conversation

def test_conversation_across_folders(webserver):
    append(webserver, "alice", "INBOX", message("Project kickoff", "kick@client.example",
                                                date="Mon, 30 Nov 2026 09:00:00 +0000"), T0)
    append(webserver, "alice", "Sent", message("Re: Project kickoff", "kick-re@example.test",
                                               sender=f"Alice <alice@{DOMAIN}>", in_reply_to="kick@client.example",
                                               references="<kick@client.example>",
                                               date="Mon, 30 Nov 2026 10:00:00 +0000"), T0, r"(\Seen)")
    last = append(webserver, "alice", "INBOX", message(
        "Re: Project kickoff", "kick-re2@client.example", in_reply_to="kick-re@example.test",
        references="<kick@client.example> <kick-re@example.test>", date="Mon, 30 Nov 2026 11:00:00 +0000"), T0)
    append(webserver, "alice", "INBOX", message("Unrelated", "other@client.example"), T0)
    client, _ = http_session(webserver, "alice")
    with closing(client):
        r = client.get(f"/mail/1/thread?folder=INBOX&uid={last}")
        assert r.status_code == 200
        items = re.findall(r'<span class="folder">([^<]*)</span>\s*<span class="from">[^<]*</span>\s*'
                           r'<span class="subject">([^<]*)</span>', r.text)
        assert items == [("INBOX", "Project kickoff"), ("Sent", "Re: Project kickoff"),
                         ("INBOX", "Re: Project kickoff")], r.text
        assert "Unrelated" not in r.text


# ---------------------------------------------------------------- attachments

HOSTILE_NAME = "PLACEHOLDER.png"
# (decoded: 'evil"; filename=x.exe' CR LF 'Set-Cookie: a=b\..\x.html', as RFC 2231 lets a sender write it)
HOSTILE_2231 = b"filename*=utf-8''evil%22%3B%20filename%3Dx.exe%0D%0ASet-Cookie%3A%20a%3Db%5C..%5Cx.html"


def test_attachments_download_preview_and_hostile_types(webserver):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    raw = message("Files", "files@client.example", attachments=[
        (png, "image", "png", "photo.png"),
        (b"%PDF-1.4\n%%EOF\n", "application", "pdf", "cv.pdf"),
        (b"<script>alert(1)</script>plain words", "text", "html", "page.html"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image", "svg+xml", "logo.svg"),
        (b"<html><script>alert(2)</script></html>", "image", "png", HOSTILE_NAME),
    ])
    assert b'filename="PLACEHOLDER.png"' in raw
    raw = raw.replace(b'filename="PLACEHOLDER.png"', HOSTILE_2231)
    uid = append(webserver, "alice", "INBOX", raw, T0)
    client, _ = http_session(webserver, "alice")
    with closing(client):
        page = client.get(f"/mail/1/message?folder=INBOX&uid={uid}").text
        parts = [int(p) for p in re.findall(r'attachment\?folder=INBOX&amp;uid=\d+&amp;part=(\d+)"', page)]
        assert len(parts) == 5
        previews = re.findall(r'part=(\d+)&amp;inline=1"', page)
        assert len(previews) == 4       # not the SVG

        def get(part, inline):
            return client.get(f"/mail/1/attachment?folder=INBOX&uid={uid}&part={part}&inline={inline}")
        photo, pdf, html, svg, evil = parts
        for part in parts:      # downloads: always octet-stream, attachment, nosniff, sandboxed
            r = get(part, 0)
            assert r.headers["content-type"] == "application/octet-stream"
            assert r.headers["content-disposition"].startswith("attachment;")
            assert r.headers["x-content-type-options"] == "nosniff" and "sandbox" in r.headers["content-security-policy"]
        r = get(photo, 1)
        assert r.headers["content-type"] == "image/png" and r.content == png
        assert r.headers["content-disposition"].startswith("inline;") and "sandbox" in r.headers["content-security-policy"]
        r = get(pdf, 1)
        assert r.headers["content-type"] == "application/pdf" and "default-src 'none'" in r.headers["content-security-policy"]
        r = get(html, 1)        # text shown as text, never as a page
        assert r.headers["content-type"].startswith("text/plain") and "<script>" in r.text
        assert "sandbox" in r.headers["content-security-policy"]
        r = get(svg, 1)         # no preview for SVG (it can carry script): a download
        assert r.headers["content-type"] == "application/octet-stream"
        r = get(evil, 1)        # says PNG, is HTML: served as image/png with nosniff, sandboxed
        assert r.headers["content-type"] == "image/png" and r.headers["x-content-type-options"] == "nosniff"
        disposition = r.headers["content-disposition"]
        assert "\r" not in disposition and "\n" not in disposition and "set-cookie" not in {k.lower() for k in r.headers}
        assert 'filename="evil_' in disposition and "x.exe" not in disposition.split(";")[1].split('"')[0]
        assert get(99, 0).status_code == 404


# ---------------------------------------------------------------- images per sender, attachment to contact

def test_remote_images_per_sender_remembered(webserver):
    html = '<p>Look</p><img src="https://images.example/logo.png">'
    one = append(webserver, "alice", "INBOX", message("News 1", "news1@news.example",
                                                      sender="News <news@news.example>", html=html), T0)
    two = append(webserver, "alice", "INBOX", message("News 2", "news2@news.example",
                                                      sender="News <NEWS@news.example>", html=html), T0)
    client, token = http_session(webserver, "alice")
    with closing(client):
        first = client.get(f"/mail/1/message?folder=INBOX&uid={one}")
        assert "https:" not in first.headers["content-security-policy"] and "Always show images from" in first.text
        r = post(client, token, "/mail/1/image-senders", folder="INBOX", uid=one, allow="1")
        assert r.status_code == 303
        second = client.get(f"/mail/1/message?folder=INBOX&uid={two}")     # another message, same sender
        assert "https:" in second.headers["content-security-policy"] and "images.example/logo.png" in second.text
        assert "are always shown" in second.text
    other, other_token = http_session(webserver, "bob")      # per user: not bob's choice
    with closing(other):
        bob_uid = append(webserver, "bob", "INBOX", message("News 3", "news3@news.example",
                                                            sender="News <news@news.example>", html=html), T0)
        assert "https:" not in other.get(f"/mail/2/message?folder=INBOX&uid={bob_uid}"
                                         ).headers["content-security-policy"]
    client, token = http_session(webserver, "alice")
    with closing(client):
        post(client, token, "/mail/1/image-senders", folder="INBOX", uid=one, allow="0")
        assert "https:" not in client.get(f"/mail/1/message?folder=INBOX&uid={two}").headers["content-security-policy"]


def test_save_attachment_to_contact(webserver):
    resume = b"Erin Example\nSkills: photogrammetry, zymurgy\n"
    uid = append(webserver, "alice", "INBOX", message(
        "My resume", "resume@client.example", sender="Erin Example <erin@client.example>",
        attachments=[(resume, "text", "plain", "resume.txt")]), T0)
    client, token = http_session(webserver, "alice")
    with closing(client):
        r = post(client, token, "/mail/1/sender-contact", folder="INBOX", uid=uid)
        assert r.status_code == 303
        contact_id = int(r.headers["location"].rsplit("/", 1)[1])
        page = client.get(f"/mail/1/message?folder=INBOX&uid={uid}").text
        assert "Save to contact" in page and f'<option value="{contact_id}">Erin Example</option>' in page
        part = re.search(r'name="part" value="(\d+)"', page)[1]
        r = post(client, token, "/mail/1/attachment-contact", folder="INBOX", uid=uid, part=part, contact=contact_id)
        assert r.status_code == 303 and r.headers["location"] == f"/contacts/{contact_id}"
        assert "resume.txt" in client.get(f"/contacts/{contact_id}").text
        assert post(client, token, "/mail/1/attachment-contact", folder="INBOX", uid=uid, part=part,
                    contact=999999).status_code == 404
        assert post(client, token, "/mail/1/attachment-contact", folder="INBOX", uid=uid, part=99,
                    contact=contact_id).status_code == 404
        assert client.post("/mail/1/attachment-contact", data={"folder": "INBOX", "uid": uid, "part": part,
                                                               "contact": contact_id}).status_code == 403


# ---------------------------------------------------------------- another user's URLs

def test_bob_cannot_reach_alices_mail(webserver):
    uid = append(webserver, "alice", "INBOX", message("Alice private", "alice-private@client.example",
                                                      attachments=[(b"secret", "text", "plain", "s.txt")]), T0)
    client, token = http_session(webserver, "bob")
    with closing(client):
        for url in (f"/mail/1/list?folder=INBOX", "/mail/1/folders?folder=INBOX",
                    "/mail/1/search?folder=INBOX&subject=Alice", f"/mail/1/thread?folder=INBOX&uid={uid}",
                    f"/mail/1/attachment?folder=INBOX&uid={uid}&part=2&inline=1"):
            r = client.get(url)
            assert r.status_code == 404 and "Alice private" not in r.text and "secret" not in r.text, url
        for url, form in (("/mail/1/action", {"folder": "INBOX", "uid": uid, "do": "trash"}),
                          ("/mail/1/image-senders", {"folder": "INBOX", "uid": uid, "allow": "1"}),
                          ("/mail/1/attachment-contact", {"folder": "INBOX", "uid": uid, "part": 2, "contact": 1})):
            assert post(client, token, url, **form).status_code == 404, url
    assert find(webserver, "alice", "INBOX", "alice-private@client.example") == [uid]


# ---------------------------------------------------------------- in the browser

def test_keyboard_shortcuts_and_phone_layout(browser, webserver, tmp_path):
    for i, subject in enumerate(("Kb first", "Kb second", "Kb third", "Kb fourth")):
        append(webserver, "alice", "INBOX", message(subject, f"kb{i}@client.example"),
               datetime(2027, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=i))
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # (console errors aside: the compose pages are another part's, a 404 on this branch)
    try:
        log_in(page, webserver, "alice")
        page.goto(webserver.url + "/mail/1?folder=INBOX")
        page.wait_for_selector("#message-list tr[data-uid]")
        shot(page, tmp_path, "list")
        page.keyboard.press("j")
        page.keyboard.press("j")
        assert page.inner_text("#message-list tr.selected .subject") == "Kb third"
        page.keyboard.press("k")
        assert page.inner_text("#message-list tr.selected .subject") == "Kb fourth"
        page.keyboard.press("?")
        assert page.is_visible("#shortcut-help")
        shot(page, tmp_path, "help")
        page.keyboard.press("Escape")
        assert not page.is_visible("#shortcut-help")
        # The star flags over htmx, in place: the server has it.
        uid = int(page.get_attribute("#message-list tr.selected", "data-uid"))
        page.click(f"#msg-{uid} button.star")
        page.wait_for_selector(f"#msg-{uid}.flagged")
        assert "\\Flagged" in flags_of(webserver, "alice", "INBOX", uid)
        # '#' deletes the selected message: the row goes, the message is in Trash.
        page.click("h1")        # (focus off the star)
        page.keyboard.press("#")
        page.wait_for_selector(f"#msg-{uid}", state="detached")
        assert find(webserver, "alice", "Trash", "kb3@client.example")
        assert page.inner_text("#message-list tr.selected .subject") == "Kb third"
        third = page.get_attribute("#message-list tr.selected", "data-uid")
        page.keyboard.press("e")        # archive
        page.wait_for_selector(f"#msg-{third}", state="detached")
        assert find(webserver, "alice", "Archive", "kb2@client.example")
        assert page.inner_text("#message-list tr.selected .subject") == "Kb second"
        # '/' focuses the search; typing there is not a shortcut.
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.id") == "search-subject"
        page.keyboard.type("jk")
        assert page.input_value("#search-subject") == "jk"
        page.keyboard.press("Escape")
        page.keyboard.press("o")
        page.wait_for_url(re.compile(r"/mail/1/message\?"))
        assert page.inner_text("article.reading .subject") == "Kb second"
        shot(page, tmp_path, "message")
        # r / a / f / c go to the compose URLs of the contract.
        for key, expected in (("r", r"compose\?reply=\d+&folder=INBOX$"), ("a", r"reply_all=1$"),
                              ("f", r"compose\?forward=\d+&folder=INBOX$")):
            page.keyboard.press(key)
            page.wait_for_url(re.compile(expected))
            page.go_back()
            page.wait_for_selector("article.reading")
        page.keyboard.press("c")
        page.wait_for_url(re.compile(r"/mail/1/compose$"))
        # The phone: nothing wider than the screen, the list and the reading pane usable.
        page.set_viewport_size({"width": 390, "height": 844})
        for url in ("/mail/1?folder=INBOX", "/mail/1/search?folder=INBOX&subject=Kb"):
            page.goto(webserver.url + url)
            page.wait_for_selector("#message-list tr[data-uid]")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, url
            box = page.locator("#message-list tr[data-uid] td.subject").first.bounding_box()
            assert box["width"] > 200 and box["x"] + box["width"] <= 390
        shot(page, tmp_path, "list-phone")
        page.click("#message-list tr[data-uid] td.subject a >> nth=0")
        page.wait_for_selector("article.reading")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.locator("button.delete").bounding_box()["x"] + 10 < 390
        shot(page, tmp_path, "message-phone")
        assert errors == [], errors
    finally:
        context.close()


def test_reading_pane_attachments_and_conversation_in_the_browser(browser, webserver, tmp_path):
    first = append(webserver, "alice", "INBOX", message(
        "Budget 2027", "budget@client.example", date="Tue, 01 Dec 2026 09:00:00 +0000",
        attachments=[(b"col1,col2\n1,2\n", "text", "csv", "budget.csv"),
                     (b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, "image", "png", "chart.png")]), T0)
    append(webserver, "alice", "Sent", message("Re: Budget 2027", "budget-re@example.test",
                                               sender=f"Alice <alice@{DOMAIN}>", in_reply_to="budget@client.example",
                                               references="<budget@client.example>",
                                               date="Tue, 01 Dec 2026 10:00:00 +0000"), T0, r"(\Seen)")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        log_in(page, webserver, "alice")
        page.goto(f"{webserver.url}/mail/1/message?folder=INBOX&uid={first}")
        assert page.locator("ul.attachments a.preview").count() == 2
        shot(page, tmp_path, "attachments")
        with context.expect_page() as preview:
            page.click("ul.attachments a.preview >> nth=0")
        preview.value.wait_for_load_state()
        assert "col1,col2" in preview.value.inner_text("body")     # text shown as text, in a tab of its own
        preview.value.close()
        page.click("a.thread-link")
        page.wait_for_selector("ol.thread")
        assert page.locator("ol.thread li").count() == 2
        assert page.locator("ol.thread .folder").all_inner_texts() == ["INBOX", "Sent"]
        shot(page, tmp_path, "conversation")
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, tmp_path, "conversation-phone")
        page.goto(f"{webserver.url}/mail/1/message?folder=INBOX&uid={first}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, tmp_path, "attachments-phone")
        # "Always show images from" this sender, from inside the blocked-images note.
        promo = append(webserver, "alice", "INBOX", message(
            "Promo", "promo@shop.example", sender="Shop <shop@shop.example>",
            html='<p>Deals</p><img src="https://127.0.0.1:9/none.png">'), T0)
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(f"{webserver.url}/mail/1/message?folder=INBOX&uid={promo}")
        shot(page, tmp_path, "images-blocked")
        page.click("p.notice button:has-text('Always show images from shop@shop.example')")
        page.wait_for_selector("form.notice:has-text('are always shown')")
        shot(page, tmp_path, "images-sender-allowed")
    finally:
        context.close()
