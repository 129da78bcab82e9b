"""Webhooks: the signature scheme, per-user scoping (another user's webhook is
not found; an event in bob's account never reaches alice's webhook), URL
checks, and the sender against a real HTTP receiver on 127.0.0.1: signed
deliveries, retries with backoff until it answers 2xx, failed after N."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest

from posthouse.crm.errors import CrmError, NotFound
from posthouse.crm.events import CrmEvent
from posthouse.webhooks.events import make_observer
from posthouse.webhooks.sender import WebhookSender, backoff
from posthouse.webhooks.signing import signature, verify
from posthouse.webhooks.store import WebhookStore

from .receiver import Receiver

OWNERS = {1: "alice", 2: "bob"}     # account id -> owner


def event(kind="reply", account_id=1, message=7) -> CrmEvent:
    return CrmEvent(kind, message, (3, 4), account_id=account_id, folder="INBOX", uidvalidity=9, uid=11,
                    message_id=f"m{message}@client.example", in_reply_to="campaign-1@ours.test",
                    classification={"kind": kind, "hard": None, "reason": None, "recipients": []})


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"id":"evt_1"}'
    expected = hmac.new(b"whsec_k", b"1733356800." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_k", 1733356800, body) == "sha256=" + expected
    assert verify("whsec_k", "1733356800", body, "sha256=" + expected, now=1733356810)
    assert not verify("whsec_k", "1733356800", body + b" ", "sha256=" + expected, now=1733356810)
    assert not verify("whsec_k", "1733356800", body, "sha256=" + expected, now=1733356800 + 3600)   # too old
    assert not verify("whsec_k", "garbage", body, "sha256=" + expected)


def test_urls_and_events_checked(crm_engine):
    store = WebhookStore(crm_engine)
    for bad in ("", "   ", None, "ftp://x.example/", "javascript:alert(1)", "file:///etc/passwd", "http://",
                "http:///path", "https://user:pw@x.example/", "https://x.example/a b", "https://x.example/#frag",
                "https://x.example:99999/", "https://x\x00.example/", "http://" + "a" * 3000 + ".example/",
                "https://bad..host/"):
        with pytest.raises(CrmError):
            store.create("alice", bad, ["reply"])
    for bad_events in ([], ["nope"], None, ["reply", "<script>"]):
        with pytest.raises(CrmError):
            store.create("alice", "https://hooks.example/x", bad_events)
    hook, secret = store.create("alice", "https://hooks.example/x?k=1", ["bounce", "reply", "bounce"])
    assert hook["events"] == ["reply", "bounce"] and secret.startswith("whsec_") and len(secret) > 40
    assert "secret" not in hook and secret not in json.dumps(store.list("alice"))     # shown only once


def test_another_users_webhook_is_not_found(crm_engine):
    store = WebhookStore(crm_engine)
    hook, _ = store.create("alice", "https://hooks.example/alice", ["reply"])
    assert store.list("bob") == []
    with pytest.raises(NotFound):
        store.get("bob", hook["id"])
    with pytest.raises(NotFound):
        store.deliveries("bob", hook["id"])
    with pytest.raises(NotFound):
        store.delete("bob", hook["id"])
    assert store.get("alice", hook["id"]) == hook       # still there
    store.delete("alice", hook["id"])
    assert store.list("alice") == []


def test_events_go_only_to_the_accounts_owner(crm_engine):
    store = WebhookStore(crm_engine)
    alice, _ = store.create("alice", "https://hooks.example/alice", ["reply", "bounce", "activity_created"])
    bob, _ = store.create("bob", "https://hooks.example/bob", ["reply"])
    woken = []
    observe = make_observer(store, OWNERS.get, lambda: woken.append(1))
    observe([event("reply", account_id=2), event("bounce", account_id=2), event("auto-reply", account_id=1),
             event("reply", account_id=None), event("reply", account_id=99)])
    assert store.deliveries("alice", alice["id"]) == []     # bob's account's events: none for alice
    assert [d["event_type"] for d in store.deliveries("bob", bob["id"])] == ["reply"]
    observe([event("bounce", account_id=1), event("activity_created", account_id=1)])
    assert sorted(d["event_type"] for d in store.deliveries("alice", alice["id"])) == ["activity_created", "bounce"]
    assert len(woken) == 2


def run(coro):
    return asyncio.run(coro)


async def _deliver_until(sender: WebhookSender, store: WebhookStore, owner: str, hook_id: int, status: str,
                         tries: int = 200) -> dict:
    for _ in range(tries):
        await sender.run_once()
        found = store.deliveries(owner, hook_id)[0]
        if found["status"] == status:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"delivery still {found}")


def test_signed_delivery_retried_with_backoff_until_it_succeeds(crm_engine):
    store = WebhookStore(crm_engine)
    receiver = Receiver(statuses=(500, 503, 200))      # fails twice, then takes it
    try:
        hook, secret = store.create("alice", receiver.url, ["reply"])
        make_observer(store, OWNERS.get)([event("reply", account_id=1)])

        async def go():
            sender = WebhookSender(store, attempts=5, retry_base=0.05, timeout=10, allow_private=True)
            sender.start()
            try:
                return await _deliver_until(sender, store, "alice", hook["id"], "delivered")
            finally:
                await sender.close()
        delivery = run(go())
        assert delivery["attempts"] == 3 and delivery["status_code"] == 200 and delivery["error"] is None
        assert len(receiver.received) == 3
        headers, body = receiver.received[-1]
        assert verify(secret, headers["x-posthouse-timestamp"], body, headers["x-posthouse-signature"])
        assert not verify("whsec_wrong", headers["x-posthouse-timestamp"], body, headers["x-posthouse-signature"])
        assert headers["x-posthouse-event"] == "reply" and headers["x-posthouse-delivery"] == delivery["delivery_id"]
        assert headers["content-type"] == "application/json"
        sent = json.loads(body)
        assert sent["type"] == "reply" and sent["contact_ids"] == [3, 4] and sent["message_ids"] == ["m7@client.example"]
        assert sent["classification"]["kind"] == "reply" and sent["id"].startswith("evt_") and sent["time"]
        # every attempt is the same delivery: same id, same body
        assert {h["x-posthouse-delivery"] for h, _ in receiver.received} == {delivery["delivery_id"]}
        assert {b for _, b in receiver.received} == {body}
    finally:
        receiver.close()


def test_delivery_marked_failed_after_the_last_attempt(crm_engine):
    store = WebhookStore(crm_engine)
    receiver = Receiver(statuses=(500,))
    down = Receiver()
    down_url = down.url
    down.close()        # nothing listens there now: connection refused
    try:
        hook, _ = store.create("alice", receiver.url, ["bounce"])
        gone, _ = store.create("alice", down_url, ["bounce"])
        make_observer(store, OWNERS.get)([event("bounce", account_id=1)])

        async def go():
            sender = WebhookSender(store, attempts=3, retry_base=0.02, timeout=5, allow_private=True)
            sender.start()
            try:
                return (await _deliver_until(sender, store, "alice", hook["id"], "failed"),
                        await _deliver_until(sender, store, "alice", gone["id"], "failed"))
            finally:
                await sender.close()
        failed, refused = run(go())
        assert failed["attempts"] == 3 and failed["status_code"] == 500 and "HTTP 500" in failed["error"]
        assert failed["next_try"] is None and len(receiver.received) == 3
        assert refused["attempts"] == 3 and refused["status_code"] is None and refused["error"]
        # the log keeps finished deliveries for a while, then lets them go
        assert store.prune(3600) == 0 and len(store.deliveries("alice", hook["id"])) == 1
        assert store.prune(-1) == 2 and store.deliveries("alice", hook["id"]) == []
    finally:
        receiver.close()


def test_backoff_doubles_with_jitter_and_is_capped():
    assert backoff(1, 30, jitter=lambda: 0.5) == 30
    assert backoff(2, 30, jitter=lambda: 0.5) == 60
    assert backoff(3, 30, jitter=lambda: 0.0) == 60           # 120 * 0.5
    assert backoff(3, 30, jitter=lambda: 1.0) == 180          # 120 * 1.5
    assert backoff(40, 30, jitter=lambda: 0.5) == 6 * 3600    # capped


def test_a_process_that_only_queues_leaves_deliveries_for_the_sender(crm_engine):
    """`posthouse tracker` on its own queues; serve's sender (here: a new one,
    as after a restart) finds the queued rows in the database and posts them."""
    from types import SimpleNamespace

    from posthouse.crm.service import Crm
    from posthouse.webhooks.service import queue_webhooks
    store = WebhookStore(crm_engine)
    receiver = Receiver()
    try:
        hook, secret = store.create("bob", receiver.url, ["complaint"])
        crm = Crm(crm_engine, account_owner=OWNERS.get)
        queue_webhooks(SimpleNamespace(crm=crm, engine=crm_engine))
        crm._tell([event("complaint", account_id=2)])
        assert store.deliveries("bob", hook["id"])[0]["status"] == "queued" and receiver.received == []

        async def go():
            sender = WebhookSender(store, attempts=2, retry_base=0.05, timeout=5, allow_private=True)
            sender.start()
            try:
                return await _deliver_until(sender, store, "bob", hook["id"], "delivered")
            finally:
                await sender.close()
        assert run(go())["attempts"] == 1
        headers, body = receiver.received[0]
        assert verify(secret, headers["x-posthouse-timestamp"], body, headers["x-posthouse-signature"])
    finally:
        receiver.close()


def test_private_destinations_refused_unless_allowed(crm_engine):
    from posthouse.webhooks.sender import _is_private
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "::1", "fc00::1",
                    "fe80::1", "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1", "224.0.0.1"):
        assert _is_private(address), address
    for address in ("8.8.8.8", "2001:4860:4860::8888", "93.184.215.14"):
        assert not _is_private(address), address
    store = WebhookStore(crm_engine)
    receiver = Receiver()
    try:
        hook, _ = store.create("alice", receiver.url, ["reply"])
        named, _ = store.create("alice", receiver.url.replace("127.0.0.1", "localhost"), ["reply"])
        make_observer(store, OWNERS.get)([event("reply", account_id=1)])

        async def go():
            sender = WebhookSender(store, attempts=5, retry_base=0.02, timeout=5)     # the default: refused
            sender.start()
            try:
                return (await _deliver_until(sender, store, "alice", hook["id"], "failed"),
                        await _deliver_until(sender, store, "alice", named["id"], "failed"))
            finally:
                await sender.close()
        for refused in run(go()):
            assert refused["attempts"] == 1 and "not a public address" in refused["error"]     # no retry
        assert receiver.received == []
    finally:
        receiver.close()
