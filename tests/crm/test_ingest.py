"""The tracker's facts into contacts' activities: matching, own addresses,
idempotency, one activity per message across places, moves, resets, garbage."""
from __future__ import annotations

from dataclasses import dataclass, field


from posthouse.crm.service import Crm

from .factlib import (WHEN, Attachment, FolderRenamed, FolderReset, MessageChanged, MessageGone, counts, message,
                      seen)

OWN = {"me@ours.test", "colleague@ours.test"}


def make(engine, **kw) -> Crm:
    kw.setdefault("own_addresses", lambda: set(OWN))
    return Crm(engine, **kw)


def test_participants_match_contacts_in_any_case_and_idna_spelling(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann Buyer", emails=["ANN@Acme.com"])
    bob = crm.add_contact(name="Bob", emails=["bob@bücher.example"])
    crm.apply([seen(message(frm="Ann <ann@ACME.COM>", cc="Bob <BOB@xn--bcher-kva.example>"))])
    a = crm.activities(contact_id=ann["id"])
    b = crm.activities(contact_id=bob["id"])
    assert len(a) == 1 and len(b) == 1
    assert a[0]["direction"] == "received" and a[0]["subject"] == "Hello"
    assert a[0]["date"].startswith("2026-11-02T09:00:00")
    assert {"role": "cc", "name": "Bob", "address": "bob@bücher.example"} in a[0]["participants"]
    assert a[0]["places"] == [{"account_id": 1, "folder": "INBOX", "uidvalidity": 7, "uid": 1,
                               "message_id": "m1@acme.com", "emailid": None, "flags": [], "gone": False}]
    assert crm.get_contact(ann["id"])["last_contacted"].startswith("2026-11-02T09:00:00")


def test_sent_mail_and_bcc(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raw = message(frm="Me <me@ours.test>", to="x@elsewhere.org", message_id="s1@ours.test",
                  extra="Bcc: ann@acme.com")
    crm.apply([seen(raw, folder="Sent", special_use="\\Sent")])
    [act] = crm.activities(contact_id=ann["id"])
    assert act["direction"] == "sent"
    # From one of our addresses but found in INBOX: still sent.
    raw2 = message(frm="colleague@ours.test", to="ann@acme.com", message_id="s2@ours.test")
    crm.apply([seen(raw2, uid=2)])
    assert [a["direction"] for a in crm.activities(contact_id=ann["id"])] == ["sent", "sent"]


def test_own_addresses_are_never_contacts_nor_matched(crm_engine):
    crm = make(crm_engine)
    import pytest
    from posthouse.crm.errors import CrmError
    with pytest.raises(CrmError, match="own"):
        crm.add_contact(name="Me", emails=["ME@ours.test"])
    c = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    with pytest.raises(CrmError, match="own"):
        crm.edit_contact(c["id"], add_emails=["colleague@ours.test"])
    # An address that became ours after it was a contact's is no longer matched.
    crm.apply([seen(message(frm="ann@acme.com"))])
    assert len(crm.activities(contact_id=c["id"])) == 1
    OWN_NOW = OWN | {"ann@acme.com"}
    crm2 = Crm(crm_engine, own_addresses=lambda: OWN_NOW)
    crm2.apply([seen(message(frm="ann@acme.com", message_id="m2@acme.com"), uid=2)])
    assert len(crm2.activities(contact_id=c["id"])) == 1


def test_applying_the_same_facts_twice_changes_nothing(crm_engine):
    crm = make(crm_engine)
    crm.add_contact(name="Ann", emails=["ann@acme.com"])
    facts = [seen(message(), uid=1), seen(message(message_id="m2@acme.com", subject="Two"), uid=2),
             seen(message(message_id=None, subject="No id"), uid=3),
             MessageChanged(seen(message(), uid=1).place, ("\\Seen",), 5),
             MessageGone(seen(message(), uid=2).place)]
    crm.apply(facts)
    first = counts(crm_engine)
    acts = crm.activities()
    crm.apply(facts)
    assert counts(crm_engine) == first
    assert crm.activities() == acts
    assert first["messages"] == 3 and first["activities"] == 3


def test_one_activity_for_a_message_in_two_places_and_two_accounts(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raw = message(to="me@ours.test, colleague@ours.test")
    crm.apply([seen(raw, account=1, uid=10, emailid="E1")])
    crm.apply([seen(raw, account=2, uid=99, emailid="F9"), seen(raw, account=1, folder="Archive", uid=3)])
    [act] = crm.activities(contact_id=ann["id"])
    assert {(p["account_id"], p["folder"], p["uid"]) for p in act["places"]} == {
        (1, "INBOX", 10), (2, "INBOX", 99), (1, "Archive", 3)}
    assert counts(crm_engine)["messages"] == 1


def test_a_message_without_message_id_is_known_by_its_content_hash(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raw = message(message_id=None)
    crm.apply([seen(raw, uid=1), seen(raw, folder="Archive", uid=1)])
    [act] = crm.activities(contact_id=ann["id"])
    assert len(act["places"]) == 2 and act["thread"]["message_id"] is None


def test_move_keeps_the_activity_and_its_link(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raw = message()
    crm.apply([seen(raw, folder="INBOX", uid=5, emailid="E5")])
    # The tracker sees the copy gone from INBOX and a new one in Archive (either order).
    crm.apply([MessageGone(seen(raw, folder="INBOX", uid=5).place), seen(raw, folder="Archive", uid=1, emailid="E5")])
    [act] = crm.activities(contact_id=ann["id"])
    places = {(p["folder"], p["gone"]) for p in act["places"]}
    assert places == {("INBOX", True), ("Archive", False)}
    # Deleted everywhere: the activity stays, its link says gone.
    crm.apply([MessageGone(seen(raw, folder="Archive", uid=1).place)])
    [act] = crm.activities(contact_id=ann["id"])
    assert all(p["gone"] for p in act["places"])


def test_uidvalidity_reset_relinks_without_duplicates(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    one, two = message(), message(message_id=None, subject="no id")
    crm.apply([seen(one, uid=1, uidvalidity=7), seen(two, uid=2, uidvalidity=7)])
    crm.apply([FolderReset(1, "INBOX", 7, 8), seen(one, uid=1, uidvalidity=8), seen(two, uid=2, uidvalidity=8)])
    acts = crm.activities(contact_id=ann["id"])
    assert len(acts) == 2
    for act in acts:
        assert sorted((p["uidvalidity"], p["gone"]) for p in act["places"]) == [(7, True), (8, False)]
    c = counts(crm_engine)
    assert c["messages"] == 2 and c["activities"] == 2 and c["message_places"] == 4


def test_flags_change_and_folder_rename(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raw = message()
    crm.apply([seen(raw, folder="Work", uid=4)])
    crm.apply([MessageChanged(seen(raw, folder="Work", uid=4).place, ("\\Seen", "$Label1"), 12)])
    crm.apply([FolderRenamed(1, "Work", "Clients/Acme")])
    [act] = crm.activities(contact_id=ann["id"])
    assert act["places"][0]["folder"] == "Clients/Acme"
    assert act["places"][0]["flags"] == ["\\Seen", "$Label1"]
    # Facts about places never seen change nothing and fail nothing.
    crm.apply([MessageGone(seen(raw, folder="Nowhere", uid=1).place),
               MessageChanged(seen(raw, folder="Nowhere", uid=1).place, (), None)])


def test_attachments_and_thread(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raw = message(extra="In-Reply-To: <s1@ours.test>\r\nReferences: <s0@ours.test> <s1@ours.test>")
    crm.apply([seen(raw, attachments=[Attachment("cv.pdf", "application/pdf", 12345, "2")])])
    [act] = crm.activities(contact_id=ann["id"])
    assert act["attachments"] == [{"name": "cv.pdf", "content_type": "application/pdf", "size": 12345,
                                   "section": "2"}]
    assert act["thread"] == {"message_id": "m1@acme.com", "in_reply_to": "s1@ours.test",
                             "references": ["s0@ours.test", "s1@ours.test"]}
    assert crm.get_activity(act["id"]) == act


GARBAGE = [
    b"",
    b"\x00\x01\x02\xff\xfe binary junk",
    b"From: <<<@@@>>>\r\nTo: ,,,;;;\r\nDate: Mon, 99 Foo 99999 99:99\r\nSubject: =?bad?q?x\r\n"
    b"Content-Type: multipart/mixed\r\n\r\nno boundary",
    b"From: Ann <ann@acme.com>\r\nSubject: \xff\xfe\x00half\r\nContent-Type: text/plain; charset=nonsense\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!notbase64\x00\r\n",
    b"From: ann@acme.com\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
    b"Content-Type: message/rfc822\r\n\r\nFrom: ???\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>x\xe9</p>",
    b"Message-ID: <" + b"x" * 3000 + b"@long>\r\nFrom: ann@acme.com\r\n\r\nlong id",
    ("From: =?utf-8?b?" + "A" * 5000 + "?= <ann@acme.com>\r\n\r\n").encode(),
]


def test_garbage_messages_still_get_a_row(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    crm.apply([seen(raw, uid=i + 1) for i, raw in enumerate(GARBAGE)])
    c = counts(crm_engine)
    assert c["messages"] == len(GARBAGE) and c["message_places"] == len(GARBAGE)
    linked = crm.activities(contact_id=ann["id"])
    assert len(linked) == 4     # the ones whose From could be read
    for act in linked:
        for value in (act["subject"], act["snippet"]):
            assert value is None or "\x00" not in value


@dataclass
class Recipient:
    address: str
    status: str
    hard: bool | None
    reason: str | None


@dataclass
class Verdict:
    kind: str
    hard: bool | None = None
    reason: str | None = None
    recipients: list = field(default_factory=list)
    original_message_id: str | None = None

    def to_json(self, file=None):
        return {"kind": self.kind, "hard": self.hard, "reason": self.reason,
                "recipients": [r.__dict__ for r in self.recipients]}


def stand_in_classifier(raw: bytes) -> Verdict:
    """A tiny reply sorter for the tests (the real one is crm/classify)."""
    if b"Subject: Undelivered" in raw:
        return Verdict("bounce", True, "userunknown",
                       [Recipient("Gone@Acme.com", "5.1.1", True, "userunknown"),
                        Recipient("full@acme.com", "4.2.2", False, "mailboxfull")], "s1@ours.test")
    if b"Subject: unsubscribe" in raw:
        return Verdict("unsubscribe")
    if b"Subject: crash" in raw:
        raise RuntimeError("the sorter broke")
    return Verdict("reply")


def test_reply_sorting_bounce_unsubscribe(crm_engine):
    crm = make(crm_engine, classify=stand_in_classifier)
    gone = crm.add_contact(name="Gone", emails=["gone@acme.com"])
    full = crm.add_contact(name="Full", emails=["full@acme.com"])
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    bounce = message(frm="MAILER-DAEMON@mx.acme.com", subject="Undelivered Mail Returned to Sender",
                     message_id="b1@mx.acme.com")
    crm.apply([seen(bounce, uid=1), seen(message(subject="unsubscribe", message_id="u1@acme.com"), uid=2),
               seen(message(subject="crash", message_id="c1@acme.com"), uid=3),
               seen(message(frm="Me <me@ours.test>", to="ann@acme.com", subject="Undelivered",
                            message_id="s9@ours.test"), uid=4, folder="Sent", special_use="\\Sent")])
    g = crm.get_contact(gone["id"])
    assert g["emails"][0]["bouncing"] is True and g["emails"][0]["bounce_reason"] == "userunknown"
    assert crm.get_contact(full["id"])["emails"][0]["bouncing"] is False      # soft
    [act] = crm.activities(contact_id=gone["id"])
    assert act["kind"] == "bounce" and act["thread"]["in_reply_to"] == "s1@ours.test"
    assert crm.activities(kind="bounce", contact_id=full["id"])[0]["message"] == act["message"]
    assert crm.get_contact(ann["id"])["opted_out"] is True
    kinds = sorted((a["subject"], a["kind"]) for a in crm.activities(contact_id=ann["id"]))
    # The sorter's crash leaves the message unsorted; sent mail is never sorted.
    assert kinds == [("Undelivered", None), ("crash", None), ("unsubscribe", "unsubscribe")]
    # A contact made later for a bounced address learns of the bounce (and gets the activity).
    crm.delete_contact(gone["id"])
    again = crm.add_contact(name="Gone again", emails=["gone@acme.com"])
    assert again["emails"][0]["bouncing"] is True
    assert [a["kind"] for a in crm.activities(contact_id=again["id"])] == ["bounce"]


def test_two_trackers_applying_at_once_make_one_activity_per_message(crm_engine):
    import threading
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raws = [message(message_id=f"c{i}@acme.com") for i in range(20)]
    errors = []

    def tracker(account):
        try:
            for i, raw in enumerate(raws):
                crm.apply([seen(raw, account=account, uid=i + 1)])
        except Exception as e:      # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=tracker, args=(a,)) for a in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    acts = crm.activities(contact_id=ann["id"])
    assert len(acts) == 20 and all(len(a["places"]) == 2 for a in acts)


def test_bcc_counts_on_sent_mail_only(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    crm.apply([seen(message(frm="x@other.org", to="me@ours.test", extra="Bcc: ann@acme.com"))])
    assert crm.activities(contact_id=ann["id"]) == []


def test_private_address_inside_a_forwarded_message(crm_engine):
    crm = Crm(crm_engine, own_addresses=lambda: set(OWN))
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    crm.add_private("hidden@secret.example")
    raw = (b"From: ann@acme.com\r\nTo: me@ours.test\r\nSubject: Fwd\r\nMessage-ID: <f1@acme.com>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: text/plain\r\n\r\nsee below\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
           b"From: Hidden <hidden@secret.example>\r\nSubject: inner\r\n\r\ninner text\r\n--b--\r\n")
    crm.apply([seen(raw)])
    assert crm.activities(contact_id=ann["id"]) == []


def test_facts_in_one_batch_keep_their_order(crm_engine):
    levels = {1: "metadata", 2: "full"}
    crm = make(crm_engine, privacy_level=levels.get)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raw = message()
    crm.apply([seen(raw, account=1, uid=1), seen(raw, account=2, uid=1),          # the fuller copy counts
               MessageGone(seen(raw, account=1, uid=1).place),                      # gone after it was seen
               seen(raw, account=1, folder="Archive", uid=1),
               FolderReset(1, "Archive", 7, 9), seen(raw, account=1, folder="Archive", uid=1, uidvalidity=9)])
    [act] = crm.activities(contact_id=ann["id"])
    assert act["subject"] == "Hello" and act["text"]
    assert sorted((p["account_id"], p["folder"], p["uidvalidity"], p["gone"]) for p in act["places"]) == [
        (1, "Archive", 7, True), (1, "Archive", 9, False), (1, "INBOX", 7, True), (2, "INBOX", 7, False)]


def test_oversized_server_values_fail_nothing(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raw = message()
    crm.apply([seen(raw, folder="F" * 5000, uid=1), FolderRenamed(1, "INBOX", "G" * 5000),
               seen(raw, uid=2, emailid="E" * 5000, special_use="\\" + "X" * 100)])
    [act] = crm.activities(contact_id=ann["id"])
    assert [p["folder"] for p in act["places"]] == ["INBOX"]


def test_rename_onto_a_stale_folder_of_that_name(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    one, two = message(message_id="1@a"), message(message_id="2@a")
    crm.apply([seen(one, folder="Old", uid=1), seen(two, folder="New", uid=1),
               MessageGone(seen(two, folder="New", uid=1).place)])
    crm.apply([FolderRenamed(1, "Old", "New")])
    by_id = {a["thread"]["message_id"]: a["places"] for a in crm.activities(contact_id=ann["id"])}
    assert [(p["folder"], p["gone"]) for p in by_id["1@a"]] == [("New", False)]


def test_plus_detail_folding_when_configured(crm_engine):
    folding = make(crm_engine, fold_plus=True)
    ann = folding.add_contact(name="Ann", emails=["Ann+Sales@acme.com"])
    assert ann["emails"][0]["address"] == "ann@acme.com"
    folding.apply([seen(message(frm="ann+news@acme.com"))])
    assert len(folding.activities(contact_id=ann["id"])) == 1
    # Off (the default): the detail is part of the address.
    plain = make(crm_engine)
    bob = plain.add_contact(name="Bob", emails=["bob@acme.com"])
    plain.apply([seen(message(frm="bob+news@acme.com", message_id="b@acme.com"), uid=2)])
    assert plain.activities(contact_id=bob["id"]) == []


def test_garbage_in_server_strings(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raw = message(subject="=?unknown-8bit?q?=FF=00?= x")
    odd = "Bad\udcff\x00Folder"
    crm.apply([seen(raw, folder=odd, uid=1, attachments=[Attachment("cv\udcff\x00.pdf", "application/pdf", 1, "2")])])
    crm.apply([MessageChanged(seen(raw, folder=odd, uid=1).place, ("\\Seen", "$bad\udcff"), None),
               FolderRenamed(1, odd, odd + "2")])
    [act] = crm.activities(contact_id=ann["id"])
    assert act["places"][0]["flags"][0] == "\\Seen" and act["places"][0]["folder"].endswith("Folder2")
    assert "\x00" not in act["subject"] and "\x00" not in act["attachments"][0]["name"]
    crm.apply([MessageGone(seen(raw, folder=odd + "2", uid=1).place)])
    assert crm.activities(contact_id=ann["id"])[0]["places"][0]["gone"]


def test_a_date_from_the_future_is_not_believed(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    crm.apply([seen(message(date="Fri, 01 Jan 2038 00:00:00 +0000"), uid=1, internaldate=WHEN),
               seen(message(date="utter nonsense", message_id="2@acme.com"), uid=2)])
    dates = {a["date"] for a in crm.activities(contact_id=ann["id"])}
    assert dates == {"2026-11-02T09:30:00+00:00"}       # the arrival (INTERNALDATE) for both
    assert crm.get_contact(ann["id"])["last_contacted"] == "2026-11-02T09:30:00+00:00"
