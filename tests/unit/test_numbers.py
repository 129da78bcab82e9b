"""The decimal lists of "* SEARCH" and "* SORT" lines: the cached-run fast
path must give exactly what formatting each number gives."""
import random

from posthouse.imap.protocol import numbers
from posthouse.imap.protocol.numbers import decimal_list
from posthouse.imap.protocol.writer import number_line


def plain(values) -> bytes:
    return " ".join(map(str, values)).encode()


def test_runs_across_digit_boundaries_match_plain_formatting():
    for first, last in [(1, 64), (1, 100), (5, 200), (9, 1000), (95, 10005), (99990, 100100), (999, 1001 + 64)]:
        run = list(range(first, last + 1))
        assert decimal_list(run, ascending=True) == plain(run)
        assert decimal_list(run) == plain(run)


def test_orders_and_shapes_that_are_not_runs():
    rng = random.Random(7)
    run = list(range(1, 5001))
    shuffled = run[:]
    rng.shuffle(shuffled)
    # A permutation of a run with the run's ends in place is still not the run.
    swapped = run[:]
    swapped[10], swapped[20] = swapped[20], swapped[10]
    gappy = sorted(rng.sample(range(1, 100000), 3000))
    for values in (shuffled, swapped, gappy, [3], [], list(range(10, 0, -1)), list(range(100, 0, -1))):
        assert decimal_list(values) == plain(values)


def test_numbers_past_the_cache_are_formatted_one_by_one():
    top = numbers._CACHE_LIMIT
    run = list(range(top - 100, top + 100))
    assert decimal_list(run, ascending=True) == plain(run)
    assert decimal_list([4294967295] * 2) == b"4294967295 4294967295"


def test_number_line_with_and_without_modseq():
    assert number_line(b"SEARCH", []) == b"* SEARCH\r\n"
    assert number_line(b"SEARCH", list(range(1, 101)), ascending=True) == b"* SEARCH " + plain(range(1, 101)) + b"\r\n"
    assert number_line(b"SORT", [2, 1], 7) == b"* SORT 2 1 (MODSEQ 7)\r\n"
