"""Private lists (per user and server-wide, addresses and domains, headers and
body) and privacy levels per account."""
from __future__ import annotations

import pytest

from posthouse.crm.errors import CrmError, NotFound
from posthouse.crm.service import Crm

from .factlib import counts, message, seen

OWNERS = {1: "alice", 2: "bob"}


def make(engine, levels=None) -> Crm:
    levels = levels or {}
    return Crm(engine, own_addresses=lambda: {"alice@ours.test", "bob@ours.test"},
               account_owner=OWNERS.get, privacy_level=lambda a: levels.get(a, "snippet"))


def test_private_address_in_the_headers_is_never_logged(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    crm.add_private("Doctor@Clinic.example", owner="alice")
    raw = message(to="alice@ours.test", cc="doctor@clinic.example")
    crm.apply([seen(raw, account=1)])
    assert crm.activities(contact_id=ann["id"]) == []
    assert counts(crm_engine)["messages"] == 0
    # Bob's list doesn't have it: his copy is logged.
    crm.apply([seen(raw, account=2)])
    [act] = crm.activities(contact_id=ann["id"])
    assert [p["account_id"] for p in act["places"]] == [2]


def test_private_domain_in_the_body_is_never_logged(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    crm.add_private("@lawyers.example")       # the whole server
    crm.apply([seen(message(body="Forwarding what j.doe@mail.Lawyers.example wrote"), account=1, uid=1),
               seen(message(message_id="m2@acme.com", body="see https://www.lawyers.example/case"), account=2, uid=2),
               seen(message(message_id="m3@acme.com", body="nothing about notlawyers.example here"), uid=3)])
    assert [a["thread"]["message_id"] for a in crm.activities(contact_id=ann["id"])] == ["m3@acme.com"]


def test_private_address_in_an_html_body(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    crm.add_private("secret@partner.example", owner="bob")
    html = message(body="<p>write to <a href='mailto:SECRET@partner.example'>us</a></p>").replace(
        b"text/plain", b"text/html")
    crm.apply([seen(html, account=2)])
    assert crm.activities(contact_id=ann["id"]) == []
    crm.apply([seen(html, account=1)])      # alice has no such entry
    assert len(crm.activities(contact_id=ann["id"])) == 1


def test_adding_an_entry_forgets_what_was_logged(crm_engine):
    crm = make(crm_engine)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    raw = message()
    crm.apply([seen(raw, account=1, uid=1), seen(raw, account=2, uid=1)])
    crm.add_private("acme.com", owner="alice")
    [act] = crm.activities(contact_id=ann["id"])
    assert [p["account_id"] for p in act["places"]] == [2]      # bob's copy stays
    crm.add_private("ann@acme.com")
    assert crm.activities(contact_id=ann["id"]) == []
    assert counts(crm_engine)["messages"] == 0
    assert crm.get_contact(ann["id"])["last_contacted"] is None
    # And seen again, it stays out.
    crm.apply([seen(raw, account=1, uid=1), seen(raw, account=2, uid=1)])
    assert counts(crm_engine)["messages"] == 0


def test_the_list_itself(crm_engine):
    crm = make(crm_engine)
    assert crm.add_private("X@Acme.COM", owner="alice") == {"entry": "x@acme.com", "owner": "alice"}
    crm.add_private("x@acme.com", owner="alice")        # twice: one entry
    crm.add_private("*.xn--bcher-kva.example")
    assert crm.list_private("alice") == [{"entry": "x@acme.com", "owner": "alice"}]
    assert crm.list_private() == [{"entry": "bücher.example", "owner": None}]
    crm.remove_private("x@acme.com", owner="alice")
    assert crm.list_private("alice") == []
    with pytest.raises(NotFound):
        crm.remove_private("x@acme.com", owner="alice")
    with pytest.raises(CrmError):
        crm.add_private("not an entry")


def test_privacy_levels(crm_engine):
    crm = make(crm_engine, levels={1: "metadata", 2: "snippet", 3: "full"})
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    body = "First line of the text. " * 30
    crm.apply([seen(message(body=body, message_id="a@x"), account=1),
               seen(message(body=body, message_id="b@x"), account=2),
               seen(message(body=body, message_id="c@x"), account=3)])
    by_id = {a["thread"]["message_id"]: a for a in crm.activities(contact_id=ann["id"])}
    meta, snip, full = by_id["a@x"], by_id["b@x"], by_id["c@x"]
    assert (meta["subject"], meta["snippet"], meta["text"]) == (None, None, None)
    assert meta["date"] and meta["participants"] and meta["direction"] == "received"
    assert snip["subject"] == "Hello" and snip["snippet"].startswith("First line") and snip["text"] is None
    assert len(snip["snippet"]) <= 201
    assert full["text"].startswith("First line of the text.") and full["subject"] == "Hello"
    # The same message seen where more may be stored: stored at the fuller level.
    crm.apply([seen(message(body=body, message_id="a@x"), account=3, uid=2)])
    upgraded = [a for a in crm.activities(contact_id=ann["id"]) if a["thread"]["message_id"] == "a@x"][0]
    assert upgraded["text"] and upgraded["subject"] == "Hello"


def test_wired_to_an_account_store(crm_engine):
    from types import SimpleNamespace

    class Accounts:     # the AccountStore's surface the CRM uses
        rows = {1: SimpleNamespace(owner="alice", privacy="full"), 2: SimpleNamespace(owner="bob", privacy="metadata")}

        def own_addresses(self):
            return {"alice@ours.test", "bob@ours.test"}

        def get(self, account_id):
            return self.rows.get(account_id)
    crm = Crm.for_accounts(crm_engine, Accounts())
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    crm.add_private("ann@acme.com", owner="bob")
    crm.apply([seen(message(message_id="1@a"), account=1), seen(message(message_id="2@a"), account=2),
               seen(message(message_id="3@a"), account=3)])
    acts = {a["thread"]["message_id"]: a for a in crm.activities(contact_id=ann["id"])}
    assert set(acts) == {"1@a", "3@a"}                  # bob's is private to him
    assert acts["1@a"]["text"] and acts["3@a"]["subject"] is None     # full; unknown account: metadata
    with pytest.raises(CrmError):
        crm.add_contact(name="Alice", emails=["alice@ours.test"])
