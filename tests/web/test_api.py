"""The REST API's routes over stand-in services: what each answers, and what
one user may see of another's."""
from __future__ import annotations


def _contact(api, name, email):
    r = api.alice.post("/api/v1/contacts", json={"name": name, "emails": [email]})
    assert r.status_code == 201, r.text
    return r.json()


def test_contacts_add_find_change_merge_delete(api):
    ann = _contact(api, "Ann Smith", "ann@corp.example")
    assert ann["emails"][0]["address"] == "ann@corp.example" and ann["name"] == "Ann Smith"
    # Contacts are the organisation's: bob finds alice's contact by address.
    found = api.bob.get("/api/v1/contacts", params={"email": "ann@corp.example"}).json()
    assert [c["id"] for c in found] == [ann["id"]]
    assert api.alice.get("/api/v1/contacts", params={"email": "nobody@corp.example"}).json() == []
    r = api.alice.patch(f"/api/v1/contacts/{ann['id']}", json={"title": "CTO", "add_emails": ["ann@home.example"],
                                                                "company": "Corp", "tags": ["vip"]})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["title"] == "CTO" and changed["company"]["name"] == "Corp" and changed["tags"] == ["vip"]
    assert {e["address"] for e in changed["emails"]} == {"ann@corp.example", "ann@home.example"}
    assert changed["name"] == "Ann Smith"       # fields not given are left alone
    assert [c["id"] for c in api.alice.get("/api/v1/contacts", params={"tag": "vip"}).json()] == [ann["id"]]
    companies = api.alice.get("/api/v1/companies", params={"q": "corp"}).json()
    assert [c["name"] for c in companies] == ["Corp"]
    assert api.alice.get(f"/api/v1/companies/{companies[0]['id']}").json()["name"] == "Corp"
    other = _contact(api, "Ann S.", "asmith@corp.example")
    merged = api.alice.post(f"/api/v1/contacts/{ann['id']}/merge", json={"other_id": other["id"]})
    assert merged.status_code == 200 and "asmith@corp.example" in {e["address"] for e in merged.json()["emails"]}
    assert api.alice.get(f"/api/v1/contacts/{other['id']}").status_code == 404
    assert api.alice.post(f"/api/v1/contacts/{ann['id']}/merge", json={"other_id": ann["id"]}).status_code == 400
    assert api.alice.delete(f"/api/v1/contacts/{ann['id']}").status_code == 204
    r = api.alice.get(f"/api/v1/contacts/{ann['id']}")
    assert r.status_code == 404 and r.json() == {"error": f"no contact {ann['id']}"}


def test_the_crms_refusal_is_a_400_with_its_reason(api):
    _contact(api, "Dup", "dup@corp.example")
    r = api.alice.post("/api/v1/contacts", json={"name": "Dup 2", "emails": ["dup@corp.example"]})
    assert r.status_code == 400 and "already" in r.json()["error"]


def test_unknown_ids_are_404(api):
    for path in ("/api/v1/contacts/999999", "/api/v1/contacts/999999/activities", "/api/v1/activities/999999",
                 "/api/v1/activities/999999/message", "/api/v1/companies/999999", "/api/v1/accounts/999999",
                 "/api/v1/documents/999999", "/api/v1/documents/999999/content",
                 "/api/v1/contacts/999999/documents"):
        r = api.alice.get(path)
        assert r.status_code == 404 and "error" in r.json(), (path, r.text)
    assert api.alice.patch("/api/v1/contacts/999999", json={"title": "x"}).status_code == 404
    assert api.alice.delete("/api/v1/contacts/999999").status_code == 404
    assert api.alice.post("/api/v1/contacts/999999/merge", json={"other_id": 1}).status_code == 404


