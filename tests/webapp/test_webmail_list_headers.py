"""The message list's Subject and From: plain ASCII headers take a fast path
(no full header parsing); it must show what the email package's policy.default
shows, and garbage must never crash it."""
from __future__ import annotations

import email
import email.policy
import random
from email.utils import parseaddr

from posthouse.web.pages.mailbox import list_headers

CASES = [
    b"From: Sender 1 <s1@x.example>\r\nSubject: Message number 1 about\r\n the report\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n",
    b'From: "Doe, John" <j@x.example>\r\nSubject:   spaced   subject  \r\n\r\n',
    b"From: <j@x.example>\r\n\r\n",
    b"From: a\r\n\tb <c@d.example>\r\nSubject: folded\r\n\twith a tab\r\n\r\n",
    b"Subject: only a subject\r\n\r\n",
    b"",
    b"From: =?utf-8?q?J=C3=B6rg?= <j@x.example>\r\nSubject: =?utf-8?b?w6ll?=\r\n\r\n",
    b"From: \xc3\xa9 <j@x.example>\r\nSubject: caf\xc3\xa9\r\n\r\n",
    b"From: <script>alert(1)</script>\r\nSubject: <b>bold</b> & co\r\n\r\n",
]


def shown_by_policy_default(raw: bytes) -> tuple[str, tuple[str, str]]:
    headers = email.message_from_bytes(raw, policy=email.policy.default)
    return str(headers.get("Subject") or "").strip(), parseaddr(str(headers.get("From") or ""))


def test_list_headers_show_what_the_full_parser_shows():
    for raw in CASES:
        subject, sender = list_headers(raw)
        assert (subject.strip(), parseaddr(sender)) == shown_by_policy_default(raw), raw


def test_list_headers_with_garbage():
    rng = random.Random(23)
    alphabet = b"From:Subject=?<>\"()\r\n\t \x00\xff\xc3\xa9abc@."
    for _ in range(500):
        raw = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        subject, sender = list_headers(raw)
        assert isinstance(subject, str) and isinstance(sender, str)
