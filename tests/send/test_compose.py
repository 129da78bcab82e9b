"""compose(): the shapes of what it writes, parsed back with the email package."""
from __future__ import annotations

import email
from email import policy

import pytest

from posthouse.send.compose import ComposeError, compose, reply_subject

BASE = dict(from_addr="jane@example.com", to=["bob@example.org"], subject="Hello", message_id_domain="example.com")


def parse(data: bytes):
    return email.message_from_bytes(data, policy=policy.default)


def test_text_only_crlf_and_required_headers():
    data, message_id = compose(**BASE, text="Hi Bob,\nsee you.\n")
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    msg = parse(data)
    assert msg["Message-ID"] == message_id and message_id.endswith("@example.com>")
    assert msg["Date"] and msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().replace("\r\n", "\n") == "Hi Bob,\nsee you.\n"
    assert msg["From"] == "jane@example.com" and msg["To"] == "bob@example.org"


def test_text_and_html_make_an_alternative():
    msg = parse(compose(**BASE, text="plain ünïcode", html="<p>rich <b>ünïcode</b></p>").message)
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert msg.get_body(("html",)).get_content().strip() == "<p>rich <b>ünïcode</b></p>"
    assert msg.get_body(("plain",)).get_content().strip() == "plain ünïcode"


def test_html_only():
    msg = parse(compose(**BASE, html="<p>only</p>").message)
    assert msg.get_content_type() == "text/html"


def test_attachments_make_a_mixed_message_and_stay_intact():
    blob = bytes(range(256)) * 40
    pdf = b"%PDF-1.4\n" + b"\x00\xff" * 500
    data = compose(**BASE, text="see attached", html="<p>see attached</p>",
                   attachments=[("résumé.pdf", "application/pdf", pdf), ("data.bin", "", blob)]).message
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    msg = parse(data)
    assert msg.get_content_type() == "multipart/mixed"
    first, *attached = list(msg.iter_parts())
    assert first.get_content_type() == "multipart/alternative"
    assert [(a.get_filename(), a.get_content_type()) for a in attached] == [
        ("résumé.pdf", "application/pdf"), ("data.bin", "application/octet-stream")]
    assert attached[0].get_content() == pdf and attached[1].get_content() == blob
    # only the top carries MIME-Version
    assert [p["MIME-Version"] for p in msg.walk()][1:] == [None] * 5


def test_reply_headers_and_subject_prefixed_once():
    composed = compose(**{**BASE, "subject": "Your application"}, text="thanks",
                       in_reply_to="<parent@mail.example.org>",
                       references="<root@x.example>\r\n <middle@x.example>")
    msg = parse(composed.message)
    assert msg["Subject"] == "Re: Your application"
    assert msg["In-Reply-To"] == "<parent@mail.example.org>"
    assert msg["References"].split() == ["<root@x.example>", "<middle@x.example>", "<parent@mail.example.org>"]
    again = parse(compose(**{**BASE, "subject": "RE: Your application"}, text="x", in_reply_to="parent@x",
                          references=["<root@x>"]).message)
    assert again["Subject"] == "RE: Your application"
    assert again["In-Reply-To"] == "<parent@x>" and again["References"] == "<root@x> <parent@x>"
    assert reply_subject("Re[2]: hi") == "Re[2]: hi" and reply_subject("Hi") == "Re: Hi"
    # a long References chain folds, and parses back whole
    chain = [f"<id{i}.{'x' * 30}@example.org>" for i in range(12)]
    msg = parse(compose(**BASE, text="x", in_reply_to="<p@x>", references=chain).message)
    assert msg["References"].split() == chain + ["<p@x>"]


def test_bcc_is_not_in_the_bytes_but_in_the_envelope():
    composed = compose(**BASE, cc=["Carol <carol@example.org>"], bcc=["secret@example.net", "BOB@example.org"],
                       text="x")
    assert b"secret@example.net" not in composed.message and b"Bcc" not in composed.message
    assert composed.recipients == ["bob@example.org", "carol@example.org", "secret@example.net"]
    assert composed.mail_from == "jane@example.com"


def test_reply_to_and_extra_headers():
    msg = parse(compose(**BASE, text="x", reply_to=["Desk <desk@example.com>"],
                        extra_headers=[("X-Campaign", "spring")]).message)
    assert msg["Reply-To"].addresses[0].addr_spec == "desk@example.com"
    assert msg["X-Campaign"] == "spring"
    for name, value in (("From", "x@y.z"), ("Bad Name", "v"), ("X-Ok", "v\r\nBcc: a@b.c")):
        with pytest.raises(ComposeError):
            compose(**BASE, text="x", extra_headers=[(name, value)])


def test_identity_name_and_unicode_names_encoded():
    msg = parse(compose(**{**BASE, "to": ["Jürgen Groß <jg@example.de>"], "subject": "Grüße"},
                        identity_name="Zoë Recruiter", text="x").message)
    assert msg["From"].addresses[0].display_name == "Zoë Recruiter"
    assert msg["To"].addresses[0].display_name == "Jürgen Groß"
    assert msg["Subject"] == "Grüße"


@pytest.mark.parametrize("field, value", [
    ("subject", "Hi\r\nBcc: victim@example.net"),
    ("subject", "Hi\nX-Injected: 1"),
    ("identity_name", "Jane\r\nX-Injected: 1"),
    ("to", ["Bob\r\nBcc: victim@example.net <bob@example.org>"]),
    ("to", [("Bob\nX: y", "bob@example.org")]),
    ("from_addr", "jane@example.com\r\nBcc: v@example.net"),
    ("in_reply_to", "<a@b>\r\nX-Injected: 1"),
    ("attachments", [("a\r\nX-Injected: 1.txt", "text/plain", b"x")]),
    ("attachments", [("a.txt", "text/plain\r\nX-Injected: 1", b"x")]),
])
def test_header_injection_refused(field, value):
    with pytest.raises(ComposeError):
        compose(**{**BASE, "text": "x", field: value})


@pytest.mark.parametrize("field, value", [
    ("to", ["not an address"]), ("to", []), ("from_addr", "nobody"),
    ("message_id_domain", "bad domain"), ("in_reply_to", "no-at-sign"),
])
def test_bad_values_refused(field, value):
    with pytest.raises(ComposeError):
        compose(**{**BASE, "text": "x", field: value})


def test_message_id_domain_defaults_to_the_senders():
    _, message_id = compose(from_addr="jane@mail.example.com", to=["b@example.org"], subject="s", text="x")
    assert message_id.endswith("@mail.example.com>")
    _, message_id = compose(from_addr="jane@bücher.example", to=["b@example.org"], subject="s", text="x")
    assert message_id.endswith("@xn--bcher-kva.example>")
