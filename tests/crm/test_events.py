"""The CRM's events (crm/events.py): told after the commit, once per new
activity and once per sorted message, never again on a replay."""
from __future__ import annotations

import json
import pathlib

from posthouse.crm.classify import classify
from posthouse.crm.service import Crm

from .factlib import message, seen

REPLIES = pathlib.Path(__file__).parent.parent / "data" / "replies"
LABELS = json.loads((REPLIES / "labels.json").read_text())


def _crm(engine, told):
    crm = Crm(engine, own_addresses=lambda: {"me@posthouse.example"}, classify=classify)
    crm.observers.append(told.extend)
    return crm


def test_a_new_activity_is_told_once(crm_engine):
    told = []
    crm = _crm(crm_engine, told)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.example"])
    raw = message(frm="Ann <ann@acme.example>", to="me@posthouse.example", subject="hello",
                  message_id="m1@acme.example", body="Hi there.")
    crm.apply([seen(raw, uid=7)])
    created = [e for e in told if e.kind == "activity_created"]
    assert len(created) == 1
    assert created[0].contact_ids == (ann["id"],) and created[0].message_id == "m1@acme.example"
    assert created[0].uid == 7 and created[0].folder
    told.clear()
    crm.apply([seen(raw, uid=7)])        # a replay: nothing new
    assert [e for e in told if e.kind == "activity_created"] == []


def test_a_bounce_and_a_reply_are_told_with_their_kind(crm_engine):
    told = []
    crm = _crm(crm_engine, told)
    name = "bounce/h2_postfix_alias_two.eml"
    hard, _ = LABELS[name]["recipients"]
    one = crm.add_contact(name="A One", emails=[hard["address"]])
    crm.apply([seen((REPLIES / name).read_bytes(), uid=5)])
    bounces = [e for e in told if e.kind == "bounce"]
    assert len(bounces) == 1 and one["id"] in bounces[0].contact_ids
    assert bounces[0].classification and bounces[0].classification.get("kind") == "bounce"
    told.clear()
    ann = crm.add_contact(name="Ann Buyer", emails=["ann@acme.example"])
    crm.apply([seen(message(frm="Ann Buyer <ann@acme.example>", to="me@posthouse.example", subject="Re: offer",
                            message_id="r1@acme.example", extra="In-Reply-To: <offer-1@posthouse.example>",
                            body="Sounds good, let's talk on Monday.\r\n\r\n> our offer"))])
    [reply] = [e for e in told if e.kind == "reply"]
    assert reply.contact_ids == (ann["id"],) and reply.in_reply_to == "offer-1@posthouse.example"


def test_a_failing_observer_costs_nothing(crm_engine):
    crm = Crm(crm_engine, own_addresses=lambda: {"me@posthouse.example"})

    def broken(events):
        raise RuntimeError("observer down")
    crm.observers.append(broken)
    ann = crm.add_contact(name="Ann", emails=["ann@acme.example"])
    crm.apply([seen(message(frm="Ann <ann@acme.example>", to="me@posthouse.example", subject="x",
                            message_id="m2@acme.example", body="x"))])
    assert len(crm.activities(contact_id=ann["id"])) == 1
