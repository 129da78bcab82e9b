"""Campaigns over the CRM database (SQLite and PostgreSQL): merge fields,
making a campaign, the sender's skipping and its resume after a restart
(never sending twice), results tied to campaign messages from the CRM's
events, one-click tokens, and the keyword queue's retries and skips."""
from __future__ import annotations

import asyncio
import email
import email.policy
import json
import pathlib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from posthouse.campaigns import render
from posthouse.campaigns.keywords import KeywordWorker
from posthouse.campaigns.model import Campaigns
from posthouse.campaigns.results import observe
from posthouse.campaigns.sending import CampaignSender, compose
from posthouse.campaigns.tables import campaign_keywords, campaign_recipients, campaign_results
from posthouse.campaigns.unsubscribe import recipient_of, token, unsubscribe
from posthouse.config import Config
from posthouse.crm.classify import classify
from posthouse.crm.errors import CrmError
from posthouse.crm.service import Crm
from posthouse.crm.tables import contact_emails

from .factlib import message, seen

REPLIES = pathlib.Path(__file__).parent.parent / "data" / "replies"
LABELS = json.loads((REPLIES / "labels.json").read_text())
ME = "me@posthouse.example"


class RecordingQueue:
    """The outbound queue's interface (enqueue), keeping what it is handed."""
    enabled = True

    def __init__(self):
        self.items = []

    async def enqueue(self, user_id, sender, recipients, data):
        self.items.append((user_id, sender, recipients, data))
        return len(self.items)


def _setup(engine, n=5):
    crm = Crm(engine, own_addresses=lambda: {ME}, classify=classify)
    people = [crm.add_contact(name=f"P{i} Person", emails=[f"p{i}@people.example"], tags=["t"]) for i in range(n)]
    return crm, Campaigns(crm), people


def _sender(campaigns, queue=None):
    config = Config.load(None, campaigns_rate=60000.0)

    async def user_id(name):
        return 1
    return CampaignSender(campaigns, queue or RecordingQueue(), config, user_id, poll=0.01)


async def _send_all(sender):
    for _ in range(200):
        await sender.run_once()
        if not await asyncio.to_thread(sender.campaigns.sending):
            return
    raise AssertionError("the campaign never finished")


# -- merge fields -------------------------------------------------------------------------------

def test_merge_fields_are_checked_and_inserted_as_text():
    render.check("Hi {{first_name}} {{ last_name }} {{name}} {{company}} {{email}}")
    for bad in ("{{nickname}}", "{{ first_name }} }}", "{{", "{{first_name.__class__}}", "{{ 7*7 }}"):
        with pytest.raises(render.TemplateError):
            render.check(bad)
    values = {"first_name": "{{email}}", "email": "a@b.example", "name": "X\r\nBcc: evil@x.example"}
    assert render.render("{{first_name}}", values) == "{{email}}"        # one pass: a value is never a template
    assert render.render("Re {{name}}", values, one_line=True) == "Re X Bcc: evil@x.example"
    assert render.render("{{name}}", {"name": "A\x00B\x1bC\u2028D"}, one_line=True) == "A B C D"