def test_activities_of_a_contact_only_through_the_callers_own_accounts(api):
    carl = _contact(api, "Carl", "carl@corp.example")
    shared = api.crm.log(carl["id"], "Offer", [(1, "INBOX", 10), (2, "INBOX", 20)])
    alices = api.crm.log(carl["id"], "Interview", [(1, "Sent", 11)], direction="sent")
    bobs = api.crm.log(carl["id"], "Private to Bob", [(2, "INBOX", 21)])
    mine = api.alice.get(f"/api/v1/contacts/{carl['id']}/activities").json()
    assert [a["subject"] for a in mine] == ["Interview", "Offer"]
    assert mine[0]["direction"] == "sent" and mine[0]["date"].startswith("2026-12-01")
    # Only alice's own places of the shared message are shown to her.
    assert [p["account_id"] for p in mine[1]["places"]] == [1]
    assert [a["subject"] for a in api.bob.get(f"/api/v1/contacts/{carl['id']}/activities").json()] \
        == ["Private to Bob", "Offer"]
    assert api.bob.get(f"/api/v1/activities/{alices['id']}").status_code == 404
    assert api.bob.get(f"/api/v1/activities/{alices['id']}/message").status_code == 404
    assert api.bob.post(f"/api/v1/activities/{alices['id']}/sender-contact").status_code == 404
    assert api.alice.get(f"/api/v1/activities/{bobs['id']}").status_code == 404
    assert api.alice.get(f"/api/v1/activities/{shared['id']}").json()["places"][0]["account_id"] == 1
    page = api.alice.get("/api/v1/activities", params={"contact_id": carl["id"], "limit": 1, "offset": 1}).json()
    assert [a["subject"] for a in page] == ["Offer"]
    assert api.alice.get("/api/v1/activities", params={"kind": "bounce"}).json() == []


def test_the_original_message_is_fetched_live_and_410_once_gone(api):
    dan = _contact(api, "Dan", "dan@corp.example")
    raw = b"From: dan@corp.example\r\nSubject: Hi\r\n\r\nHello\r\n"
    a = api.crm.log(dan["id"], "Hi", [(2, "INBOX", 30), (1, "Archive", 31)])
    api.originals.messages[(1, "Archive", 31)] = raw
    r = api.alice.get(f"/api/v1/activities/{a['id']}/message")
    assert r.status_code == 200 and r.content == raw
    assert r.headers["content-type"].startswith("message/rfc822")
    # Bob's copy is never fetched for alice, nor alice's for bob.
    assert all(p["account_id"] == 1 for p in api.originals.asked)
    assert api.bob.get(f"/api/v1/activities/{a['id']}/message").status_code == 410
    assert all(p["account_id"] == 2 for p in api.originals.asked[1:])
    # Deleted on the server since: 410 with a JSON error saying so.
    del api.originals.messages[(1, "Archive", 31)]
    r = api.alice.get(f"/api/v1/activities/{a['id']}/message")
    assert r.status_code == 410 and "no longer on the mail server" in r.json()["error"]
    # Known to be gone (the tracker saw it expunged): not even asked for.
    gone = api.crm.log(dan["id"], "Gone", [(1, "INBOX", 32, True)])
    asked = len(api.originals.asked)
    assert api.alice.get(f"/api/v1/activities/{gone['id']}/message").status_code == 410
    assert len(api.originals.asked) == asked
    # A server that can't be reached is not "gone": 502, saying why.
    api.originals.broken.add(1)
    try:
        r = api.alice.get(f"/api/v1/activities/{a['id']}/message")
        assert r.status_code == 502 and "connection refused" in r.json()["error"]
    finally:
        api.originals.broken.discard(1)


def test_accounts_are_the_callers_own_and_never_show_a_secret(api):
    r = api.alice.get("/api/v1/accounts")
    assert r.status_code == 200
    accounts = r.json()
    assert sorted(a["id"] for a in accounts) == [1, 3] and all(a["owner"] == "alice" for a in accounts)
    assert accounts[0]["status"] == {"messages_done": accounts[0]["id"]}
    assert "hunter2" not in r.text and "secret" not in r.text
    assert api.alice.get("/api/v1/accounts/1").json()["addresses"] == ["alice@example.com"]
    assert api.bob.get("/api/v1/accounts/1").status_code == 404
    assert [a["id"] for a in api.bob.get("/api/v1/accounts").json()] == [2]


