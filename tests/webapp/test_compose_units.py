"""The compose page's pure parts: reply and forward forms made from the
original (garbage included), drafts built and read back (half-typed and
hostile values), uploaded file names, address fields, and the size budget."""
from __future__ import annotations

import email
import email.policy
import os
from types import SimpleNamespace

import pytest

from posthouse.send.compose import compose
from posthouse.web import drafts
from posthouse.web.pages import compose as page

ACCOUNT = SimpleNamespace(id=1, login="alice", addresses=["alice@example.test", "sales@example.test"])


def original(**headers) -> bytes:
    lines = [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\nHello,\r\nsee you.\r\n").encode()


def test_reply_to_sender_and_reply_all_without_oneself():
    raw = original(From="Carol <carol@client.example>", To="sales@example.test, Bob <bob@client.example>",
                   Cc="ALICE@example.test, dave@client.example", Subject="Prices", Message_ID="<p1@client.example>",
                   References="<p0@client.example>")
    reply = page.reply_form(ACCOUNT, raw, "INBOX", reply_all=False)
    assert reply.to == "Carol <carol@client.example>" and reply.cc == ""
    assert reply.from_addr == "sales@example.test"          # the identity it was sent to
    assert reply.subject == "Re: Prices" and reply.in_reply_to == "<p1@client.example>"
    assert reply.references == "<p0@client.example> <p1@client.example>"
    assert "> Hello," in reply.text and "Carol <carol@client.example> wrote:" in reply.text
    everyone = page.reply_form(ACCOUNT, raw, "INBOX", reply_all=True)
    assert everyone.to == "Carol <carol@client.example>, Bob <bob@client.example>"
    assert everyone.cc == "dave@client.example"
    again = page.reply_form(ACCOUNT, original(From="x@y.example", Subject="RE: Prices"), "INBOX", reply_all=False)
    assert again.subject == "RE: Prices"        # not "Re: RE: ..."
    assert page.forward_subject("Fwd: x") == "Fwd: x" and page.forward_subject("x") == "Fwd: x"


def test_reply_to_header_wins_and_own_message_goes_to_its_recipients():
    raw = original(From="Carol <carol@client.example>", Reply_To="list@client.example", Subject="x")
    assert page.reply_form(ACCOUNT, raw, "INBOX", reply_all=False).to == "list@client.example"
    mine = original(From="alice@example.test", To="bob@client.example", Subject="mine")
    assert page.reply_form(ACCOUNT, mine, "Sent", reply_all=True).to == "bob@client.example"


@pytest.mark.parametrize("raw", [
    b"", b"garbage without headers", b"\xff\xfe\x00\x01" * 100,
    b"From: =?x-unknown?q?bad?=\r\nSubject: =?utf-8?b?!!!?=\r\nMessage-ID: not-an-id\r\n"
    b"Content-Type: text/html; charset=nonsense\r\n\r\n<p>hi<script>x</script></p>",
    b"Subject: a\r\n b\r\nFrom: <>\r\nTo: ,,,@,\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nbroken",
    b"Subject: inject\r\n\r\n" + b"x" * 300_000,
    b"From: =?utf-8?q?J=C3=B6rg?= <j@x.example>, <\r\nTo: <\r\nCc: a@\r\nReply-To: ,\r\n\r\nbody",
])
def test_garbage_originals_make_forms_not_crashes(raw):
    for form in (page.reply_form(ACCOUNT, raw, "INBOX", reply_all=True), page.forward_form(ACCOUNT, raw, "INBOX", 1)):
        assert "\n" not in form.subject and "\r" not in form.to + form.cc + form.subject
        assert form.in_reply_to == "" or form.in_reply_to.startswith("<")
        assert len(form.text) < 2 * page.MAX_QUOTED


def test_html_original_quoted_as_text():
    assert page.html_to_text("<p>One</p><script>alert(1)</script><p>Two &amp; three</p>") == "One\n\nTwo & three"
    assert page.html_to_text("<div><b>unclosed") == "unclosed"


def test_draft_round_trip_half_typed_and_hostile_values():
    fields = drafts.DraftFields(from_addr="alice@example.test", to="bo", cc="Jörg <j@ex.example>, <",
                                bcc="secret@x.example", subject="Hi\r\nBcc: evil@x.example", text="Line 1\nZeile 2 äö",
                                in_reply_to="<p1@client.example>", references="junk <p0@c.example> <p1@client.example>",
                                attachments=[("a.txt", "text/plain", b"abc"), ("m", "message/rfc822", b"x")])
    raw, message_id = drafts.build(fields, domain="example.test")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert parsed["Message-ID"] == message_id and not any(line.startswith(b"Bcc: evil") for line in head)
    assert b"Bcc: secret@x.example" in head     # (a draft keeps its Bcc; sending leaves it out)
    back = drafts.read(raw)
    assert back.to == "bo" and back.bcc == "secret@x.example" and back.subject.replace("  ", " ") == "Hi Bcc: evil@x.example"
    assert back.cc.startswith("Jörg") and back.text == "Line 1\nZeile 2 äö"
    assert back.references == "<p0@c.example> <p1@client.example>"
    names = [(p.get_filename(), p.get_content_type()) for p in parsed.iter_attachments()]
    assert names == [("a.txt", "text/plain"), ("m", "application/octet-stream")]
    assert drafts.read(b"\x00garbage") is not None


def test_safe_filenames_and_types():
    assert page.safe_filename("../../etc/passwd") == "passwd"
    assert page.safe_filename("C:\\Users\\x\\report.pdf") == "report.pdf"
    assert page.safe_filename('a\r\nb"c\x00.txt') == "abc.txt"
    assert page.safe_filename("") == "attachment" and page.safe_filename("..") == "attachment"
    assert len(page.safe_filename("x" * 1000)) == 200
    assert page.safe_content_type("image/png") == "image/png"
    assert page.safe_content_type("text/html\r\nX-Evil: 1") == "application/octet-stream"
    assert page.safe_content_type("message/rfc822") == "application/octet-stream"
    assert page.safe_content_type(None) == "application/octet-stream"


def test_address_fields_and_identities():
    assert page._addresses("To", "Ann <ann@x.example>, bob@y.example") == ["Ann <ann@x.example>", "bob@y.example"]
    assert page._addresses("To", " , ") == [] and page._addresses("To", "a@x.example, ,b@y.example,") == [
        "a@x.example", "b@y.example"]
    assert page._addresses("Cc", '"Doe, J" <j@x.example>') == ['"Doe, J" <j@x.example>']
    for bad in ("bob", "a@b\r\nBcc: c@d.example", "x@", "<script>@x"):
        with pytest.raises(page.Refused):
            page._addresses("To", bad)
    fields = page.ComposeForm(from_addr="SALES@example.test", to="c@client.example", subject="s", text="t")
    assert page._send_body(ACCOUNT, fields).from_address == "sales@example.test"
    with pytest.raises(page.Refused, match="not one of this account"):
        page._send_body(ACCOUNT, page.ComposeForm(from_addr="ceo@example.test", to="c@client.example"))
    assert page.identities(SimpleNamespace(addresses=[], login="x@y.example")) == ["x@y.example"]


def test_the_attachment_budget_fits_the_message_size():
    limit = 3 * 1024 * 1024
    budget = page.attachment_budget(limit, 1000)
    composed = compose(from_addr="a@x.example", to=["b@y.example"], subject="s", text="t" * 1000,
                       attachments=[("a.bin", "application/octet-stream", os.urandom(budget))])
    assert len(composed.message) <= limit
    assert page.encoded_size(budget) >= budget * 4 // 3


def test_posted_form_garbage():
    from starlette.datastructures import FormData
    form = page.posted_form(FormData([("to", "a@x.example"), ("draft", ""), ("text", "a\r\nb"), ("back_folder", "IN\r\nBOX")]))
    assert form.text == "a\nb" and form.draft is None and form.back_folder == "IN  BOX"
    for bad in ([("draft", "-1")], [("draft", "99999999999")], [("forward_uid", "x")],
                [("forward_folder", "INBOX\r\nA1 DELETE INBOX")], [("subject", "x" * 20_000)]):
        with pytest.raises(page.Refused):
            page.posted_form(FormData(bad))


def test_compose_forms_bounded_by_the_message_size():
    from posthouse.web.limits import LARGE, MiB, SMALL, limit_for
    assert limit_for("/mail/1/compose/send", max_message=3 * MiB) == 4 * MiB
    assert limit_for("/mail/12/compose/draft", max_message=None) == LARGE + MiB
    assert limit_for("/mail/1/compose", max_message=3 * MiB) == SMALL       # (a GET, or anything else)
    assert limit_for("/mail/1/sender-contact", max_message=3 * MiB) == SMALL
    assert limit_for("/api/v1/send") == LARGE