def test_a_message_has_its_own_id_and_the_unsubscribe_headers():
    campaign = {"from_address": ME, "subject": "Hi {{first_name}}", "body": "Dear {{name}}", "secret": "s" * 64}
    recipient = {"id": 7, "address": "ann@acme.example", "message_id": "campaign.1@posthouse.example"}
    contact = {"first_name": "Ann\r\nBcc: evil@x.example", "name": "Ann \"the\" <Buyer>"}
    msg = email.message_from_bytes(compose(campaign, recipient, contact, "https://crm.example/"),
                                   policy=email.policy.default)
    assert msg["Message-ID"] == "<campaign.1@posthouse.example>"
    assert msg["Subject"] == "Hi Ann Bcc: evil@x.example" and msg["Bcc"] is None
    assert msg["List-Unsubscribe"] == (f"<https://crm.example/u/{token('s' * 64, 7)}>, "
                                       f"<mailto:{ME}?subject=unsubscribe>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["To"].addresses[0].addr_spec == "ann@acme.example"
    with pytest.raises(ValueError, match="internationalised"):
        compose(campaign, {**recipient, "address": "jürgen@acme.example"}, contact, "https://crm.example/")


# -- making -------------------------------------------------------------------------------------

def test_a_campaign_is_refused_with_a_clear_error(crm_engine):
    crm, campaigns, _ = _setup(crm_engine, 2)
    base = dict(owner="alice", name="N", account_id=1, from_address=ME, subject="S", body="B")
    with pytest.raises(CrmError, match="unknown merge field {{nick}}"):
        campaigns.create(**{**base, "body": "Hi {{nick}}"}, tag="t")
    with pytest.raises(CrmError, match="pick the contacts"):
        campaigns.create(**base)
    with pytest.raises(CrmError, match="no contact"):
        campaigns.create(**base, tag="nobody")
    cid = campaigns.create(**base, tag="t")
    assert len(campaigns.recipients(cid)) == 2 and campaigns.get(cid)["state"] == "draft"


# -- sending ------------------------------------------------------------------------------------

def test_opted_out_and_hard_bouncing_are_skipped_at_send_time(crm_engine):
    crm, campaigns, people = _setup(crm_engine, 4)
    cid = campaigns.create(owner="alice", name="N", account_id=1, from_address=ME, subject="Hi {{first_name}}",
                           body="B", tag="t")
    # after the campaign was made: one opts out, one address starts bouncing
    crm.edit_contact(people[1]["id"], opted_out=True)
    with crm_engine.begin() as conn:
        conn.execute(update(contact_emails).where(contact_emails.c.address == "p2@people.example")
                     .values(bouncing=True, bounce_reason="userunknown"))
    campaigns.start(cid)
    sender = _sender(campaigns)
    asyncio.run(_send_all(sender))
    assert [i[2] for i in sender.queue.items] == [["p0@people.example"], ["p3@people.example"]]
    states = {r["address"]: (r["state"], r["reason"]) for r in campaigns.recipients(cid)}
    assert states["p1@people.example"] == ("skipped", "opted out")
    assert states["p2@people.example"] == ("skipped", "hard-bouncing address (userunknown)")
    assert campaigns.get(cid)["state"] == "done"


def test_a_restart_resumes_without_sending_anyone_twice(crm_engine):
    crm, campaigns, people = _setup(crm_engine, 4)
    cid = campaigns.create(owner="alice", name="N", account_id=1, from_address=ME, subject="S", body="B", tag="t")
    campaigns.start(cid)
    first, second, *rest = campaigns.recipients(cid)
    # The last run sent the first, and ended while handing the second to the queue.
    campaigns.mark(first["id"], "sent")
    campaigns.mark(second["id"], "sending")
    sender = _sender(campaigns)

    async def restart():
        sender.start()          # (the task: marks the interrupted one, then sends)
        for _ in range(500):
            await asyncio.sleep(0.01)
            if not await asyncio.to_thread(campaigns.sending):
                break
        await sender.close()
    asyncio.run(restart())
    assert sorted(i[2][0] for i in sender.queue.items) == sorted(r["address"] for r in rest)
    states = {r["id"]: r["state"] for r in campaigns.recipients(cid)}
    assert states[first["id"]] == "sent" and states[second["id"]] == "failed"
    # And a second run over a finished campaign sends nothing more.
    again = _sender(campaigns)
    asyncio.run(again.run_once())
    assert again.queue.items == [] and campaigns.start(cid) is False


def test_a_queue_that_refuses_marks_failed_and_goes_on(crm_engine):
    crm, campaigns, _ = _setup(crm_engine, 2)
    cid = campaigns.create(owner="alice", name="N", account_id=1, from_address=ME, subject="S", body="B", tag="t")
    campaigns.start(cid)

    class Broken(RecordingQueue):
        async def enqueue(self, *args):
            raise OSError("disk full")
    asyncio.run(_send_all(_sender(campaigns, Broken())))
    assert {r["state"] for r in campaigns.recipients(cid)} == {"failed"}
    assert all("disk full" in r["reason"] for r in campaigns.recipients(cid))


# -- results --------------------------------------------------------------------------------------

def test_replies_are_tied_to_their_campaign_message_and_keywords_queued(crm_engine):
    crm, campaigns, people = _setup(crm_engine, 3)
    woke = []
    crm.observers.append(observe(crm, on_keyword=lambda: woke.append(1)))
    cid = campaigns.create(owner="alice", name="N", account_id=1, from_address=ME, subject="S", body="B", tag="t")
    campaigns.start(cid)
    asyncio.run(_send_all(_sender(campaigns)))
    r0, r1, r2 = campaigns.recipients(cid)
    reply = message(frm="P0 Person <p0@people.example>", to=ME, subject="Re: S", message_id="r1@people.example",
                    extra=f"In-Reply-To: <{r0['message_id']}>", body="Yes, let's talk.")
    name = "bounce/h3_postfix_local_unknown_user.eml"
    label = LABELS[name]
    bounce = (REPLIES / name).read_text().replace(label["original_message_id"], r1["message_id"])
    bounce = bounce.replace(label["recipients"][0]["address"], r1["address"]).encode()
    unsub = message(frm="p2@people.example", to=ME, subject="Re: S", message_id="u1@people.example",
                    extra=f"In-Reply-To: <{r2['message_id']}>", body="UNSUBSCRIBE")
    mailto = message(frm="p1@people.example", to=ME, subject="unsubscribe", message_id="u2@people.example",
                     body="")        # (the List-Unsubscribe mailto: answers nothing; p1 also bounced)
    unrelated = message(frm="P0 Person <p0@people.example>", to=ME, subject="Re: other", message_id="x@people.example",
                        extra="In-Reply-To: <not-ours@elsewhere.example>", body="Other thing.")
    facts = [seen(reply, uid=1), seen(bounce, uid=2), seen(unsub, uid=3), seen(unrelated, uid=4), seen(mailto, uid=5)]
    crm.apply(facts)
    crm.apply(facts)        # a replay: nothing twice
    results = campaigns.results(cid)
    assert sorted((r["kind"], r["address"]) for r in results) == [
        ("bounce", r1["address"]), ("reply", r0["address"]), ("unsubscribe", r1["address"]),
        ("unsubscribe", r2["address"])]
    [b] = [r for r in results if r["kind"] == "bounce"]
    assert b["hard"] is True and b["reason"] == "userunknown" and b["uid"] == 2
    assert crm.get_contact(people[2]["id"])["opted_out"] is True
    with crm_engine.connect() as conn:
        queued = sorted((r.uid, r.keyword) for r in conn.execute(select(campaign_keywords)))
    assert queued == [(1, "$CampaignReply"), (2, "$Bounce"), (3, "$Unsubscribe"), (5, "$Unsubscribe")] and woke
    summary = campaigns.summary(cid)
    assert (summary["bounced_hard"], summary["replies"], summary["unsubscribes_reply"]) == (1, 1, 2)


def test_a_one_click_token_is_unguessable_and_idempotent(crm_engine):
    crm, campaigns, people = _setup(crm_engine, 2)
    cid = campaigns.create(owner="alice", name="N", account_id=1, from_address=ME, subject="S", body="B", tag="t")
    r0, r1 = campaigns.recipients(cid)
    secret = campaigns.get(cid)["secret"]
    good = token(secret, r0["id"])
    forged = [token("x" * 64, r0["id"]), f"{r1['id']}.{good.split('.')[1]}", good[:-1] + ("1" if good.endswith("0") else "0"), "", "1", good + "0",
              f"0{good}", "99999." + "a" * 32]
    for t in forged:
        assert recipient_of(crm_engine, t) is None and unsubscribe(crm, t) is None, t
    assert crm.get_contact(people[0]["id"])["opted_out"] is False
    assert unsubscribe(crm, good)["address"] == r0["address"]
    assert unsubscribe(crm, good)["address"] == r0["address"]
    assert crm.get_contact(people[0]["id"])["opted_out"] is True
    assert crm.get_contact(people[1]["id"])["opted_out"] is False
    with crm_engine.connect() as conn:
        assert len(conn.execute(select(campaign_results)).all()) == 1


# -- keywords -----------------------------------------------------------------------------------

class Account:
    id = 1


class Accounts:
    def get(self, account_id):
        return Account() if account_id == 1 else None


def test_keywords_are_retried_and_skipped_when_uidvalidity_changed(crm_engine):
    from posthouse.campaigns.keywords import queue_keyword
    with crm_engine.begin() as conn:
        queue_keyword(conn, 1, "INBOX", 7, 3, "$Bounce")
        queue_keyword(conn, 1, "INBOX", 8, 4, "$CampaignReply")     # from before the folder was renumbered
        queue_keyword(conn, 2, "INBOX", 7, 5, "$Bounce")            # an account since removed
        queue_keyword(conn, 1, "INBOX", 7, 3, "$Bounce")            # the same again: one row
    stored = []

    class Selected:
        uidvalidity = 7

    class Conn:
        async def select(self, folder, readonly=True):
            return Selected()

        async def _run(self, parts):
            stored.append(parts[0])

        async def unselect(self):
            pass

        async def logout(self):
            pass

    calls = []

    async def open_session(accounts, account):
        calls.append(account.id)
        if len(calls) == 1:
            raise OSError("connection refused")
        return Conn()
    worker = KeywordWorker(crm_engine, Accounts(), open_session)
    assert asyncio.run(worker.run_once()) == 0        # the server away: tried again later
    with crm_engine.connect() as conn:
        rows = {(r.account_id, r.uid): r for r in conn.execute(select(campaign_keywords))}
    assert rows[(1, 3)].attempts == 1 and rows[(1, 3)].state == "pending" and "refused" in rows[(1, 3)].last_error
    assert rows[(2, 5)].state == "skipped"
    with crm_engine.begin() as conn:     # (time passes)
        conn.execute(update(campaign_keywords).values(next_attempt=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert asyncio.run(worker.run_once()) == 1
    assert stored == [b"UID STORE 3 +FLAGS.SILENT ($Bounce)"]
    with crm_engine.connect() as conn:
        states = {r.uid: r.state for r in conn.execute(select(campaign_keywords))}
    assert states == {3: "done", 4: "skipped", 5: "skipped"}


def test_without_a_smarthost_a_campaign_is_refused_saying_why():
    from posthouse.campaigns.model import cant_send
    assert "[relay]" in cant_send(Config.load(None))
    assert cant_send(Config.load(None, relay_host="smtp.example.net")) is None


def test_a_message_that_cant_be_written_fails_alone(crm_engine):
    crm, campaigns, _ = _setup(crm_engine, 3)
    cid = campaigns.create(owner="alice", name="N", account_id=1, from_address=ME, subject="S", body="B", tag="t")
    odd = campaigns.recipients(cid)[1]
    with crm_engine.begin() as conn:
        conn.execute(update(campaign_recipients).where(campaign_recipients.c.id == odd["id"])
                     .values(address="jürgen@people.example"))
    campaigns.start(cid)
    sender = _sender(campaigns)
    asyncio.run(_send_all(sender))
    assert len(sender.queue.items) == 2
    states = {r["id"]: (r["state"], r["reason"] or "") for r in campaigns.recipients(cid)}
    assert states[odd["id"]][0] == "failed" and "internationalised" in states[odd["id"]][1]