def test_documents_upload_list_search_download_delete(api):
    eve = _contact(api, "Eve", "eve@corp.example")
    resume = b"Eve Example\nSkills: Rust, Postgres, IMAP\n"
    r = api.alice.post(f"/api/v1/contacts/{eve['id']}/documents",
                       files={"file": ("resume.txt", resume, "text/plain")})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["filename"] == "resume.txt" and doc["size"] == len(resume) and doc["contact_id"] == eve["id"]
    assert [d["id"] for d in api.bob.get(f"/api/v1/contacts/{eve['id']}/documents").json()] == [doc["id"]]
    hits = api.alice.get("/api/v1/documents", params={"q": "postgres imap"}).json()
    assert [h["id"] for h in hits] == [doc["id"]] and hits[0]["contact_id"] == eve["id"]
    assert api.alice.get("/api/v1/documents", params={"q": "cobol"}).json() == []
    got = api.alice.get(f"/api/v1/documents/{doc['id']}/content")
    assert got.content == resume and "attachment" in got.headers["content-disposition"]
    bad = api.alice.post(f"/api/v1/contacts/{eve['id']}/documents",
                         files={"file": ("cv.pdf", b"%PDF-1.4 truncated", "application/pdf")})
    assert bad.status_code == 422 and "not a readable PDF" in bad.json()["error"]
    assert api.alice.post(f"/api/v1/contacts/{eve['id']}/documents").status_code == 422     # no file
    assert api.alice.delete(f"/api/v1/documents/{doc['id']}").status_code == 204
    assert api.alice.get(f"/api/v1/documents/{doc['id']}").status_code == 404


def test_send_from_the_callers_own_account_only(api):
    message = {"account_id": 1, "to": ["carl@corp.example"], "subject": "Offer", "text": "Hello",
               "attachments": [{"filename": "a.txt", "content_type": "text/plain", "content_base64": "aGk="}]}
    r = api.alice.post("/api/v1/send", json=message)
    assert r.status_code == 200, r.text
    assert r.json()["message_id"].startswith("<sent") and r.json()["appended"]["folder"] == "Sent"
    assert api.sent[-1][2] == [("a.txt", "text/plain", b"hi")]
    assert api.bob.post("/api/v1/send", json=message).status_code == 404
    assert api.alice.post("/api/v1/send", json={**message, "subject": "a\r\nBcc: x@evil.example"}).status_code == 422
    assert api.alice.post("/api/v1/send", json={**message, "to": ["not an address"]}).status_code == 422
    assert api.alice.post("/api/v1/send", json={**message, "from_address": "bob@example.com"}).status_code == 400
    r = api.alice.post("/api/v1/send", json={**message, "attachments": [{"filename": "a", "content_base64": "!!"}]})
    assert r.status_code == 422 and "base64" in r.json()["error"]


def test_classify_a_raw_message(api):
    bounce = (b"From: MAILER-DAEMON@mx.example\r\nContent-Type: multipart/report; report-type=delivery-status;"
              b" boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--\r\n")
    r = api.alice.post("/api/v1/classify", content=bounce, headers={"Content-Type": "message/rfc822"})
    assert r.status_code == 200 and r.json()["kind"] == "bounce"
    r = api.alice.post("/api/v1/classify", content=b"")
    assert r.status_code == 400 and "empty" in r.json()["error"]


def test_a_contact_from_a_messages_sender(api):
    fay = _contact(api, "Fay", "fay@corp.example")
    a = api.crm.log(fay["id"], "Intro", [(1, "INBOX", 40)])
    r = api.alice.post(f"/api/v1/activities/{a['id']}/sender-contact")
    assert r.status_code == 201 and r.json()["emails"][0]["address"] == "x@example.org", r.text
    again = api.alice.post(f"/api/v1/activities/{a['id']}/sender-contact")
    assert again.status_code == 400 and "already" in again.json()["error"]


def test_private_lists_are_the_callers_own_plus_the_servers(api):
    api.crm.add_private("hr.example", owner=None)       # the server's (set with `posthouse private`)
    r = api.alice.post("/api/v1/private", json={"entry": "Doctor@Clinic.example"})
    assert r.status_code == 201 and r.json() == {"entry": "doctor@clinic.example", "owner": "alice"}
    assert api.alice.get("/api/v1/private").json() == [{"entry": "doctor@clinic.example", "owner": "alice"},
                                                       {"entry": "hr.example", "owner": None}]
    assert api.bob.get("/api/v1/private").json() == [{"entry": "hr.example", "owner": None}]
    assert api.bob.delete("/api/v1/private", params={"entry": "doctor@clinic.example"}).status_code == 404
    assert api.alice.delete("/api/v1/private", params={"entry": "hr.example"}).status_code == 404   # not hers
    assert api.alice.delete("/api/v1/private", params={"entry": "doctor@clinic.example"}).status_code == 204
    assert api.alice.post("/api/v1/private", json={"entry": "nodot"}).status_code == 400
    assert api.alice.post("/api/v1/private", json={"entry": "a\nb.example"}).status_code == 422
