"""The records pages in Debian's Chromium against a real `posthouse serve`
with the tracker on: a contact made from an email and its timeline (received
and sent), the original opened from the server after the message was moved
and "no longer there" after it was deleted; a PDF resume imported and found
by a word in it; the contacts list's filters; hostile names, tags and notes
inert; a forged cross-origin POST refused. Screenshots of each page go to
$POSTHOUSE_SCREENSHOTS or the test's tmp_path."""
from __future__ import annotations

import imaplib
import re
from datetime import datetime, timezone
from email.message import EmailMessage

import pytest
from sqlalchemy import update

from ..crm.docfiles import pdf
from .conftest import DOMAIN, PASSWORDS
from .records_helpers import crm_engine_of, shot, tracked, tracked_place, wait_until  # noqa: F401
from .test_pages import Elsewhere


@pytest.fixture(scope="module")
def elsewhere():
    e = Elsewhere()
    yield e
    e.close()


def mail(sender: str, to: str, subject: str, message_id: str, body: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{message_id}>"
    m["Date"] = "Fri, 04 Dec 2026 10:00:00 +0000"
    m.set_content(body)
    return bytes(m)


def imap_login(server, user: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    imap.login(user, PASSWORDS[user])
    return imap


def log_in(page, server, user: str) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("form.login button[type=submit]")
    page.wait_for_selector("header.top .who")


def uid_of(imap, message_id: str) -> str:
    _, data = imap.uid("SEARCH", None, "HEADER", "Message-ID", message_id)
    return data[0].split()[-1].decode()


def new_contact(page, server, name: str, email: str) -> str:
    """Made with the contacts page's form; the contact's URL."""
    page.goto(server.url + "/contacts")
    page.click("details.new-contact summary")
    page.fill("details.new-contact input[name=name]", name)
    page.fill("details.new-contact input[name=email]", email)
    page.click("details.new-contact button[type=submit]")
    page.wait_for_url(re.compile(r"/contacts/\d+$"))
    return page.url


def test_contact_from_email_timeline_and_the_original_moved_then_deleted(browser, tracked, tmp_path):
    tracked.deliver("alice", mail("Dana Doe <dana@prospect.example>", f"alice@{DOMAIN}", "Proposal for Q1",
                                  "proposal@prospect.example", "Dear Alice,\n\nplease find our proposal below.\n"))
    imap = imap_login(tracked, "alice")
    try:        # alice's answer, filed in Sent by her own mail client
        imap.append("Sent", r"(\Seen)", imaplib.Time2Internaldate(datetime.now(timezone.utc)),
                    mail(f"Alice <alice@{DOMAIN}>", "Dana Doe <dana@prospect.example>", "Re: Proposal for Q1",
                         "answer@example.test", "Thanks Dana, we will read it this week.\n"))
    finally:
        imap.logout()
    wait_until(lambda: tracked_place(tracked, "proposal@prospect.example"))
    wait_until(lambda: tracked_place(tracked, "answer@example.test"))
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, tracked, "alice")
        page.goto(tracked.url + "/mail/1?folder=INBOX")
        page.click("table.messages a:has-text('Proposal for Q1')")
        page.click("button:has-text('Create contact from sender')")
        page.wait_for_url(re.compile(r"/contacts/\d+$"))
        contact_url = page.url
        assert page.inner_text("section.records h1") == "Dana Doe"
        items = page.locator("ol.timeline li")
        assert items.count() == 2
        timeline = page.inner_text("ol.timeline")
        assert "Received" in timeline and "Sent" in timeline
        assert "Proposal for Q1" in timeline and "Re: Proposal for Q1" in timeline
        assert "please find our proposal" in timeline and "we will read it this week" in timeline   # snippets
        shot(page, tmp_path, "contact-timeline")
        # the original, from the server
        page.click("ol.timeline li.received a")
        page.wait_for_selector("article.reading")
        assert "please find our proposal below" in page.inner_text("pre.body")
        original_url = page.url
        # moved to Archive by another client: the tracker follows it, the original still opens
        imap = imap_login(tracked, "alice")
        try:
            imap.select("INBOX")
            typ, _ = imap.uid("MOVE", uid_of(imap, "proposal@prospect.example"), "Archive")
            assert typ == "OK"
        finally:
            imap.logout()
        wait_until(lambda: tracked_place(tracked, "proposal@prospect.example", "Archive"))
        wait_until(lambda: not tracked_place(tracked, "proposal@prospect.example", "INBOX"))
        page.goto(original_url)
        page.wait_for_selector("article.reading")
        assert "please find our proposal below" in page.inner_text("pre.body")
        shot(page, tmp_path, "original-after-move")
        # deleted (expunged): no longer there
        imap = imap_login(tracked, "alice")
        try:
            imap.select("Archive")
            imap.uid("STORE", uid_of(imap, "proposal@prospect.example"), "+FLAGS", r"(\Deleted)")
            imap.expunge()
        finally:
            imap.logout()
        page.goto(original_url)
        assert "No longer on the mail server" in page.inner_text("h1")
        assert "Proposal for Q1" in page.inner_text(".card")
        shot(page, tmp_path, "original-gone")
        page.click("text=Back to the contact")
        page.wait_for_url(contact_url)
        # once the tracker has seen it go, the timeline says so too (the activity stays)
        wait_until(lambda: not tracked_place(tracked, "proposal@prospect.example"))
        page.reload()
        assert "no longer on the server" in page.inner_text("ol.timeline li.received")
        assert "no longer on the server" not in page.inner_text("ol.timeline li.sent")
        page.set_viewport_size({"width": 390, "height": 844})
        shot(page, tmp_path, "contact-phone")
    finally:
        context.close()


def test_pdf_resume_imported_previewed_and_found_by_a_word(browser, tracked, tmp_path):
    resume = pdf(["Erin Example - Curriculum Vitae", "Platform engineer: Kubernetes, Terraform, Postgres",
                  "2019-2026 Zeppelinworks GmbH"])
    path = tmp_path / "erin-resume.pdf"
    path.write_bytes(resume)
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    try:
        log_in(page, tracked, "alice")
        contact_url = new_contact(page, tracked, "Erin Example", "erin@candidates.example")
        page.set_input_files("form.upload input[type=file]", str(path))
        page.click("form.upload button[type=submit]")
        page.wait_for_selector("ul.documents li")
        assert "erin-resume.pdf" in page.inner_text("ul.documents")
        assert "Kubernetes" in page.inner_text("ul.documents p.excerpt")      # the text's preview
        shot(page, tmp_path, "contact-documents")
        with page.expect_download() as download:
            page.click("ul.documents a:has-text('Download')")
        assert open(download.value.path(), "rb").read() == resume
        page.click("ul.documents a.name")
        page.wait_for_selector("pre.doc-text")
        assert "Zeppelinworks" in page.inner_text("pre.doc-text")
        shot(page, tmp_path, "document-preview")
        # the contact's search box, and the search over every document
        page.goto(contact_url)
        page.fill("form.doc-search input[name=dq]", "zeppelinworks")
        page.click("form.doc-search button")
        assert "erin-resume.pdf" in page.inner_text(".doc-hits")
        assert "Zeppelinworks" in page.inner_text(".doc-hits")
        page.fill("form.doc-search input[name=dq]", "cobol")
        page.click("form.doc-search button")
        assert "No document of this contact holds" in page.inner_text(".doc-hits")
        page.goto(tracked.url + "/contacts")
        page.fill(".records-head form.doc-search input[name=q]", "terraform")
        page.click(".records-head form.doc-search button")
        page.wait_for_url(re.compile(r"/documents\?q=terraform"))
        hits = page.inner_text("ul.doc-hits")
        assert "erin-resume.pdf" in hits and "Erin Example" in hits
        shot(page, tmp_path, "documents-search")
        page.click("ul.doc-hits a:has-text('Erin Example')")
        page.wait_for_url(contact_url)
        # a file that isn't a document: a clear refusal, nothing stored
        junk = tmp_path / "junk.pdf"
        junk.write_bytes(b"%PDF-1.4 this is not really a pdf" + bytes(range(256)))
        page.set_input_files("form.upload input[type=file]", str(junk))
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.click("form.upload button[type=submit]")
        assert answer.value.status == 422
        assert page.inner_text("h1") == "Can't do that" and "junk.pdf" in page.inner_text(".card p")
        page.goto(contact_url)
        assert page.locator("ul.documents li").count() == 1
    finally:
        context.close()


def test_contacts_filters(browser, tracked, tmp_path):
    from posthouse.crm.service import Crm
    from posthouse.crm.tables import contact_emails, contacts
    engine = crm_engine_of(tracked)
    try:
        crm = Crm(engine)
        fay = crm.add_contact(name="Fay Filter", emails=["fay@filterco.example"], tags=["lead"])
        gus = crm.add_contact(name="Gus Filter", emails=["gus@filterco.example"], tags=["customer"])
        hal = crm.add_contact(name="Hal Filter", emails=["hal@freelance.example"], tags=["lead"])
        crm.edit_contact(hal["id"], opted_out=True)
        with engine.begin() as conn:
            conn.execute(update(contact_emails).where(contact_emails.c.address == "gus@filterco.example")
                         .values(bouncing=True, bounce_reason="userunknown"))
            for c, when in ((fay, datetime(2026, 3, 1, tzinfo=timezone.utc)),
                            (gus, datetime(2026, 9, 1, tzinfo=timezone.utc))):
                conn.execute(update(contacts).where(contacts.c.id == c["id"]).values(last_contacted=when))
    finally:
        engine.dispose()
    context = browser.new_context()
    page = context.new_page()

    def names():
        return set(re.findall(r"\w+ Filter", page.inner_text("#contact-list")))
    try:
        log_in(page, tracked, "alice")
        page.goto(tracked.url + "/contacts?q=filter")
        assert names() == {"Fay Filter", "Gus Filter", "Hal Filter"}
        page.select_option("select[name=bouncing]", "yes")          # htmx: the list follows
        page.wait_for_url(re.compile(r"bouncing=yes"))
        wait_until(lambda: names() == {"Gus Filter"}, timeout=15)
        assert "bouncing" in page.inner_text("#contact-list")
        page.select_option("select[name=bouncing]", "")
        page.select_option("select[name=opted_out]", "yes")
        wait_until(lambda: names() == {"Hal Filter"}, timeout=15)
        page.select_option("select[name=opted_out]", "no")
        wait_until(lambda: names() == {"Fay Filter", "Gus Filter"}, timeout=15)
        page.select_option("select[name=opted_out]", "")
        page.fill("input[name=tag]", "lead")
        wait_until(lambda: names() == {"Fay Filter", "Hal Filter"}, timeout=15)
        page.fill("input[name=tag]", "")
        page.select_option("select[name=company]", label="Filterco")
        wait_until(lambda: names() == {"Fay Filter", "Gus Filter"}, timeout=15)
        shot(page, tmp_path, "contacts-filtered")
        page.set_viewport_size({"width": 390, "height": 844})
        shot(page, tmp_path, "contacts-phone")
        page.set_viewport_size({"width": 1280, "height": 720})
        # last contacted: from/to, the "to" day included
        page.goto(tracked.url + "/contacts?q=filter&contacted_from=2026-02-01&contacted_to=2026-03-01")
        assert names() == {"Fay Filter"}
        page.goto(tracked.url + "/contacts?q=filter&contacted_from=2026-04-01")
        assert names() == {"Gus Filter"}
        assert page.input_value("input[name=contacted_from]") == "2026-04-01"      # the form keeps the filter
        page.goto(tracked.url + "/contacts?q=filter&contacted_to=2025-01-01")
        assert "No contact matches" in page.inner_text("#contact-list")
        # the company page lists its contacts
        page.goto(tracked.url + "/companies?q=filterco")
        page.click("table.companies a:has-text('Filterco')")
        page.wait_for_url(re.compile(r"/companies/\d+$"))
        assert {"Fay Filter", "Gus Filter"} <= set(re.findall(r"\w+ Filter", page.inner_text("section.records")))
        shot(page, tmp_path, "company")
        page.goto(tracked.url + "/companies")
        shot(page, tmp_path, "companies")
    finally:
        context.close()


def test_hostile_names_tags_and_notes_are_inert(browser, tracked, tmp_path):
    hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        log_in(page, tracked, "alice")
        contact_url = new_contact(page, tracked, "Eve " + hostile, "eve@hostile.example")
        assert page.inner_text("section.records h1") == "Eve " + hostile        # shown as text
        page.click("dd.tags summary")
        page.fill("dd.tags input[name=tags]", "<svg onload=alert(3)>, \"'><script>alert(4)</script>")
        page.click("dd.tags button[type=submit]")
        page.wait_for_url(contact_url)
        assert "<svg onload=alert(3)>" in page.inner_text("dd.tags")
        page.fill("form.note-new textarea", "<script>alert(5)</script>\n<b onclick=alert(6)>bold?</b>")
        page.click("form.note-new button")
        page.wait_for_selector("ul.notes li")
        note = page.inner_text("ul.notes p.body")
        assert "<script>alert(5)</script>" in note and "<b onclick=alert(6)>bold?</b>" in note
        assert "alice" in page.inner_text("ul.notes .author")
        assert page.locator("ul.notes script, ul.notes b, section.records h1 img, dd.tags svg").count() == 0
        # edit, then delete, the note
        page.click("ul.notes details.note-edit summary")
        page.fill("ul.notes details.note-edit textarea", "calm now")
        page.click("ul.notes details.note-edit button")
        page.wait_for_selector("ul.notes li:has-text('calm now')")
        assert "edited" in page.inner_text("ul.notes .note-head")
        shot(page, tmp_path, "contact-notes")
        page.goto(tracked.url + "/contacts?q=eve")
        assert hostile in page.inner_text("#contact-list")
        page.goto(tracked.url + "/settings")
        page.fill("form.webhook-new input[name=url]", "https://hooks.example/\"><script>alert(7)</script>")
        page.click("form.webhook-new button")
        assert "<script>alert(7)</script>" in page.inner_text("table.webhooks")
        page.goto(contact_url)
        page.click("ul.notes form.inline button:has-text('Delete')")
        page.wait_for_url(re.compile(r"/contacts/\d+"))
        assert page.locator("ul.notes li").count() == 0
        assert dialogs == []
    finally:
        context.close()


def test_another_users_note_stays_theirs(tracked):
    from .records_helpers import http_session
    alice, token = http_session(tracked, "alice")
    bob, bob_token = http_session(tracked, "bob")
    try:
        url = alice.post("/contacts", data={"csrf": token, "name": "Shared Contact"}).headers["location"]
        alice.post(url + "/notes", data={"csrf": token, "body": "alice's own words"})
        page = bob.get(url).text               # the organisation's contact: bob reads it...
        assert "alice&#39;s own words" in page and "details class=\"note-edit\"" not in page
        note_id = re.search(r'id="note-(\d+)"', page)[1]
        # ...but can't change or delete alice's note
        assert bob.post(f"/notes/{note_id}", data={"csrf": bob_token, "body": "bob was here"}).status_code == 400
        assert bob.post(f"/notes/{note_id}/delete", data={"csrf": bob_token}).status_code == 400
        assert "alice&#39;s own words" in alice.get(url).text
    finally:
        alice.close()
        bob.close()


def test_forged_cross_origin_post_refused_in_the_browser(browser, tracked, elsewhere, tmp_path):
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, tracked, "alice")
        contact_url = new_contact(page, tracked, "Target Contact", "target@victim.example")
        leaked = page.get_attribute("form.note-new input[name=csrf]", "value")
        elsewhere.forge_page = (
            f'<form id="f" method="post" action="{contact_url}/notes">'
            f'<input name="csrf" value="{leaked}"><input name="body" value="forged note"></form>'
            f'<script>document.getElementById("f").submit()</script>').encode()
        page.goto(elsewhere.origin + "/forge")
        page.wait_for_url(contact_url + "/notes")
        assert "Refused" in page.inner_text("h1")
        shot(page, tmp_path, "forged-refused")
        page.goto(contact_url)
        assert "forged note" not in page.content()
    finally:
        context.close()


