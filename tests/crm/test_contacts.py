"""Contacts and companies: CRUD, companies from domains, retro-linking,
merging, a contact from a message's sender."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from posthouse.crm import tables
from posthouse.crm.errors import CrmError, NotFound
from posthouse.crm.service import Crm

from .factlib import counts, message, seen


def make(engine, **kw) -> Crm:
    return Crm(engine, own_addresses=lambda: {"me@ours.test"}, **kw)


def test_add_get_find_edit_delete(crm_engine):
    crm = make(crm_engine)
    c = crm.add_contact(name="Doe, Jane", emails=["Jane@Acme.com", "jane.doe@gmail.com"], phone="+1 555",
                        title="CTO", tags=["lead", "vip", "lead"], notes="met at a fair")
    assert c["first_name"] == "Jane" and c["last_name"] == "Doe"
    assert [e["address"] for e in c["emails"]] == ["jane@acme.com", "jane.doe@gmail.com"]
    assert c["company"]["name"] == "Acme" and c["tags"] == ["lead", "vip"]
    assert c["created_at"] and c["last_contacted"] is None and c["opted_out"] is False
    assert crm.get_contact(c["id"]) == c
    assert crm.find_contacts(email="JANE@acme.COM") == [c]
    assert crm.find_contacts(email="garbage") == []
    assert crm.find_contacts(tag="vip") == [c]
    assert crm.find_contacts(q="acme") == [c] and crm.find_contacts(q="jane") == [c]
    assert crm.find_contacts(q="JANE") == [c] and crm.find_contacts(q="j_ne") == [] and crm.find_contacts(q="%") == []
    assert crm.find_contacts(company_id=c["company"]["id"]) == [c]
    edited = crm.edit_contact(c["id"], name="Jane Roe", add_emails=["jr@acme.com"], remove_emails=["jane.doe@gmail.com"],
                              tags=["customer"], opted_out=True, company=None)
    assert (edited["first_name"], edited["last_name"]) == ("Jane", "Roe")
    assert [e["address"] for e in edited["emails"]] == ["jane@acme.com", "jr@acme.com"]
    assert edited["tags"] == ["customer"] and edited["opted_out"] is True and edited["company"] is None
    with pytest.raises(CrmError, match="no such contact field"):
        crm.edit_contact(c["id"], shoe_size=42)
    with pytest.raises(CrmError):
        crm.edit_contact(c["id"], remove_emails=["nobody@acme.com"])
    crm.delete_contact(c["id"])
    assert crm.get_contact(c["id"]) is None
    with pytest.raises(NotFound):
        crm.delete_contact(c["id"])
    with pytest.raises(NotFound):
        crm.edit_contact(c["id"], phone="1")


def test_an_address_belongs_to_one_contact(crm_engine):
    crm = make(crm_engine)
    a = crm.add_contact(name="A", emails=["x@acme.com"])
    with pytest.raises(CrmError, match="already belongs"):
        crm.add_contact(name="B", emails=["X@ACME.com"])
    with pytest.raises(CrmError):
        crm.add_contact(name="C", emails=["not an address"])
    with pytest.raises(CrmError):
        crm.add_contact()
    assert counts(crm_engine)["contacts"] == 1      # the refused ones left nothing behind
    assert crm.edit_contact(a["id"], add_emails=["x@acme.com"])["emails"][0]["address"] == "x@acme.com"


def test_companies_from_domains_but_never_free_mail(crm_engine):
    crm = make(crm_engine)
    a = crm.add_contact(name="A", emails=["a@gmail.com"])
    assert a["company"] is None
    b = crm.add_contact(name="B", emails=["b@hotmail.co.uk", "b@initech.com"])
    c = crm.add_contact(name="C", emails=["c@Initech.com"])
    assert b["company"] == c["company"] and b["company"]["name"] == "Initech"
    assert crm.get_company(b["company"]["id"])["domains"] == ["initech.com"]
    d = crm.add_contact(name="D", emails=["d@initech.com"], company="Umbrella Corp")
    assert d["company"]["name"] == "Umbrella Corp"
    assert crm.add_contact(name="E", company="umbrella corp")["company"] == d["company"]
    # gaining a company address later gives the company
    a = crm.edit_contact(a["id"], add_emails=["a@initech.com"])
    assert a["company"] == b["company"]
    with pytest.raises(CrmError, match="free-mail"):
        crm.add_company("Google", domains=["gmail.com"])
    with pytest.raises(CrmError, match="already belongs"):
        crm.add_company("Initech 2", domains=["initech.com"])
    hooli = crm.add_company("Hooli", domains=["@Hooli.XYZ"])
    assert hooli["domains"] == ["hooli.xyz"]
    assert [x["name"] for x in crm.list_companies(q="hoo")] == ["Hooli"]
    assert crm.add_contact(name="F", emails=["f@hooli.xyz"])["company"]["id"] == hooli["id"]
    with pytest.raises(NotFound):
        crm.add_contact(name="G", company=999)


def test_retro_linking_on_add_edit_and_merge(crm_engine):
    crm = make(crm_engine)
    crm.apply([seen(message(frm="Ann <ann@acme.com>", message_id="1@a"), uid=1),
               seen(message(frm="Me <me@ours.test>", to="Ann <ANN@acme.com>", cc="boss@acme.com",
                            message_id="2@a"), folder="Sent", special_use="\\Sent", uid=1),
               seen(message(frm="ann.private@gmail.com", message_id="3@a"), uid=2)])
    ann = crm.add_contact(name="Ann", emails=["ann@acme.com"])
    acts = crm.activities(contact_id=ann["id"])
    assert sorted((a["thread"]["message_id"], a["direction"]) for a in acts) == [("1@a", "received"), ("2@a", "sent")]
    assert crm.get_contact(ann["id"])["last_contacted"] is not None
    crm.edit_contact(ann["id"], add_emails=["ann.private@gmail.com"])
    assert len(crm.activities(contact_id=ann["id"])) == 3
    boss = crm.add_contact(name="Boss", emails=["boss@acme.com"])
    assert [a["thread"]["message_id"] for a in crm.activities(contact_id=boss["id"])] == ["2@a"]
    merged = crm.merge_contacts(ann["id"], boss["id"])
    assert {e["address"] for e in merged["emails"]} == {"ann@acme.com", "ann.private@gmail.com", "boss@acme.com"}
    assert len(crm.activities(contact_id=ann["id"])) == 3       # message 2@a once, not twice
    assert crm.get_contact(boss["id"]) is None
    assert counts(crm_engine)["activities"] == 3


def test_merge_fills_empty_fields_and_moves_tags(crm_engine):
    crm = make(crm_engine)
    a = crm.add_contact(name="Ann", emails=["ann@acme.com"], tags=["x"])
    b = crm.add_contact(name="Ann B", emails=["ab@gmail.com"], phone="123", title="CEO", tags=["x", "y"],
                        notes="note b")
    crm.edit_contact(b["id"], opted_out=True)
    crm.apply([seen(message(frm="ab@gmail.com"))])
    m = crm.merge_contacts(a["id"], b["id"])
    assert (m["name"], m["phone"], m["title"], m["notes"], m["tags"], m["opted_out"]) == (
        "Ann", "123", "CEO", "note b", ["x", "y"], True)
    assert m["last_contacted"] is not None
    with pytest.raises(CrmError):
        crm.merge_contacts(a["id"], a["id"])
    with pytest.raises(NotFound):
        crm.merge_contacts(a["id"], b["id"])


def test_contact_from_message(crm_engine):
    crm = make(crm_engine)
    crm.apply([seen(message(frm='"Müller, Jürgen" <J.Mueller@Initech.com>', message_id="1@i"), uid=1),
               seen(message(frm="j.mueller@initech.com", message_id="2@i"), uid=2),
               seen(message(frm="Me <me@ours.test>", to="x@y.org", message_id="3@i"), uid=3)])
    with crm_engine.connect() as conn:
        rows = dict(conn.execute(select(tables.messages.c.message_id, tables.messages.c.id)).all())
    c = crm.contact_from_message(rows["1@i"])
    assert (c["first_name"], c["last_name"], c["name"]) == ("Jürgen", "Müller", "Jürgen Müller")
    assert c["emails"][0]["address"] == "j.mueller@initech.com" and c["company"]["name"] == "Initech"
    assert len(crm.activities(contact_id=c["id"])) == 2         # its earlier mail, linked
    assert crm.contact_from_message(rows["2@i"])["id"] == c["id"]     # already a contact: that one
    with pytest.raises(CrmError, match="own"):
        crm.contact_from_message(rows["3@i"])
    with pytest.raises(NotFound):
        crm.contact_from_message(12345)


def test_activity_filters(crm_engine):
    crm = make(crm_engine)
    a = crm.add_contact(name="A", emails=["a@acme.com"])
    crm.add_contact(name="B", emails=["b@acme.com"])
    crm.apply([seen(message(frm="a@acme.com", message_id="1@x", date="Mon, 02 Nov 2026 10:00:00 +0000"), uid=1),
               seen(message(frm="b@acme.com", message_id="2@x", date="Tue, 03 Nov 2026 10:00:00 +0000"), uid=2),
               seen(message(frm="a@acme.com", message_id="3@x", date="Wed, 04 Nov 2026 10:00:00 +0000"), uid=3)])
    ids = lambda acts: [x["thread"]["message_id"] for x in acts]     # noqa: E731
    assert ids(crm.activities(company_id=a["company"]["id"])) == ["3@x", "2@x", "1@x"]
    assert ids(crm.activities(contact_id=a["id"], since="2026-11-03")) == ["3@x"]
    assert ids(crm.activities(until="2026-11-03T00:00:00Z")) == ["1@x"]
    assert ids(crm.activities(limit=1, offset=1)) == ["2@x"]
    assert crm.get_activity(9999) is None
    with pytest.raises(CrmError):
        crm.activities(since="not a date")
