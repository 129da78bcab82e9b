"""The imaptest runner itself: strict where the format is, and safe on garbage scripts."""
from __future__ import annotations

import asyncio
import os
import random

import pytest

from .imaptest_format import Atom, ScriptError, nul_in_string, parse_args, parse_script, parse_untagged
from .imaptest_match import FULL, Variables
from .imaptest_runner import Account, Connection, TestFailed, run_script


def match(pattern: str, reply: str, variables: Variables | None = None) -> bool:
    v = variables or Variables()
    return v.match_args(parse_untagged(pattern), parse_args(reply.encode()), prefix=False) == FULL


def test_fetch_defaults_are_unordered_and_flags_exact():
    assert match("1 fetch (uid 5 flags (\\seen))", "1 FETCH (FLAGS (\\Seen) UID 5)")
    assert match("1 fetch (flags (\\seen))", "1 FETCH (FLAGS (\\Recent \\Seen))")
    assert not match("1 fetch (flags (\\seen))", "1 FETCH (FLAGS (\\Seen \\Deleted))")
    assert not match("1 fetch (uid 5)", "1 FETCH (UID 6)")
    assert match("list ($!unordered \\noselect) / x", "LIST (\\HasChildren \\NoSelect) / x")
    assert not match("search 1 2", "SEARCH 1 2 3")


def test_variables_bind_once_and_compare_exactly():
    v = Variables()
    assert match("1 fetch (uid $uid1)", "1 FETCH (UID 17)", v)
    assert v.values["uid1"] == "17"
    assert match("search $uid1", "SEARCH 17", v)
    assert not match("search $uid1", "SEARCH 18", v)
    assert match("esearch (tag $tag) all $a:$b", 'ESEARCH (TAG "x") ALL 3:9', v)
    assert (v.values["a"], v.values["b"]) == ("3", "9")


def test_modseq_variables_must_grow_by_their_gap():
    v = Variables()
    assert match("1 fetch (modseq ($modseq2))", "1 FETCH (MODSEQ (10))", v)
    assert not match("1 fetch (modseq ($modseq5))", "1 FETCH (MODSEQ (12))", v)
    v = Variables()
    assert match("1 fetch (modseq ($modseq2))", "1 FETCH (MODSEQ (10))", v)
    assert match("1 fetch (modseq ($modseq5))", "1 FETCH (MODSEQ (100))", v)


def test_relative_sequences_follow_expunges():
    v = Variables()
    v.seqmap = [1, 2, 3, 4]
    v.expunged(1)
    assert v.relative_seq(3) == "2" and v.relative_seq(1) == "<expunged>"


def test_case_variable_is_case_sensitive():
    assert match("list () / ${case:INBOX}", "LIST () / INBOX")
    assert not match("list () / ${case:INBOX}", "LIST () / inbox")


def test_garbage_scripts_are_refused_cleanly(tmp_path):
    rng = random.Random(7)
    alphabet = b"ok no bad * ! ? ( ) { } {{{ }}} $ $! tag1 1 2 \" \\ \r\n:\x00\xff"
    for i in range(300):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 200))) + b"\n"
        path = tmp_path / f"s{i}"
        path.write_bytes(data)
        try:
            parse_script(str(path), str(path) + ".mbox")
        except (ScriptError, ValueError):
            pass


def test_parse_args_handles_literals_and_lists():
    args = parse_args(b'* 1 FETCH (BODY[] {5}\r\nhello FLAGS (\\Seen)) "q\\"s" NIL\r\n')
    assert args[:3] == ["*", "1", "FETCH"]
    assert args[3][1] == "hello" and args[3][3] == ["\\Seen"]
    assert args[4] == 'q"s' and not isinstance(args[4], Atom)


def test_literals_compare_as_imaptest_does_up_to_a_nul():
    # imaptest's strings are C strings: a "banned" literal starting with NUL bans
    # every literal starting with NUL, whatever follows (append-binary relies on it).
    assert match("1 fetch (body[1] {4}\r\n\0-xy)", "1 FETCH (BODY[1] {3}\r\n\0ab)")
    assert not match('1 fetch (body[1] "abc")', "1 FETCH (BODY[1] {4}\r\nab\0c)")


def test_a_nul_outside_a_literal8_fails_the_reply():
    args = parse_args(b"* 1 FETCH (BINARY[1] ~{2}\r\n\0a)\r\n")
    assert not nul_in_string(args)
    assert nul_in_string(parse_args(b"* 1 FETCH (BODY[1] {2}\r\n\0a)\r\n"))


def test_without_a_messages_header_nothing_is_appended(tmp_path):
    script = tmp_path / "s"
    script.write_text("state: selected\n\nok noop\n")
    assert parse_script(str(script), str(script) + ".mbox").messages == 0
    script.write_text("messages: all\n\nok noop\n")
    assert parse_script(str(script), str(script) + ".mbox").messages is None


def test_a_wrong_expectation_fails(server, tmp_path):
    if not os.path.exists(os.path.join(os.path.dirname(__file__), "known_failures.txt")):
        pytest.skip("runner data missing")
    user = server.add_user()
    mbox = tmp_path / "s.mbox"
    mbox.write_bytes(b"From a@b  Fri Feb 22 17:06:23 2008\nSubject: x\n\nbody\n")
    for body, want in [("ok noop\n", "passed"),
                       ("ok fetch 1 uid\n* 1 fetch (uid 999)\n", "failed"),
                       ("ok fetch 1 flags\n! 1 fetch (flags ())\n", "failed"),
                       ("no noop\n", "failed"),
                       ("ok fetch 1 (uid\n", "failed")]:
        script = tmp_path / "s"
        script.write_text("messages: 1\n\n" + body)
        result = asyncio.run(run_script(parse_script(str(script), str(mbox)), server.host, server.port,
                                        [Account(*user)]))
        assert result[0] == want, (body, result)


def test_a_keyword_before_its_flags_response_fails():
    conn = Connection(0, Account("u", "p"), "127.0.0.1")
    conn.track(parse_args(b"FLAGS (\\Seen $a)\r\n"))
    conn.track(parse_args(b"1 FETCH (FLAGS (\\Seen $A) UID 3)\r\n"))
    with pytest.raises(TestFailed, match="Keyword used without being in FLAGS"):
        conn.track(parse_args(b"1 FETCH (UID 3 FLAGS ($b))\r\n"))
    conn.track(parse_args(b"FLAGS ($a $b)\r\n"))
    conn.track(parse_args(b"1 FETCH (UID 3 FLAGS ($b))\r\n"))
