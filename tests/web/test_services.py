"""The glue serve uses: the sender built over compose() and send() (stand-ins
with the send part's shapes), and the app built with parts missing."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from posthouse.config import Config
from posthouse.web.models import SendIn
from posthouse.web.services import build_app, make_sender

from .fakes import FakeAccount


def test_the_sender_composes_sends_the_composed_message_and_reports_the_sent_copy():
    calls = {}

    def compose(**fields):
        calls["compose"] = fields
        return SimpleNamespace(message=b"bytes", message_id="<m1@example.com>", recipients=["b@x.example"])

    async def send(store, account, composed):
        calls["send"] = (store, account, composed)
        return SimpleNamespace(message_id="<m1@example.com>", appended=("Sent", 5, 9), refused={"c@x.example": "550"},
                               sent_note=None)

    account = FakeAccount(1, "alice", addresses=["alice@example.com"])
    sender = make_sender(Config(hostname="mx.test"), "STORE", compose, send)
    body = SendIn(account_id=1, to=["b@x.example"], bcc=["c@x.example"], subject="Hi", text="Hello")
    result = asyncio.run(sender(account, body, [("a.txt", "text/plain", b"hi")]))
    assert result == {"message_id": "<m1@example.com>", "appended": {"folder": "Sent", "uidvalidity": 5, "uid": 9},
                      "refused": {"c@x.example": "550"}, "sent_note": None}
    assert calls["compose"]["from_addr"] == "alice@example.com" and calls["compose"]["bcc"] == ["c@x.example"]
    assert calls["compose"]["message_id_domain"] == "example.com"
    assert calls["compose"]["attachments"] == [("a.txt", "text/plain", b"hi")]
    assert calls["send"][0] == "STORE" and calls["send"][2].message == b"bytes"     # the Composed, envelope and all


def test_a_failure_on_the_far_side_is_a_connection_error_and_a_refused_value_stays_a_value_error():
    account = FakeAccount(1, "alice", addresses=["alice@example.com"])
    body = SendIn(account_id=1, to=["b@x.example"])

    async def send_fails(store, account, composed):
        raise RuntimeError("rcpt: 550 no such user")

    sender = make_sender(Config(), None, lambda **f: SimpleNamespace(message=b""), send_fails)
    with pytest.raises(ConnectionError, match="550 no such user"):
        asyncio.run(sender(account, body, []))

    def compose_refuses(**fields):
        raise ValueError("not an address")

    with pytest.raises(ValueError, match="not an address"):
        asyncio.run(make_sender(Config(), None, compose_refuses, send_fails)(account, body, []))


def test_the_app_builds_over_the_crm_side(tmp_path):
    from posthouse.crmside import open_crm_side
    app = build_app(Config(data_dir=str(tmp_path)), open_crm_side(Config(data_dir=str(tmp_path))))
    assert "/api/v1/contacts" in app.openapi()["paths"]
