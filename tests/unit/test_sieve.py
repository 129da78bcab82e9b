"""The Sieve interpreter (RFC 5228, 5232, 3894, 5490 :create) on parsed messages."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posthouse.delivery.vacation import why_not
from posthouse.sieve.interpreter import FileInto, MessageFacts, SieveRuntimeError, evaluate
from posthouse.sieve.script import SieveError, compile_script

RAW = (b"From: Boss <boss@Example.org>\r\nTo: me@example.com, other@example.net\r\n"
       b"Cc: team@example.com\r\nSubject: =?utf-8?q?Urgent=3A_f=C3=BCr_heute?=\r\n"
       b"X-Spam-Score: 7\r\nMessage-ID: <m1@example.org>\r\n\r\nbody\r\n")


def run(script: str, raw: bytes = RAW, mail_from="boss@example.org", rcpt="me+work@example.com"):
    facts = MessageFacts.from_message(raw, raw.index(b"\r\n\r\n") + 4, mail_from, rcpt)
    return evaluate(compile_script(script), facts)


def boxes(outcome):
    return [(d.mailbox, sorted(d.flags)) for d in outcome.deliveries]


def test_no_actions_means_implicit_keep():
    assert boxes(run("")) == [("INBOX", [])]
    assert boxes(run("keep;")) == [("INBOX", [])]
    assert boxes(run('if false { discard; }')) == [("INBOX", [])]


def test_fileinto_discard_copy_stop():
    req = 'require ["fileinto", "copy"];\n'
    assert boxes(run(req + 'fileinto "Work";')) == [("Work", [])]
    assert boxes(run(req + 'fileinto :copy "Work";')) == [("Work", []), ("INBOX", [])]
    assert boxes(run(req + 'fileinto "A"; fileinto "A";')) == [("A", [])]     # once per mailbox
    outcome = run("discard;")
    assert outcome.deliveries == [] and outcome.discarded
    assert boxes(run(req + 'stop; fileinto "Never";')) == [("INBOX", [])]
    assert boxes(run(req + 'discard; keep;')) == [("INBOX", [])]     # an explicit keep still keeps


def test_redirect():
    outcome = run('redirect "a@example.org"; redirect "A@example.org";')
    assert outcome.redirects == ["a@example.org"] and outcome.deliveries == []      # once per address
    outcome = run('require "copy"; redirect :copy "a@example.org";')
    assert outcome.redirects == ["a@example.org"] and boxes(outcome) == [("INBOX", [])]
    for bad_address in ("not-an-address", "a@", "x@y, z@w"):
        with pytest.raises(SieveRuntimeError):
            run(f'redirect "{bad_address}";')
    with pytest.raises(SieveRuntimeError):
        run("".join(f'redirect "r{i}@example.org";' for i in range(6)))


def test_header_tests_decode_and_match_types():
    req = 'require "fileinto";\n'
    assert boxes(run(req + 'if header :contains "subject" "FÜR" { fileinto "X"; }')) == [("INBOX", [])]
    assert boxes(run(req + 'if header :contains "subject" "für" { fileinto "X"; }')) == [("X", [])]
    assert boxes(run(req + 'if header :contains "Subject" "URGENT" { fileinto "X"; }')) == [("X", [])]
    assert boxes(run(req + 'if header :comparator "i;octet" :contains "subject" "URGENT" '
                           '{ fileinto "X"; }')) == [("INBOX", [])]
    assert boxes(run(req + 'if header :is "x-spam-score" "7" { fileinto "X"; }')) == [("X", [])]
    assert boxes(run(req + 'if header :matches "subject" "urgent*heute" { fileinto "X"; }')) == [("X", [])]
    assert boxes(run(req + 'if header :matches "subject" "urgent?" { fileinto "X"; }')) == [("INBOX", [])]
    assert boxes(run(req + r'if header :matches "subject" "*\\*" { fileinto "X"; }')) == [("INBOX", [])]
    assert boxes(run(req + 'if header :is ["to", "subject"] ["nope", "me@example.com, other@example.net"] '
                           '{ fileinto "X"; }')) == [("X", [])]


def test_address_envelope_exists_size_and_logic():
    req = 'require ["fileinto", "envelope"];\n'
    cases = {
        'address :domain :is "from" "example.ORG"': True,
        'address :localpart :is "from" "boss"': True,
        'address :all :is ["to", "cc"] "team@example.com"': True,
        'address :is "to" "nobody@example.com"': False,
        'envelope :is "from" "boss@example.org"': True,
        'envelope :localpart :is "to" "me+work"': True,
        'envelope :domain :is "to" "example.com"': True,
        'exists ["subject", "x-spam-score"]': True,
        'exists ["subject", "x-missing"]': False,
        'size :over 100': True,
        'size :under 1K': True,
        'size :over 1M': False,
        'allof (true, not false)': True,
        'anyof (false, header :contains "subject" "nope")': False,
        'not anyof (false, false)': True,
    }
    for test, want in cases.items():
        got = boxes(run(req + f'if {test} {{ fileinto "Hit"; }}'))
        assert got == ([("Hit", [])] if want else [("INBOX", [])]), test


def test_elsif_else_chain():
    script = '''require "fileinto";
    if header :is "subject" "nope" { fileinto "A"; }
    elsif header :contains "subject" "urgent" { fileinto "B"; }
    elsif true { fileinto "C"; }
    else { fileinto "D"; }'''
    assert boxes(run(script)) == [("B", [])]
    assert boxes(run('require "fileinto"; if false { fileinto "A"; } else { fileinto "D"; }')) == [("D", [])]


def test_imap4flags_and_mailbox_create():
    script = r'''require ["fileinto", "imap4flags", "mailbox"];
    setflag "\\Seen";
    addflag ["$Work", "\\Flagged  $Later"];
    removeflag "$later";
    if hasflag :is "\\flagged" { fileinto :create "Flagged/Now"; }
    fileinto :flags "\\Answered" "Other";
    keep;'''
    outcome = run(script)
    assert boxes(outcome) == [("Flagged/Now", ["$Work", "\\Flagged", "\\Seen"]), ("Other", ["\\Answered"]),
                              ("INBOX", ["$Work", "\\Flagged", "\\Seen"])]
    assert outcome.deliveries[0] == FileInto("Flagged/Now", outcome.deliveries[0].flags, True)


def test_vacation_parameters():
    v = run('require "vacation"; vacation :days 3 :subject "Away" :addresses ["me@example.com"] '
            '"Back on Monday.";').vacation
    assert (v.days, v.subject, v.addresses, v.reason) == (3, "Away", ["me@example.com"], "Back on Monday.")
    assert run('require "vacation"; vacation :days 0 "x";').vacation.days == 1     # at least a day
    assert run('require "vacation"; vacation "x";').vacation.days == 7


def test_vacation_rules():
    base = {"to": ["me@example.com"], "subject": ["hi"]}
    own = {"me@example.com"}
    assert why_not(base, "friend@example.org", own) is None
    assert why_not(base, "", own)
    assert why_not(base, "MAILER-DAEMON@example.org", own)
    assert why_not(base, "owner-list@example.org", own)
    assert why_not(base, "list-request@example.org", own)
    assert why_not(base, "me@example.com", own)
    assert why_not({**base, "auto-submitted": ["auto-replied"]}, "f@example.org", own)
    assert why_not({**base, "auto-submitted": ["no"]}, "f@example.org", own) is None
    assert why_not({**base, "list-id": ["<l.example.org>"]}, "f@example.org", own)
    assert why_not({**base, "precedence": ["bulk"]}, "f@example.org", own)
    assert why_not({"to": ["someone@else.example"]}, "f@example.org", own)


@pytest.mark.parametrize("script", [
    "if {", 'fileinto "x";', 'require "nonsense";', 'require "body";', "keep", 'if true { keep; } else',
    'elsif true { keep; }', '"just a string";', "if header :is { }", "x" * 300000,
])
def test_broken_scripts_are_refused(script):
    with pytest.raises(SieveError):
        compile_script(script)


def test_runtime_errors_are_reported():
    with pytest.raises(SieveError):      # caught when the script is parsed
        run('if header :comparator "i;unknown" :is "subject" "x" { keep; }')
    many = 'require ["fileinto", "copy"];\n' + "".join(f'fileinto :copy "b{i}";' for i in range(100))
    with pytest.raises(SieveRuntimeError):
        run(many)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list('ifels{}();,[]":*\\ \nabc0123KM#/') + [
    "require ", "fileinto ", "header ", ":is ", "text:\n", "keep;", '"x" ', "if ", "anyof", "discard;"]),
    max_size=40).map("".join))
def test_garbage_scripts_only_raise_sieve_errors(text):
    try:
        nodes = compile_script(text)
    except SieveError:
        return
    try:
        run_outcome = evaluate(nodes, MessageFacts.from_message(RAW, RAW.index(b"\r\n\r\n") + 4, "a@b", "c@d"))
    except SieveRuntimeError:
        return
    assert run_outcome.deliveries or run_outcome.discarded
