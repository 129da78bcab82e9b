"""delivery.from_header: finding From:/Sender: in a message's header, and
the one change the "rewrite" policy makes."""
from __future__ import annotations

import pytest

from posthouse.delivery.from_header import FromRefused, check, fields


def mine(address: str) -> bool:
    return address.lower().startswith("alice@")


def test_fields_are_found_in_the_header_only_and_unfolded():
    msg = b"Subject: x\nFROM : Alice\n <alice@example.com>\nX-From: no\nSender: a@example.com\n\nFrom: body\n"
    found = fields(msg)
    assert [(f.name, f.value) for f in found] == [("From", "Alice <alice@example.com>"),
                                                   ("Sender", "a@example.com")]
    assert msg[found[0].start:found[0].end] == b"FROM : Alice\n <alice@example.com>\n"
    assert fields(b"\r\nFrom: alice@example.com\r\n\r\nbody") == []      # no header: that is the body
    assert [f.value for f in fields(b"From: alice@example.com")] == ["alice@example.com"]   # no body


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_rewrite_changes_that_field_alone(newline):
    msg = newline.join([b"Received: from x", b"From: \"Eve, E.\" <eve@example.com>", b"To: bob@example.com",
                        b"", b"From: eve@example.com in the body", b""])
    out = check(msg, mine, "alice@example.com", "rewrite")
    assert out == msg.replace(b'From: "Eve, E." <eve@example.com>', b'From: "Eve, E." <alice@example.com>')
    assert check(msg.replace(b"eve@", b"alice@"), mine, "alice@example.com", "rewrite") == \
        msg.replace(b"eve@", b"alice@")


@pytest.mark.parametrize("head,reply", [
    (b"From: eve@example.com", "550 5.7.1 From: <eve@example.com>"),
    (b"From: alice@example.com\r\nSender: Eve <eve@example.com>", "550 5.7.1 Sender: <eve@example.com>"),
    (b"To: bob@example.com", "550 5.6.0 The message has no From:"),
    (b"From: alice@example.com\r\nFrom: alice@example.com", "550 5.6.0 The message has 2 From:"),
    (b"From: alice@example.com\r\nSender: a@x.example\r\nSender: alice@example.com", "550 5.6.0 The message has 2 Sender:"),
    (b"From: alice@example.com, bob@example.com", "550 5.6.0 The From: field names 2 addresses"),
    (b"From: group: alice@example.com, bob@example.com;", "550 5.6.0 The From: field names 2 addresses"),
    (b"From: alice", "550 5.6.0 The From: field is not an address that can be read: \"alice\""),
    (b"From: \xffalice@example.com", "550 5.6.0 The From: field is not an address that can be read: \"\\xffalice"),
    (b"From: <alice@example.com", "550 5.6.0 The From: field is not an address"),
    (b"From:", "550 5.6.0 The From: field is not an address"),
])
def test_refusals(head, reply):
    with pytest.raises(FromRefused) as refused:
        check(head + b"\r\n\r\nbody\r\n", mine, "alice@example.com", "refuse")
    assert refused.value.reply.startswith(reply)
    if "5.6.0" in reply:            # what can't be read is refused under either policy
        with pytest.raises(FromRefused):
            check(head + b"\r\n\r\nbody\r\n", mine, "alice@example.com", "rewrite")
