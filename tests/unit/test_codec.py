from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from posthouse.imap.protocol import mutf7
from posthouse.imap.protocol.reader import (BadCommand, CommandReader, Fatal, LiteralTooBig,
                                            NeedContinuation, RawLine)
from posthouse.imap.protocol.tokenizer import Literal, build_command, split_tag, tokenize
from posthouse.imap.protocol.tokens import Atom, Command, ParenList, ParseError, String
from posthouse.imap.protocol.writer import astring, quoted_or_literal


def events(reader, data):
    reader.feed(data)
    out = []
    while (e := reader.next_event()) is not None:
        out.append(e)
    return out


def test_simple_command():
    [cmd] = events(CommandReader(), b"a1 select INBOX\r\n")
    assert cmd == Command("a1", "SELECT", [Atom("INBOX")], False)


def test_uid_prefix_and_nested_lists():
    [cmd] = events(CommandReader(), b'x UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From "To")]<0.10>)\r\n')
    assert cmd.uid and cmd.name == "FETCH"
    assert cmd.args[0] == Atom("1:*")
    assert isinstance(cmd.args[1], ParenList)
    assert cmd.args[1].items[1] == Atom('BODY.PEEK[HEADER.FIELDS (From "To")]<0.10>')


def test_quoted_escapes():
    [cmd] = events(CommandReader(), b'a LOGIN "us\\"er" "p\\\\w"\r\n')
    assert cmd.args == [String(b'us"er'), String(b"p\\w")]


def test_sync_literal_streams_in_pieces():
    r = CommandReader()
    assert events(r, b"a APPEND INBOX {11}\r\n") == [NeedContinuation(11)]
    assert events(r, b"hello ") == []
    [cmd] = events(r, b"world\r\n")
    assert cmd.args[1] == String(b"hello world", is_literal=True)


def test_nonsync_and_binary_literals_in_one_command():
    [cmd] = events(CommandReader(), b"a APPEND INBOX {2+}\r\nab ~{3+}\r\n\x00\x01\x02\r\n")
    assert cmd.args[1].value == b"ab" and cmd.args[2].literal8 and cmd.args[2].value == b"\x00\x01\x02"


def test_literal_limits():
    r = CommandReader(max_literal=10)
    [e] = events(r, b"a APPEND INBOX {11}\r\n")
    assert e == LiteralTooBig("a", 11)
    [cmd] = events(r, b"b NOOP\r\n")          # the stream is still in step
    assert cmd.name == "NOOP"
    r = CommandReader(max_literal=10)
    [e] = events(r, b"a APPEND INBOX {11+}\r\n")
    assert isinstance(e, Fatal)


def test_line_limit():
    r = CommandReader(max_line=100)
    [e] = events(r, b"a NOOP " + b"x" * 200)
    assert isinstance(e, Fatal)


@pytest.mark.parametrize("line", [b"", b"(", b"a", b"a (", b'a NOOP "x', b"a NOOP )", b"a{ NOOP",
                                  b"a NOOP {5", b"a NOOP \x01", b"\xff\xfe NOOP"])
def test_malformed_lines_are_bad(line):
    [e] = events(CommandReader(), line + b"\r\n")
    assert isinstance(e, BadCommand)


def test_raw_mode():
    r = CommandReader()
    r.raw_mode = True
    assert events(r, b"DONE\r\nb NOOP\r\n")[0] == RawLine(b"DONE")


@given(st.binary(max_size=300))
def test_reader_never_raises(data):
    r = CommandReader(max_line=200, max_literal=100)
    for i in range(0, len(data), 7):
        events(r, data[i:i + 7])


def test_writer():
    assert quoted_or_literal("a\"b") == b'"a\\"b"'
    assert quoted_or_literal(b"a\r\nb") == b"{4}\r\na\r\nb"
    assert quoted_or_literal("é", utf8=False) == b"{2}\r\n\xc3\xa9"
    assert astring("INBOX") == b"INBOX" and astring("a b") == b'"a b"'


