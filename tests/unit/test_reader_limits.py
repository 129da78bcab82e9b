"""The IMAP command reader's limits on what one command may make the server
hold: each literal, all literals of a command together, raw lines, and the
lower limits a connection uses before login."""
from __future__ import annotations

from posthouse.config import Config
from posthouse.imap.protocol.reader import CommandReader, Fatal, LiteralTooBig, NeedContinuation, RawLine
from posthouse.imap.protocol.tokens import Command
from posthouse.imap.server import PRE_LOGIN_LITERALS, Connection


def events(reader: CommandReader, data: bytes) -> list:
    reader.feed(data)
    out = []
    while (event := reader.next_event()) is not None:
        out.append(event)
    return out


def test_literals_of_one_command_are_limited_together():
    r = CommandReader(max_literal=100, max_command_literals=150)
    assert events(r, b"a APPEND INBOX {100}\r\n") == [NeedContinuation(100)]
    # The second literal fits on its own, not with the first: refused unread.
    assert events(r, b"x" * 100 + b" {60}\r\n") == [LiteralTooBig("a", 60)]
    # The count starts again with the next command.
    assert events(r, b"b APPEND INBOX {100}\r\n") == [NeedContinuation(100)]
    assert isinstance(events(r, b"y" * 100 + b"\r\n")[0], Command)


def test_nonsync_literal_over_the_limit_is_fatal_with_its_tag():
    r = CommandReader(max_literal=100)
    assert events(r, b"t LOGIN {101+}\r\n") == [Fatal("Literal too big", "t")]
    assert r.closed
    # ...and over the command's total too.
    r = CommandReader(max_literal=100, max_command_literals=150)
    assert events(r, b"t LOGIN {100+}\r\n" + b"x" * 100 + b" {51+}\r\n") == [Fatal("Literal too big", "t")]


def test_a_raw_line_is_limited_too():
    r = CommandReader(max_line=50)
    r.raw_mode = True
    assert events(r, b"A" * 51 + b"\r\n") == [Fatal("Line too long")]
    r = CommandReader(max_line=50)
    r.raw_mode = True
    assert events(r, b"DONE\r\n") == [RawLine(b"DONE")]


def test_mid_command():
    r = CommandReader()
    assert not r.mid_command
    assert events(r, b"a NO") == [] and r.mid_command
    assert isinstance(events(r, b"OP\r\n")[0], Command) and not r.mid_command
    assert events(r, b"a LOGIN {3}\r\n") == [NeedContinuation(3)] and r.mid_command


def test_a_connection_before_login_takes_only_small_literals_then_full_ones():
    conn = Connection(Config(data_dir="/nonexistent", max_message_size=1 << 20), False, lambda c: None)
    r = conn.reader
    assert r.max_literal == PRE_LOGIN_LITERALS and r.max_command_literals == PRE_LOGIN_LITERALS
    assert events(r, b"a LOGIN {%d}\r\n" % (PRE_LOGIN_LITERALS + 1)) == [LiteralTooBig("a", PRE_LOGIN_LITERALS + 1)]
    assert events(r, b"b LOGIN {%d+}\r\n" % (PRE_LOGIN_LITERALS + 1)) == [Fatal("Literal too big", "b")]
    conn = Connection(Config(data_dir="/nonexistent", max_message_size=1 << 20), False, lambda c: None)
    conn.log_in()
    r = conn.reader
    assert r.max_literal == 1 << 20 and r.max_command_literals == 1 << 20 and r.max_line == 64 * 1024
    assert events(r, b"c APPEND INBOX {%d}\r\n" % (1 << 20)) == [NeedContinuation(1 << 20)]
