"""SELECT of a mailbox that is already open reads no database: the name leads
to it from memory. These check that a name always leads to the mailbox that
has it now, and only ever to the user's own."""
from __future__ import annotations

import re

from posthouse.app import open_store
from tests.conftest import raw_login

MESSAGE = "From: a@example.com\r\nSubject: {}\r\n\r\nbody\r\n"


def append(client, box: str, subject: str) -> None:
    data = MESSAGE.format(subject)
    client.send(f"A APPEND {box} {{{len(data)}}}\r\n")
    assert client.readline().startswith(b"+")
    client.send(data + "\r\n")
    assert client.read_until_tag("A")[-1].startswith(b"A OK")


def select(client, box: str) -> tuple[str, int | None, int | None]:
    """(status, EXISTS, UIDVALIDITY) of a SELECT."""
    lines = client.cmd("S", f"SELECT {box}")
    text = b"".join(lines).decode()
    exists = re.search(r"\* (\d+) EXISTS", text)
    validity = re.search(r"UIDVALIDITY (\d+)", text)
    return (lines[-1].split()[1].decode(), exists and int(exists.group(1)),
            validity and int(validity.group(1)))


def test_a_deleted_and_recreated_name_leads_to_the_new_mailbox(raw_pair):
    a, b = raw_pair
    assert b.cmd("C", "CREATE Box")[-1].startswith(b"C OK")
    append(b, "Box", "one")
    append(b, "Box", "two")
    status, exists, old_validity = select(a, "Box")
    assert (status, exists) == ("OK", 2)
    assert select(a, "INBOX")[0] == "OK"      # Box stays open, unselected
    assert select(a, "Box")[1] == 2           # (its name now known in memory)
    assert select(a, "INBOX")[0] == "OK"
    assert b.cmd("D", "DELETE Box")[-1].startswith(b"D OK")
    assert select(a, "Box")[0] == "NO"
    assert b.cmd("C", "CREATE Box")[-1].startswith(b"C OK")
    append(b, "Box", "three")
    status, exists, validity = select(a, "Box")
    assert (status, exists) == ("OK", 1) and validity != old_validity
    assert b"three" in b"".join(a.cmd("F", "FETCH 1 BODY[HEADER.FIELDS (SUBJECT)]"))


def test_a_renamed_mailbox_is_found_by_its_new_name_only(raw_pair):
    a, b = raw_pair
    assert b.cmd("C", "CREATE Box")[-1].startswith(b"C OK")
    append(b, "Box", "one")
    assert select(a, "Box")[1] == 1
    assert select(a, "INBOX")[0] == "OK"
    assert b.cmd("R", "RENAME Box Other")[-1].startswith(b"R OK")
    assert select(a, "Box")[0] == "NO"
    assert select(a, "Other")[1] == 1
    assert b.cmd("C", "CREATE Box")[-1].startswith(b"C OK")
    assert select(a, "Box")[:2] == ("OK", 0)
    assert select(a, "Other")[1] == 1


def test_renaming_inbox_leaves_an_empty_inbox_behind(raw_pair):
    a, b = raw_pair
    append(b, "INBOX", "one")
    assert select(a, "INBOX")[1] == 1
    assert select(a, "Trash")[0] == "OK"
    assert b.cmd("R", "RENAME INBOX Old")[-1].startswith(b"R OK")
    assert select(a, "INBOX")[:2] == ("OK", 0)
    assert select(a, "Old")[1] == 1


def test_the_same_name_leads_each_user_to_their_own(server):
    first, second = server.add_user(), server.add_user()
    a, b = raw_login(server, first), raw_login(server, second)
    try:
        append(a, "INBOX", "mine")
        assert select(a, "INBOX")[1] == 1
        assert select(b, "INBOX")[:2] == ("OK", 0)
        assert select(a, "INBOX")[1] == 1
        assert select(b, "INBOX")[:2] == ("OK", 0)
    finally:
        a.close()
        b.close()


def test_a_user_deleted_and_made_again_behind_the_servers_back_sees_none_of_the_old_mail(server):
    """As `posthouse user delete` and `user add` do while the server runs: from
    another connection, so the server hears of none of it."""
    name, password = server.add_user()
    old = raw_login(server, (name, password))
    append(old, "INBOX", "private")
    assert select(old, "INBOX")[1] == 1
    assert select(old, "Trash")[0] == "OK"    # the old INBOX stays open in the server
    other = open_store(server.config)      # the server's store (SQLite or PostgreSQL), on a connection of its own
    try:
        hashed = other.get_user(name).password_hash
        other.delete_user(name)
        other.create_user(name, hashed, [("INBOX", None), ("Trash", None)])
    finally:
        other.close()
    new = raw_login(server, (name, password))
    try:
        assert select(new, "INBOX")[:2] == ("OK", 0)
        assert b"private" not in b"".join(new.cmd("F", "FETCH 1:* (BODY[])"))
    finally:
        new.close()
        old.close()
