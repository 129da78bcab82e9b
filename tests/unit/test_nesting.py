"""Deeply nested input: bounded with a clear ParseError, never a RecursionError.

Parenthesized lists are bounded in the tokenizer (for every command), search
keys in the search parser; runs of OR and of NOT are read in a loop, so a long
OR chain (nested either way) is a valid search, not an error."""
from __future__ import annotations

import random

import pytest

from posthouse.imap.args import ArgReader
from posthouse.imap.protocol.tokenizer import MAX_LIST_DEPTH, build_command, tokenize
from posthouse.imap.protocol.tokens import ParseError
from posthouse.imap.search import MAX_SEARCH_DEPTH, Evaluator, parse_program


def _program(text: str):
    return parse_program(ArgReader(tokenize([text.encode()])))


@pytest.mark.parametrize("fast", [True, False])
def test_lists_nest_to_the_bound_and_no_further(fast):
    ok = b"(" * MAX_LIST_DEPTH + b"x" + b")" * MAX_LIST_DEPTH
    assert tokenize([ok], fast=fast)
    deep = b"(" + ok + b")"
    with pytest.raises(ParseError, match="nested too deeply"):
        tokenize([deep], fast=fast)
    with pytest.raises(ParseError, match="nested too deeply"):
        tokenize([b"(" * 100_000], fast=fast)        # the bound comes before the balance check


def test_deep_lists_in_any_command_are_a_parse_error():
    with pytest.raises(ParseError):
        build_command([b"a FETCH 1 " + b"(" * 5000 + b"FLAGS" + b")" * 5000])


class _View:
    """Just what the evaluator's in-memory keys read: UIDs 1..n, flags by UID."""

    def __init__(self, flags: dict[int, frozenset]):
        self.uids = sorted(flags)
        self._flags = flags
        self.expunged = set()
        self.recent = set()

    def flags(self, uid):
        return self._flags[uid]

    def seq_of(self, uid):
        return uid


class _Session:
    def __init__(self, view):
        self.view = view
        self.saved_search = []


_FLAGS = ["SEEN", "FLAGGED", "ANSWERED", "DRAFT", "DELETED"]


def _matches(program, view) -> list[int]:
    test = Evaluator(_Session(view), program)._compile(program)
    return [u for u in view.uids if test(u, u)]


def _reference(keys_flags, view):
    """OR of flag keys, by hand."""
    return [u for u in view.uids if any(f"\\{k.title()}" in view.flags(u) for k in keys_flags)]


def test_long_or_chains_nested_either_way_are_read_and_right():
    rng = random.Random(20)
    view = _View({u: frozenset(f"\\{f.title()}" for f in _FLAGS if rng.random() < 0.15)
                  for u in range(1, 60)})
    keys = [rng.choice(_FLAGS) for _ in range(3000)]
    left = "OR " * (len(keys) - 1) + " ".join(keys)               # OR OR OR a b c d
    right = "".join(f"OR {k} " for k in keys[:-1]) + keys[-1]      # OR a OR b OR c d
    for text in (left, right):
        program = _program(text)
        assert program[0] == "or" and len(program) == len(keys) + 1
        assert _matches(program, view) == _reference(keys, view)
    # A mixed tree: OR (OR a b) (OR c d) and friends still mean "any of them".
    mixed = _program("OR OR SEEN FLAGGED OR DRAFT OR ANSWERED DELETED")
    assert _matches(mixed, view) == _reference(_FLAGS, view)


def test_not_runs_cancel_in_pairs():
    view = _View({1: frozenset({"\\Seen"}), 2: frozenset()})
    assert _matches(_program("NOT " * 3000 + "SEEN"), view) == [1]
    assert _matches(_program("NOT " * 3001 + "SEEN"), view) == [2]


def test_search_keys_nest_to_the_bound_and_no_further():
    ok = "NOT OR ALL " * (MAX_SEARCH_DEPTH // 2) + "ALL"
    assert _program(ok)
    for text in ("NOT OR ALL " * 1000 + "ALL",
                 "OR (NOT " * 1000 + "ALL" + ") ALL" * 1000,
                 "(" * (MAX_SEARCH_DEPTH + 1) + "ALL" + ")" * (MAX_SEARCH_DEPTH + 1)):
        with pytest.raises(ParseError, match="nested too deeply"):
            _program(text)


def test_every_mix_of_or_not_and_lists_parses_without_recursion_error():
    parts = ["OR", "NOT", "(", ")", "ALL", "SEEN", "1:*"]
    rng = random.Random(9051)
    for _ in range(300):
        text = " ".join(rng.choices(parts, k=rng.randrange(6)) * 500 + rng.choices(parts, k=6))
        try:
            _program(text)
        except ParseError:
            pass
