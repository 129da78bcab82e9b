"""Lists of numbers in decimal, for "* SEARCH" and "* SORT" lines.

Such a line can hold 100,000 numbers, and turning each into text is most of
what answering costs. A contiguous run (ALL, UNSEEN of new mail, a UID
range, a SORT by arrival) is instead a slice of one cached text
"1 2 3 ... n", kept up to the largest run asked for.
"""
from __future__ import annotations

_CACHE_LIMIT = 1 << 21      # numbers beyond this are always formatted one by one (~15 MB of text)
_RUN_MIN = 64               # shorter lists gain nothing from the cache

_counting = b""             # b"1 2 3 ... n " (each number followed by a space)
_counting_to = 0


def decimal_list(numbers, ascending: bool = False) -> bytes:
    """b"1 2 3" for [1, 2, 3]. ascending: the caller knows the numbers rise
    (a search's), which saves checking a run's order."""
    count = len(numbers)
    if count >= _RUN_MIN:
        first, last = numbers[0], numbers[-1]
        if 1 <= first and last - first + 1 == count and last < _CACHE_LIMIT and (
                ascending or list(numbers) == list(range(first, last + 1))):
            return _run(first, last)
    return " ".join(map(str, numbers)).encode()


def _run(first: int, last: int) -> bytes:
    global _counting, _counting_to
    if last > _counting_to:
        upto = min(max(last, 2 * _counting_to), _CACHE_LIMIT)
        _counting = " ".join(map(str, range(1, upto + 1))).encode() + b" "
        _counting_to = upto
    return _counting[_offset(first):_offset(last + 1) - 1]


def _offset(k: int) -> int:
    """Where number k starts in b"1 2 3 ...": the lengths of 1..k-1, one more each for its space."""
    offset, digits, start = 0, 1, 1
    while k >= start * 10:
        offset += (start * 10 - start) * (digits + 1)
        start *= 10
        digits += 1
    return offset + (k - start) * (digits + 1)
