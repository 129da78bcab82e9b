"""The envelope address fast path (esmtp.Tuned._getaddr) must answer exactly
as aiosmtpd's own parse (the email package's) does, for plain addresses and
for everything else, garbage included."""
from __future__ import annotations

import random

from aiosmtpd.smtp import SMTP

from posthouse.delivery.esmtp import _PLAIN_ADDRESS, Tuned


class _Probe(Tuned, SMTP):
    def __init__(self, local_part_limit: int = 0):
        # Only what _getaddr reads; no protocol machinery.
        self.local_part_limit = local_part_limit


def _reference(arg: str, local_part_limit: int = 0):
    return SMTP._getaddr(_Probe(local_part_limit), arg)


CASES = [
    "<s@example.com>", "<s@example.com> SIZE=12", "<deliver>", "<a.b+c@x.y>  BODY=8BITMIME",
    "  <lead@space.example>", "<a@b> ", "<a@b>\tSIZE=1 BODY=7BIT", "<A@B.COM>x", "<>", "<> SIZE=1",
    "<a..b@x>", "<.a@b>", "<a@b.>", "<a@[1.2.3.4]>", '<"quoted local"@example.com>',
    "<@route.example:a@b>", "a@b", "a@b SIZE=1", "<a@b", "a@b>", "<<a@b>>", "<a b@c>",
    "<a@b> (comment)", "<ü@example.com>", "<a@exämple.com>", "<a@b>\r\n", "", " ", "<a@-b->",
]


def test_plain_addresses_take_the_fast_path():
    for arg in ("<s@example.com>", "<deliver>", "<a.b+c@x.y> SIZE=1"):
        assert _PLAIN_ADDRESS.match(arg), arg


def test_fast_path_answers_as_the_email_package_does():
    probe = _Probe()
    for arg in CASES:
        assert probe._getaddr(arg) == _reference(arg), arg


def test_fast_path_keeps_the_local_part_limit():
    probe = _Probe(local_part_limit=4)
    for arg in ("<abcd@example.com>", "<abcde@example.com>", "<abcde>", "<abc> SIZE=3"):
        assert probe._getaddr(arg) == _reference(arg, 4), arg


def test_random_garbage_answers_as_the_email_package_does():
    rng = random.Random(2033)
    alphabet = "ab.@<> \t\"\\[]():;,+=-_!#~ü\x00\x7f"
    probe = _Probe()
    for _ in range(3000):
        arg = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        if rng.random() < 0.5:      # near misses of the fast path's shape
            inner = "".join(rng.choice("ab.@+ \t(") for _ in range(rng.randint(0, 8)))
            arg = "<" + inner + ">" + arg
        try:
            expected = _reference(arg)
        except Exception as e:      # the email package's own failure: ours must fail alike
            expected = type(e)
        try:
            got = probe._getaddr(arg)
        except Exception as e:
            got = type(e)
        assert got == expected, repr(arg)
