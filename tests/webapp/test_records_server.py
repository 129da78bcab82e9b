"""The records pages over HTTP against a real `posthouse serve` (tracker on):
settings (accounts with status, privacy, remove, add with the connection
test; the private list), webhooks end to end (a real receiver on 127.0.0.1:
signed, retried, logged; scoped to their owner), forged and cross-user
requests refused, bad input answered with a clear error."""
from __future__ import annotations

import json
import re
import smtplib
from contextlib import closing
from email.message import EmailMessage

from posthouse.webhooks.signing import verify

from ..webhooks.receiver import Receiver
from .conftest import DOMAIN, free_port
from .records_helpers import http_session, tracked, wait_until  # noqa: F401  (tracked: the fixture)


def mail(sender: str, to: str, subject: str, message_id: str, body: str = "Hello there.\n") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{message_id}>"
    m["Date"] = "Fri, 04 Dec 2026 10:00:00 +0000"
    m.set_content(body)
    return bytes(m)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]


def test_settings_accounts_private_list_and_connection_test(tracked):
    client, token = http_session(tracked, "alice")
    with closing(client):
        page = client.get("/settings")
        assert page.status_code == 200
        assert f"alice@{DOMAIN}" in page.text and "this server" in page.text
        # an account the tracker can't log in to: "needs attention", and why
        from posthouse.accounts.store import AccountStore
        from posthouse.config import load_config
        from .records_helpers import crm_engine_of
        engine = crm_engine_of(tracked)
        try:
            store = AccountStore(engine, load_config(tracked.config).data_dir)
            store.set_state(1, "needs_attention", "login refused: NO [AUTHENTICATIONFAILED] <b>bad</b> password")
            page = client.get("/settings").text
            store.set_state(1, "active", "")
        finally:
            engine.dispose()
        assert '<span class="badge warn">needs attention</span>' in page
        assert "login refused: NO [AUTHENTICATIONFAILED] &lt;b&gt;bad&lt;/b&gt; password" in page
        # the privacy level
        r = client.post("/settings/accounts/1/privacy", data={"csrf": token, "privacy": "full"})
        assert r.status_code == 303
        assert re.search(r'<option value="full" selected>', client.get("/settings").text)
        assert client.post("/settings/accounts/1/privacy", data={"csrf": token, "privacy": "everything"}
                           ).status_code == 422
        # add: a wrong password on our own IMAP: the login step, in the server's words
        r = client.post("/settings/accounts", data={
            "csrf": token, "imap": f"127.0.0.1:{tracked.imap_port}", "imap_tls": "none", "login": "bob",
            "password": "not-the-password", "privacy": "snippet"})
        assert r.status_code == 422, r.text
        assert re.search(r'<span class="step">login</span>: <span class="text">bob refused: the server said: NO',
                         r.text), r.text[-3000:]
        assert "not-the-password" not in r.text         # the password is never echoed
        # nothing listening: the tcp step
        r = client.post("/settings/accounts", data={
            "csrf": token, "imap": f"127.0.0.1:{free_port()}", "imap_tls": "none", "login": "alice",
            "password": "x"})
        assert r.status_code == 422 and '<span class="step">tcp</span>' in r.text
        # garbage in the form: a clear error, not a crash
        for bad in ({"imap": "", "login": "a", "password": "p"}, {"imap": "host:99999", "login": "a", "password": "p"},
                    {"imap": "h", "login": "", "password": "p"}, {"imap": "h", "login": "a", "password": ""},
                    {"imap": "h", "login": "a", "password": "p", "imap_tls": "sometimes"},
                    {"imap": "h", "login": "a", "password": "p", "addresses": "no-at-sign"},
                    {"imap": "h", "login": "a", "password": "p", "trust_fingerprint": "zz"},
                    {"imap": "h\x00", "login": "a", "password": "p"}):
            r = client.post("/settings/accounts", data={"csrf": token, **bad})
            assert r.status_code == 422 and 'class="error"' in r.text, (bad, r.status_code)
        # the right password (another mailbox alice may read): tested, then saved
        r = client.post("/settings/accounts", data={
            "csrf": token, "imap": f"127.0.0.1:{tracked.imap_port}", "imap_tls": "none", "login": "bob",
            "password": "bob-pw-2", "addresses": "shared-box@partner.example"})
        assert r.status_code == 303, r.text[-2000:]
        page = client.get("/settings").text
        added = [int(i) for i in re.findall(r'id="account-(\d+)"', page)]
        assert len(added) == 2 and f"bob at 127.0.0.1:{tracked.imap_port}" in page
        r = client.post("/settings/accounts", data={       # the same again: refused
            "csrf": token, "imap": f"127.0.0.1:{tracked.imap_port}", "imap_tls": "none", "login": "bob",
            "password": "bob-pw-2"})
        assert r.status_code == 409 and "already have that account" in r.text
        assert client.post(f"/settings/accounts/{max(added)}/remove", data={"csrf": token}).status_code == 303
        assert len(re.findall(r'id="account-(\d+)"', client.get("/settings").text)) == 1
        # the private list, per user
        assert client.post("/settings/private", data={"csrf": token, "entry": "Doctor@Clinic.example"}
                           ).status_code == 303
        assert client.post("/settings/private", data={"csrf": token, "entry": "family.example"}).status_code == 303
        page = client.get("/settings").text
        assert "<code>doctor@clinic.example</code>" in page and "<code>family.example</code>" in page
        r = client.post("/settings/private", data={"csrf": token, "entry": "not an address at all"})
        assert r.status_code == 422 and 'class="error"' in r.text
        assert client.post("/settings/private/remove", data={"csrf": token, "entry": "family.example"}
                           ).status_code == 303
        assert "<code>family.example</code>" not in client.get("/settings").text
        assert client.post("/settings/private/remove", data={"csrf": token, "entry": "family.example"}
                           ).status_code == 404
    bob, bob_token = http_session(tracked, "bob")
    with closing(bob):
        page = bob.get("/settings").text
        assert "doctor@clinic.example" not in page and f"alice@{DOMAIN}" not in page   # alice's, not bob's
        for url, form in (("/settings/accounts/1/privacy", {"privacy": "metadata"}),
                          ("/settings/accounts/1/remove", {})):
            assert bob.post(url, data={"csrf": bob_token, **form}).status_code == 404
        # bob's own Posthouse mailbox: removed, then connected again from the page
        assert "Connect my Posthouse mailbox" not in page
        assert bob.post("/settings/accounts/2/remove", data={"csrf": bob_token}).status_code == 303
        assert "Connect my Posthouse mailbox" in bob.get("/settings").text
        r = bob.post("/settings/accounts/local", data={"csrf": bob_token, "privacy": "metadata"})
        assert r.status_code == 303, r.text[-2000:]
        page = bob.get("/settings").text
        assert f"bob@{DOMAIN}" in page and "this server" in page and "Connect my Posthouse mailbox" not in page
        assert bob.post("/settings/accounts/local", data={"csrf": bob_token}).status_code == 409
    client, _ = http_session(tracked, "alice")
    with closing(client):
        assert re.search(r'<option value="full" selected>', client.get("/settings").text)    # unchanged by bob


