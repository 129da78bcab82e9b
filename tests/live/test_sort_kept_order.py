"""SORT of a whole mailbox by index keys (ARRIVAL, DATE, SIZE) keeps its order
in the shared index: asked again (a web client paging through a big folder),
no key is built again; a message that comes or goes makes it anew, and a
session whose view is behind the index never gets the index's order."""
from __future__ import annotations

import imaplib
import re

from posthouse.imap.commands import sort as sort_module

# Internal dates out of UID order, so ARRIVAL differs from UID order.
DATES = ['"05-Jan-2024 10:00:00 +0000"', '"01-Jan-2024 10:00:00 +0000"', '"03-Jan-2024 10:00:00 +0000"']


def append(c, box: str, subject: str, date: str, pad: int = 0) -> None:
    msg = f"From: a@example.com\r\nSubject: {subject}\r\n\r\nbody{'x' * pad}\r\n".encode()
    typ, data = c.append(box, "()", date, msg)
    assert typ == "OK", data


def uid_sort(c, criteria: str, search: str = "ALL") -> list[int]:
    typ, data = c.uid("SORT", f"({criteria})", "UTF-8", search)
    assert typ == "OK", data
    return [int(x) for x in (data[0] or b"").split()]


def partial(c, lo: int, hi: int) -> tuple[list[int], int]:
    typ, data = c.uid("SORT", f"RETURN (PARTIAL {lo}:{hi} COUNT)", "(REVERSE ARRIVAL)", "UTF-8", "ALL")
    assert typ == "OK", data
    text = b" ".join(c.untagged_responses.pop("ESEARCH", [])).decode()
    count = int(re.search(r"COUNT (\d+)", text).group(1))
    found = re.search(r"PARTIAL \(\d+:\d+ ([\d,:]+)\)", text)
    uids: list[int] = []
    for part in (found.group(1).split(",") if found else []):
        a, _, b = part.partition(":")
        uids += [int(a)] if not b else list(range(int(a), int(b) + 1, 1 if int(b) >= int(a) else -1))
    return uids, count


def keys_built(monkeypatch) -> list[str]:
    """Each key list the sort builds from the index (a spy: the real one runs)."""
    built: list[str] = []
    real = sort_module._index_keys

    def spy(key, entries, uids):
        built.append(key)
        return real(key, entries, uids)
    monkeypatch.setattr(sort_module, "_index_keys", spy)
    return built


def test_the_kept_order_is_right_reused_and_made_anew_on_changes(server, user, monkeypatch):
    a, b = imaplib.IMAP4(server.host, server.port), imaplib.IMAP4(server.host, server.port)
    try:
        a.login(*user)
        b.login(*user)
        assert a.create("Sorted")[0] == "OK"
        for i, date in enumerate(DATES):
            append(b, "Sorted", f"m{i}", date, pad=10 * (3 - i))
        assert a.select("Sorted")[0] == "OK"
        built = keys_built(monkeypatch)
        assert uid_sort(a, "ARRIVAL") == [2, 3, 1]
        assert uid_sort(a, "REVERSE ARRIVAL") == [1, 3, 2]
        assert uid_sort(a, "SIZE") == [3, 2, 1]
        assert len(built) == 3
        built.clear()
        assert uid_sort(a, "REVERSE ARRIVAL") == [1, 3, 2]      # kept: no key built
        assert uid_sort(a, "ARRIVAL") == [2, 3, 1]
        assert built == []
        # A search that doesn't match every message sorts its matches as before.
        assert uid_sort(a, "REVERSE ARRIVAL", "UID 2:3") == [3, 2]
        assert built == ["ARRIVAL"]
        built.clear()

        # Another session's new message: a's view is behind the index until a
        # command announces it, and its answers stay those of its view.
        append(b, "Sorted", "m3", '"02-Jan-2024 10:00:00 +0000"')
        assert a.noop()[0] == "OK"
        assert uid_sort(a, "REVERSE ARRIVAL") == [1, 3, 4, 2]
        assert uid_sort(a, "ARRIVAL") == [2, 4, 3, 1]
        assert partial(a, 1, 2) == ([1, 3], 4)
        assert partial(a, 3, 4) == ([4, 2], 4)
        assert built, "a new message must make the order anew"

        # Expunged: made anew without it.
        assert a.uid("STORE", "3", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert a.expunge()[0] == "OK"
        assert uid_sort(a, "REVERSE ARRIVAL") == [1, 4, 2]
        # Sequence-number SORT from the kept order too.
        typ, data = a.sort("(REVERSE ARRIVAL)", "UTF-8", "ALL")
        assert typ == "OK" and data[0].split() == [b"1", b"3", b"2"]
        # b, another view of the same mailbox, gets the same.
        assert b.select("Sorted")[0] == "OK"
        assert uid_sort(b, "REVERSE ARRIVAL") == [1, 4, 2]
        # A new message b makes: a's view not told yet, a's SORT answers its view.
        append(b, "Sorted", "m4", '"06-Jan-2024 10:00:00 +0000"')
        assert uid_sort(b, "REVERSE ARRIVAL") == [5, 1, 4, 2]
        typ, data = a.uid("SORT", "(REVERSE ARRIVAL)", "UTF-8", "ALL")
        assert typ == "OK"
        got = [int(x) for x in data[0].split()]
        assert got in ([1, 4, 2], [5, 1, 4, 2])     # (announced before or after the SORT)
    finally:
        for c in (a, b):
            try:
                c.logout()
            except Exception:
                pass
