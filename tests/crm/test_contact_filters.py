"""Crm.find_contacts' filters for the contacts list: last contacted in a
range, bouncing or not, opted out or not, combined with the others."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import update

from posthouse.crm import tables
from posthouse.crm.service import Crm


def test_filters_by_last_contacted_bouncing_and_opted_out(crm_engine):
    crm = Crm(crm_engine, own_addresses=lambda: {"me@ours.test"})
    early = crm.add_contact(name="Early Bird", emails=["early@acme.com"], tags=["lead"])
    late = crm.add_contact(name="Late Comer", emails=["late@acme.com"], tags=["lead"])
    never = crm.add_contact(name="Never Written", emails=["never@other.example"])
    with crm_engine.begin() as conn:
        for contact, when in ((early, datetime(2026, 1, 10, tzinfo=timezone.utc)),
                              (late, datetime(2026, 6, 1, 12, tzinfo=timezone.utc))):
            conn.execute(update(tables.contacts).where(tables.contacts.c.id == contact["id"])
                         .values(last_contacted=when))
        conn.execute(update(tables.contact_emails).where(tables.contact_emails.c.address == "late@acme.com")
                     .values(bouncing=True, bounce_reason="mailbox unknown"))
    crm.edit_contact(never["id"], opted_out=True)
    ids = lambda found: [c["id"] for c in found]      # noqa: E731
    assert ids(crm.find_contacts(contacted_since="2026-01-01")) == [early["id"], late["id"]]
    assert ids(crm.find_contacts(contacted_since="2026-02-01")) == [late["id"]]
    assert ids(crm.find_contacts(contacted_until=datetime(2026, 6, 1, 12, tzinfo=timezone.utc))) == [early["id"]]
    assert ids(crm.find_contacts(contacted_since="2026-01-11", contacted_until="2026-05-01")) == []
    assert ids(crm.find_contacts(bouncing=True)) == [late["id"]]
    assert ids(crm.find_contacts(bouncing=False)) == [early["id"], never["id"]]
    assert ids(crm.find_contacts(opted_out=True)) == [never["id"]]
    assert ids(crm.find_contacts(opted_out=False)) == [early["id"], late["id"]]
    # combined with the others, and paged
    assert ids(crm.find_contacts(tag="lead", bouncing=False)) == [early["id"]]
    assert ids(crm.find_contacts(q="acme", opted_out=False, limit=1, offset=1)) == [late["id"]]
    assert ids(crm.find_contacts(company_id=early["company"]["id"], contacted_since="2026-03-01")) == [late["id"]]


def test_companies_listed_a_page_at_a_time(crm_engine):
    crm = Crm(crm_engine)
    for name in ("Delta", "Alpha", "Charlie", "Bravo"):
        crm.add_company(name, [name.lower() + ".example"])
    names = lambda found: [c["name"] for c in found]      # noqa: E731
    assert names(crm.list_companies()) == ["Alpha", "Bravo", "Charlie", "Delta"]
    assert names(crm.list_companies(limit=2)) == ["Alpha", "Bravo"]
    assert names(crm.list_companies(limit=2, offset=2)) == ["Charlie", "Delta"]
    assert names(crm.list_companies("a", limit=1, offset=1)) == ["Bravo"]     # (all four have an a)
    assert crm.list_companies(limit=2, offset=4) == []