def test_forged_and_cross_origin_posts_refused(tracked):
    client, token = http_session(tracked, "alice")
    with closing(client):
        for url, form in (("/contacts", {"name": "Forged"}), ("/settings/private", {"entry": "x@forged.example"}),
                          ("/settings/webhooks", {"url": "https://forged.example/", "event_reply": "on"}),
                          ("/settings/accounts/1/remove", {}), ("/contacts/1/notes", {"body": "forged"})):
            assert client.post(url, data=form).status_code == 403, url                         # no token
            assert client.post(url, data={**form, "csrf": "x" * 43}).status_code == 403, url   # a wrong one
            assert client.post(url, data={**form, "csrf": token},
                               headers={"Origin": "http://evil.example"}).status_code == 403, url
            assert client.post(url, data={**form, "csrf": token},
                               headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403, url
        page = client.get("/settings").text
        assert "forged" not in page.lower() and f"alice@{DOMAIN}" in page
        assert "Forged" not in client.get("/contacts").text


def test_webhooks_signed_retried_logged_and_scoped(tracked):
    receiver = Receiver(statuses=(500, 502, 200))       # fails twice, then takes it
    bobs = Receiver()
    alice, token = http_session(tracked, "alice")
    bob, bob_token = http_session(tracked, "bob")
    try:
        # URLs checked; the secret shown once
        for bad in ("javascript:alert(1)", "ftp://x.example/", "http://user:pw@x.example/", "not a url"):
            r = alice.post("/settings/webhooks", data={"csrf": token, "url": bad, "event_reply": "on"})
            assert r.status_code == 422 and 'class="error"' in r.text, bad
        r = alice.post("/settings/webhooks", data={"csrf": token, "url": receiver.url, "event_activity_created": "on"})
        assert r.status_code == 200
        secret = re.search(r'<code class="secret">([^<]+)</code>', r.text)[1]
        hook_id = int(re.search(r'id="webhook-(\d+)"', r.text)[1])
        assert secret not in alice.get("/settings").text and secret not in alice.get(f"/settings/webhooks/{hook_id}").text
        r = bob.post("/settings/webhooks", data={"csrf": bob_token, "url": bobs.url, "event_activity_created": "on",
                                                 "event_reply": "on"})
        bob_hook = int(re.search(r'id="webhook-(\d+)"', r.text)[1])
        # bob can't see or delete alice's webhook
        assert bob.get(f"/settings/webhooks/{hook_id}").status_code == 404
        assert bob.post(f"/settings/webhooks/{hook_id}/delete", data={"csrf": bob_token}).status_code == 404
        assert receiver.url not in bob.get("/settings").text
        # a contact, then mail from it to alice: the tracker logs an activity -> alice's webhook
        r = alice.post("/contacts", data={"csrf": token, "name": "Hook Sender", "email": "hook@partner.example"})
        assert r.status_code == 303
        with smtplib.LMTP("127.0.0.1", tracked.lmtp_port, timeout=30) as lmtp:
            lmtp.sendmail("hook@partner.example", [f"alice@{DOMAIN}"],
                          mail("Hook Sender <hook@partner.example>", f"alice@{DOMAIN}", "Ping", "ping@partner.example"))
        assert receiver.wait_for(3, timeout=90), receiver.received
        headers, body = receiver.received[-1]
        assert verify(secret, headers["x-posthouse-timestamp"], body, headers["x-posthouse-signature"])
        event = json.loads(body)
        assert event["type"] == "activity_created" and headers["x-posthouse-event"] == "activity_created"
        assert event["message_ids"] == ["ping@partner.example"] and len(event["contact_ids"]) == 1

        def logged():
            page = alice.get(f"/settings/webhooks/{hook_id}").text
            return page if 'class="delivery delivered"' in page else None
        page = wait_until(logged, timeout=30)
        row = re.search(r'<tr class="delivery delivered".*?</tr>', page, re.S)[0]
        assert re.search(r'<td class="attempts">3</td>', row) and '<td class="code">200</td>' in row
        # bob's webhook heard nothing of alice's mail
        assert bobs.received == []
        assert "Nothing delivered yet" in bob.get(f"/settings/webhooks/{bob_hook}").text
        assert alice.post(f"/settings/webhooks/{hook_id}/delete", data={"csrf": token}).status_code == 303
        assert alice.get(f"/settings/webhooks/{hook_id}").status_code == 404
    finally:
        alice.close()
        bob.close()
        receiver.close()
        bobs.close()


def test_pages_answer_bad_input_with_a_clear_error(tracked):
    client, token = http_session(tracked, "alice")
    with closing(client):
        for url in ("/contacts?contacted_from=yesterday", "/contacts?bouncing=maybe", "/contacts?page=0",
                    "/contacts?company=-1", "/contacts?company=x", "/contacts?q=%00", "/contacts/0", "/contacts/99999999999999999999",
                    "/companies/abc", "/companies?page=0", "/documents/0/preview", "/settings/webhooks/0"):
            r = client.get(url)
            assert r.status_code in (404, 422) and "text/html" in r.headers["content-type"], (url, r.status_code)
        for edge in ("contacted_from=0001-01-01&contacted_to=9999-12-31", "contacted_from=9999-12-31",
                     "company=9999999999999999", "page=1000000&q=%25_"):
            assert client.get("/contacts?" + edge).status_code == 200, edge
        r = client.get("/contacts?contacted_from=2026-05-01&contacted_to=2026-01-01")
        assert r.status_code == 422 and "after" in r.text
        for url in ("/contacts/424242", "/companies/424242", "/documents/424242/preview"):
            assert client.get(url).status_code == 404, url
        assert client.post("/contacts/424242/notes", data={"csrf": token, "body": "x"}).status_code == 404
        assert client.post("/notes/424242", data={"csrf": token, "body": "x"}).status_code == 404
        assert client.post("/contacts", data={"csrf": token, "name": "", "email": ""}).status_code == 400
        assert client.post("/contacts", data={"csrf": token, "name": "", "email": "garbage"}).status_code == 400