def test_settings_and_webhook_log_pages(browser, tracked, tmp_path):
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, tracked, "alice")
        page.goto(tracked.url + "/settings")
        assert f"alice@{DOMAIN}" in page.inner_text("ul.account-list")
        page.click("details.add-account summary")
        page.fill("form.grid input[name=imap]", f"127.0.0.1:{tracked.imap_port}")
        page.select_option("form.grid select[name=imap_tls]", "none")
        page.fill("form.grid input[name=login]", "bob")
        page.fill("form.grid input[name=password]", "wrong-password")
        page.click("form.grid button[type=submit]")
        page.wait_for_selector(".probe")
        assert "login" in page.inner_text(".probe .step") and "NO" in page.inner_text(".probe .text")
        assert page.input_value("form.grid input[name=login]") == "bob"       # kept, but not the password
        assert page.input_value("form.grid input[name=password]") == ""
        shot(page, tmp_path, "settings-probe-failed")
        page.fill("form.webhook-new input[name=url]", "https://hooks.example/records")
        page.uncheck("form.webhook-new input[name=event_bounce]")
        page.click("form.webhook-new button")
        secret = page.inner_text("code.secret")
        assert secret.startswith("whsec_")
        shot(page, tmp_path, "settings-webhook-secret")
        page.click("table.webhooks tr:has-text('hooks.example/records') a:has-text('Delivery log')")
        page.wait_for_url(re.compile(r"/settings/webhooks/\d+$"))
        assert "Nothing delivered yet" in page.inner_text("section.records")
        assert secret not in page.content()
        page.goto(tracked.url + "/settings")
        assert secret not in page.content()
        shot(page, tmp_path, "settings")
        page.set_viewport_size({"width": 390, "height": 844})
        shot(page, tmp_path, "settings-phone")
    finally:
        context.close()