@pytest.mark.parametrize("text,encoded", [("INBOX", "INBOX"), ("Entwürfe", "Entw&APw-rfe"), ("a&b", "a&-b"),
                                          ("日本語", "&ZeVnLIqe-"), ("~peter/mail/台北", "~peter/mail/&U,BTFw-")])
def test_mutf7(text, encoded):
    assert mutf7.encode(text) == encoded
    assert mutf7.decode(encoded) == text


@pytest.mark.parametrize("bad", ["&", "&Jjo", "&AGE-", "é", "&!!-"])
def test_mutf7_rejects(bad):
    with pytest.raises(mutf7.MUTF7Error):
        mutf7.decode(bad)


@pytest.mark.parametrize("code", list(range(0x100)) + [0x2028, 0xFEFF, 0x1F600])
def test_mutf7_takes_exactly_printable_ascii_as_it_is(code):
    name = "Box" + chr(code) + "x"
    if 0x20 <= code <= 0x7E and code != ord("&"):
        assert mutf7.decode(name) == name
    else:
        with pytest.raises(mutf7.MUTF7Error):
            mutf7.decode(name)


@given(st.text(max_size=40))
def test_mutf7_roundtrip(text):
    assert mutf7.decode(mutf7.encode(text)) == text


# -- the tokenizer's fast path against its byte-by-byte reference ----------------

_SYNTAX = b'aZ09 ()"[]{}<>.:*%+\\~!#$&\'|,-/;=?@^_`\x00\x01\t\r\x1f\x7f\x80\xc3\xa9\xff'


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except ParseError as e:
        return ("error", str(e))


def _scan_only(parts):
    return tokenize(parts, fast=False)


@given(st.lists(st.sampled_from(list(_SYNTAX)), max_size=40).map(bytes))
def test_tokenize_fast_path_matches_the_scan(text):
    assert _outcome(tokenize, [text]) == _outcome(_scan_only, [text])


def test_tokenize_fast_path_matches_the_scan_on_many_lines():
    import random
    rng = random.Random(11)
    common = b"aZ09 ()"
    for _ in range(20000):
        # Mostly plain text, with a special byte or two somewhere.
        text = bytearray(rng.choices(common, k=rng.randint(0, 30)))
        for _ in range(rng.randint(0, 2)):
            text.insert(rng.randint(0, len(text)), rng.choice(_SYNTAX))
        text = bytes(text)
        assert _outcome(tokenize, [text]) == _outcome(_scan_only, [text]), text


def test_tokenize_fast_path_matches_the_scan_in_commands_with_literals():
    import random
    rng = random.Random(7)
    for _ in range(3000):
        parts = []
        for k in range(rng.randint(1, 4)):
            if k % 2:
                parts.append(Literal(bytes(rng.choices(_SYNTAX, k=rng.randint(0, 5)))))
            else:
                parts.append(bytes(rng.choices(b"ab ()()" + _SYNTAX, k=rng.randint(0, 12))))
        assert _outcome(tokenize, parts) == _outcome(_scan_only, parts), parts


def _tag_reference(word: bytes):
    """RFC 9051: tag = 1*<any ASTRING-CHAR except "+">."""
    if not word or any(ch in b'(){%*"\\+' or ch < 0x21 or ch > 0x7E for ch in word):
        return None
    return word.decode("ascii")


def test_tags_follow_the_rfc():
    for ch in range(256):
        word = bytes([ch])
        assert split_tag(word + b" NOOP") == _tag_reference(word), ch
        got = _outcome(build_command, [word + b" NOOP"])
        if _tag_reference(word):
            assert got == ("ok", Command(word.decode("ascii"), "NOOP", [])), ch
        else:
            assert got[0] == "error", (ch, got)
    assert split_tag(b"") is None and split_tag(b"A1.b~|}]") == "A1.b~|}]"
