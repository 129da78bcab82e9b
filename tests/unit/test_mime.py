from __future__ import annotations

import glob
import os

from hypothesis import given, settings, strategies as st

from posthouse.mime.address import parse_address_list
from posthouse.mime.message import normalize_newlines, parse_message
from posthouse.mime.sections import filter_header_fields, section_range
from tests.conftest import shared_path


def test_envelope_groups_routes_and_comments():
    assert parse_address_list("group: g1@d1.org, g2@d2.org;, x@y") == [
        (None, None, "group", None), (None, None, "g1", "d1.org"), (None, None, "g2", "d2.org"),
        (None, None, None, None), (None, None, "x", "y")]
    assert parse_address_list("<@route:user@domain>") == [(None, "@route", "user", "domain")]
    assert parse_address_list("user@domain (Real Name)") == [("Real Name", None, "user", "domain")]
    assert parse_address_list('"Doe, John" <j@d.com>') == [("Doe, John", None, "j", "d.com")]
    assert parse_address_list("undisclosed") == [(None, None, "undisclosed", "MISSING_DOMAIN")]


NESTED = (b"From: a@b\r\nSubject: outer\r\nContent-Type: multipart/mixed; boundary=B1\r\n\r\n"
          b"preamble\r\n--B1\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
          b"--B1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: c@d\r\n"
          b"Content-Type: multipart/alternative; boundary=B2\r\n\r\n--B2\r\n\r\ninner-1\r\n"
          b"--B2\r\nContent-Type: text/html\r\n\r\n<b>inner-2</b>\r\n--B2--\r\n"
          b"--B1--\r\nepilogue\r\n")


def test_sections_of_nested_message():
    p = parse_message(NESTED)

    def sec(nums, kw=None):
        span = section_range(p.parts, nums, kw)
        return None if span is None else NESTED[span[0]:span[1]]

    assert sec([1]) == b"first"
    assert sec([2, "HEADER"][:1], "HEADER").startswith(b"Subject: inner")
    assert sec([2, 1]) == b"inner-1"
    assert sec([2, 2]) == b"<b>inner-2</b>"
    assert sec([2, 2], "MIME") == b"Content-Type: text/html\r\n\r\n"
    assert sec([1], "TEXT") is None          # not a message/rfc822 part
    assert sec([3]) is None
    assert sec([], "TEXT").startswith(b"preamble")
    assert b'"alternative"' in p.bodystructure and b'"rfc822"' in p.bodystructure
    assert "inner-2" in p.body_text and "preamble" not in p.body_text


def test_empty_parts_stay_inside_their_multipart():
    raw = b"Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n\r\n--X\r\n"
    p = parse_message(raw)
    for nums in ([1], [2]):
        span = section_range(p.parts, nums, None)
        assert span is not None and span[0] <= span[1] <= len(raw)
    assert b" -" not in p.bodystructure     # no negative sizes


def test_header_fields_filter_keeps_folding():
    block = b"Subject: a\r\n b\r\nFrom: x\r\nTo: y\r\n\r\n"
    assert filter_header_fields(block, ["subject"], False) == b"Subject: a\r\n b\r\n\r\n"
    assert filter_header_fields(block, ["subject"], True) == b"From: x\r\nTo: y\r\n\r\n"


def test_newline_normalization():
    assert normalize_newlines(b"a\nb\r\nc\n") == b"a\r\nb\r\nc\r\n"
    assert normalize_newlines(b"a\r\nb\r\n") == b"a\r\nb\r\n"


def test_corpus_parses():
    root = shared_path("corpus")
    files = glob.glob(os.path.join(root, "**", "*.eml"), recursive=True)
    assert len(files) > 50
    for path in files:
        with open(path, "rb") as f:
            raw = normalize_newlines(f.read())
        p = parse_message(raw)
        assert p.envelope.startswith(b"(") and p.bodystructure.startswith(b"(")
        assert p.bodystructure.count(b"(") >= 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_never_crashes(raw):
    p = parse_message(raw)
    assert p.envelope.startswith(b"(")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"Content-Type: multipart/mixed; boundary=X\r\n", b"\r\n", b"--X\r\n",
                                 b"--X--\r\n", b"Content-Type: message/rfc822\r\n", b"text\r\n",
                                 b"Subject: =?utf-8?q?x?=\r\n", b"From: <@a:b@c>, g:;\r\n"]), max_size=40))
def test_structured_garbage(pieces):
    raw = b"".join(pieces)
    p = parse_message(raw)
    for nums in ([1], [1, 1], [2, 1, 1]):
        span = section_range(p.parts, nums, None)
        assert span is None or 0 <= span[0] <= span[1] <= len(raw)


def test_base_subject_rfc5256():
    from posthouse.mime.subject import base_subject
    cases = {
        "Re: hello": ("hello", True),
        "RE: Re: [list] Fwd: hello (fwd)": ("hello", True),
        "[Fwd: Re: hello]": ("hello", True),
        "  hello   world  ": ("hello world", False),
        "[list] hello": ("hello", False),
        "[only a blob]": ("[only a blob]", False),       # a blob stays when nothing would be left
        "Re [x]: topic": ("topic", True),
        "fw: topic": ("topic", True),
        "": ("", False),
        "Re:": ("", True),
        "Re: [": ("[", True),
    }
    for subject, expected in cases.items():
        assert base_subject(subject) == expected, subject


def test_sort_keys_from_headers():
    from posthouse.mime.message import parse_message
    p = parse_message(b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.com>, b@x\r\n"
                      b"To: undisclosed:;, Zed <zed@example.org>\r\nSubject: Re: Fwd: plans\r\n\r\nx\r\n")
    # A group's name stands first in the To: list, as it does in ENVELOPE (and as
    # imaptest's sort-addresses and sort-display-to expect).
    assert p.sort_keys == {"from": "jurgen", "to": "undisclosed", "cc": "", "displayfrom": "Jürgen",
                           "displayto": "undisclosed", "subject": "plans", "sentday": None}


def test_quoted_printable_as_rfc2045_says():
    from posthouse.mime.decode import decode_qp
    # trailing padding goes; "=" then padding is still a soft break; a bad "=" stays
    assert decode_qp(b"hello  \r\nbar=\r\n\r\nfoo \t= \t\r\n=62\r\n=ZZ=3d") == b"hello\r\nbar\r\nfoo \tb\r\n=ZZ="
    assert decode_qp(b"a=\nb\n") == b"ab\r\n"
    assert decode_qp(b"") == b""
