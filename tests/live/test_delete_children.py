"""DELETE of a mailbox that has children (RFC 9051 6.3.5): its messages go, its
name stays as \\Noselect while it has children; a \\Noselect name with children
can't be deleted (HASCHILDREN); CREATE makes it a new mailbox again."""
from __future__ import annotations

import re

from tests.conftest import raw_login


def _append(c, mailbox: str, n: int, size: int = 500) -> None:
    for i in range(n):
        msg = b"Subject: m%d\r\n\r\n" % i + b"x" * size + b"\r\n"
        c.send(b"ap APPEND %s {%d+}\r\n" % (mailbox.encode(), len(msg)) + msg + b"\r\n")
        assert c.read_until_tag("ap")[-1].startswith(b"ap OK")


def _list(c, pattern="*") -> dict[bytes, bytes]:
    out = {}
    for line in c.cmd("l", f'LIST "" "{pattern}"')[:-1]:
        m = re.match(rb'\* LIST \(([^)]*)\) "/" (.+)\r\n', line)
        out[m.group(2).strip(b'"')] = m.group(1)
    return out


def _quota_usage(c) -> bytes:
    return [ln for ln in c.cmd("q", 'GETQUOTAROOT INBOX') if ln.startswith(b"* QUOTA ")][0]


def _uidvalidity(c, name) -> int:
    line = c.cmd("s", f"STATUS {name} (UIDVALIDITY)")[0]
    return int(re.search(rb"UIDVALIDITY (\d+)", line).group(1))


def test_delete_with_children_leaves_a_noselect_name(server, user):
    server.call(server.ctx.service.call("set_quota", user[0], 1024 * 1024, 100))
    c = raw_login(server, user)
    try:
        usage_before = _quota_usage(c)
        assert c.cmd("c", "CREATE work/reports")[-1].startswith(b"c OK")
        _append(c, "work", 3)
        _append(c, "work/reports", 1)
        old_validity = _uidvalidity(c, "work")
        assert c.cmd("d", "DELETE work")[-1].startswith(b"d OK")
        boxes = _list(c)
        assert boxes[b"work"].split() == [b"\\Noselect", b"\\HasChildren"]
        assert b"\\Noselect" not in boxes[b"work/reports"]
        # Its messages are gone: only the child's count against the quota.
        assert b"MESSAGE 1 100" in _quota_usage(c)
        assert c.cmd("s", "SELECT work")[-1].startswith(b"s NO")
        assert c.cmd("s", "STATUS work (MESSAGES)")[-1].startswith(b"s NO")
        assert c.cmd("a", "APPEND work {1+}\r\nx")[-1].startswith(b"a NO")
        assert c.cmd("s", "SELECT work/reports")[-1].startswith(b"s OK")
        assert c.cmd("s", "UNSELECT")[-1].startswith(b"s OK")
        # STATUS in LIST skips the name that is no mailbox.
        lines = c.cmd("l", 'LIST "" "work*" RETURN (STATUS (MESSAGES))')
        assert [ln for ln in lines if ln.startswith(b"* STATUS")] == [b"* STATUS work/reports (MESSAGES 1)\r\n"]

        # A \Noselect name that still has children: HASCHILDREN.
        lines = c.cmd("d", "DELETE work")
        assert lines[-1].startswith(b"d NO [HASCHILDREN]"), lines

        # CREATE again: a new, empty mailbox with a new UIDVALIDITY.
        assert c.cmd("c", "CREATE work")[-1].startswith(b"c OK")
        assert _list(c)[b"work"].split() == [b"\\HasChildren"]
        assert c.cmd("s", "STATUS work (MESSAGES UIDNEXT)")[0] == b"* STATUS work (MESSAGES 0 UIDNEXT 1)\r\n"
        assert _uidvalidity(c, "work") != old_validity

        # Delete it again, then the child: the \Noselect name stays until deleted itself.
        assert c.cmd("d", "DELETE work")[-1].startswith(b"d OK")
        assert c.cmd("d", "DELETE work/reports")[-1].startswith(b"d OK")
        assert _list(c, "work*") == {b"work": b"\\Noselect \\HasNoChildren"}
        assert c.cmd("d", "DELETE work")[-1].startswith(b"d OK")
        assert _list(c, "work*") == {}
        assert _quota_usage(c) == usage_before
    finally:
        c.close()


