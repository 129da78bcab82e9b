"""The CRM with the real reply sorter (crm/classify), as `posthouse serve`
wires it: a hard bounce marks the failed address bouncing and is tied to
the message it answers and the contact it concerns; a soft one marks
nothing; an unsubscribe opts the contact out; a person's reply is a reply."""
from __future__ import annotations

import json
import pathlib

from posthouse.crm.classify import classify
from posthouse.crm.service import Crm

from .factlib import message, seen

REPLIES = pathlib.Path(__file__).parent.parent / "data" / "replies"
LABELS = json.loads((REPLIES / "labels.json").read_text())


def _crm(engine) -> Crm:
    return Crm(engine, own_addresses=lambda: {"me@posthouse.example", "mailer@posthouse.example"},
               classify=classify)


def test_a_hard_bounce_marks_the_address_and_a_soft_one_does_not(crm_engine):
    crm = _crm(crm_engine)
    name = "bounce/h2_postfix_alias_two.eml"        # 5.1.1 for one recipient, 4.2.2 for the other
    hard, soft = LABELS[name]["recipients"]
    one = crm.add_contact(name="A One", emails=[hard["address"]])
    two = crm.add_contact(name="B Two", emails=[soft["address"]])
    crm.apply([seen((REPLIES / name).read_bytes(), uid=5)])
    one, two = crm.get_contact(one["id"]), crm.get_contact(two["id"])
    assert one["emails"][0]["bouncing"] is True and one["emails"][0]["bounce_reason"] == "userunknown"
    assert two["emails"][0]["bouncing"] is False
    bounces = crm.activities(contact_id=one["id"], kind="bounce")
    assert len(bounces) == 1 and bounces[0]["kind"] == "bounce"


def test_an_unsubscribe_opts_the_contact_out(crm_engine):
    crm = _crm(crm_engine)
    raw = message(frm="Una Subscriber <una@list-reader.example>", to="me@posthouse.example",
                  subject="Re: Our November news", message_id="u1@list-reader.example",
                  extra="In-Reply-To: <news-1@posthouse.example>",
                  body="Please unsubscribe me from this list.\r\n\r\n> Our November news")
    assert classify(raw).kind == "unsubscribe"
    una = crm.add_contact(name="Una Subscriber", emails=["una@list-reader.example"])
    crm.apply([seen(raw)])
    assert crm.get_contact(una["id"])["opted_out"] is True


def test_a_person_s_reply_is_a_reply_and_opts_nobody_out(crm_engine):
    crm = _crm(crm_engine)
    raw = message(frm="Ann Buyer <ann@acme.example>", to="me@posthouse.example", subject="Re: the offer",
                  message_id="r1@acme.example", extra="In-Reply-To: <offer-1@posthouse.example>",
                  body="Sounds good, let's talk on Monday.\r\n\r\n> our offer")
    ann = crm.add_contact(name="Ann Buyer", emails=["ann@acme.example"])
    crm.apply([seen(raw)])
    [activity] = crm.activities(contact_id=ann["id"])
    assert activity["kind"] == "reply"
    assert crm.get_contact(ann["id"])["opted_out"] is False