def test_session_with_the_deleted_parent_selected_is_told(server):
    user = server.add_user()
    a, b = raw_login(server, user), raw_login(server, user)
    try:
        b.cmd("c", "CREATE proj/sub")
        _append(b, "proj", 1)
        assert a.cmd("s", "SELECT proj")[-1].startswith(b"s OK")
        assert b.cmd("d", "DELETE proj")[-1].startswith(b"d OK")
        # As for any mailbox deleted under a session: BYE (nothing it knows is valid).
        a.send(b"n NOOP\r\n")
        assert a.readline().startswith(b"* BYE")
    finally:
        a.close()
        b.close()


def test_delete_of_the_selected_parent_by_its_own_session(server, user):
    c = raw_login(server, user)
    try:
        c.cmd("c", "CREATE top/child")
        assert c.cmd("s", "SELECT top")[-1].startswith(b"s OK")
        assert c.cmd("d", "DELETE top")[-1].startswith(b"d OK")
        assert c.cmd("f", "FETCH 1 FLAGS")[-1].startswith(b"f BAD")      # no longer selected
        assert c.cmd("r", "RENAME top other")[-1].startswith(b"r OK")    # a \Noselect name renames with its children
        assert _list(c, "other*") == {b"other": b"\\Noselect \\HasChildren", b"other/child": b"\\HasNoChildren"}
    finally:
        c.close()


# -- names that imitate other namespaces -------------------------------------------

def test_names_imitating_other_namespaces_are_refused(server, user):
    """NAMESPACE says every name is the user's own; a folder under '#', '~',
    'Other Users' or 'Shared Folders' would pass itself off as someone else's."""
    c = raw_login(server, user)
    try:
        assert c.cmd("n", "NAMESPACE")[0] == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
        assert c.cmd("c", "CREATE mine")[-1].startswith(b"c OK")
        for name in ("~alice/INBOX", "~bob", "#shared/team", "#news.comp", '"Other Users/alice"',
                     '"other users"', '"Shared Folders/x"', '"Public Folders"'):
            lines = c.cmd("c", f"CREATE {name}")
            assert lines[-1].startswith(b"c NO [CANNOT] A name under"), (name, lines)
            lines = c.cmd("r", f"RENAME mine {name}")
            assert lines[-1].startswith(b"r NO [CANNOT]"), (name, lines)
        # The same characters further down, or a different word, are ordinary names.
        for name in ("Work/#1", "Work/~draft", "a~b", "Shared", '"Other"'):
            assert c.cmd("c", f"CREATE {name}")[-1].startswith(b"c OK"), name
        assert b"~" not in b"".join(c.cmd("l", 'LIST "" "~*"')[:-1])
        # A mailbox that already has such a name (made before this rule) stays usable.
        service = server.ctx.service
        user_id = server.call(service.call("get_user", user[0])).id
        server.call(service.call("create_mailbox", user_id, "#old"))
        assert c.cmd("s", "SELECT #old")[-1].startswith(b"s OK")
        c.cmd("u", "UNSELECT")
        assert c.cmd("r", "RENAME #old old")[-1].startswith(b"r OK")
    finally:
        c.close()


def test_a_store_from_before_noselect_names_gets_the_column(tmp_path):
    import sqlite3
    from posthouse.store.sqlite.backend import SQLiteStore
    store = SQLiteStore(str(tmp_path), fsync=False)
    store.create_user("old", "x", [("INBOX", None), ("Archive", None)])
    path = store._db_path
    store.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE mailboxes DROP COLUMN noselect")      # as stores were,
    db.execute("PRAGMA user_version=0")                           # before numbered upgrades
    db.commit()
    db.close()
    store = SQLiteStore(str(tmp_path), fsync=False)
    user_id = store.get_user("old").id
    assert [(m.name, m.noselect) for m in store.list_mailboxes(user_id, True)] == [("Archive", 0), ("INBOX", 0)]
    store.create_mailbox(user_id, "Archive/2024")
    store.delete_mailbox(user_id, "Archive")
    assert [(m.name, m.noselect) for m in store.list_mailboxes(user_id, True)][0] == ("Archive", 1)
    store.close()
