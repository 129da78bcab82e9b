"""Every core command through Python's imaplib against a live server."""
from __future__ import annotations

import imaplib
import re
import ssl

import pytest

from tests.conftest import RawClient

MSG = (b"From: Bob Sender <bob@example.com>\r\nTo: Alice <alice@example.com>\r\n"
       b"Cc: Carol <carol@example.org>\r\nSubject: Quarterly report\r\n"
       b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <q1@example.com>\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
       b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
       b"Gr=C3=BC=C3=9Fe, the budget is attached.\r\n"
       b"--XX\r\nContent-Type: application/octet-stream; name=data.bin\r\n"
       b"Content-Disposition: attachment; filename=data.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
       b"AAECAwQ=\r\n--XX--\r\n")


def simple(n: int, subject: str = "msg") -> bytes:
    return (f"From: sender{n}@example.com\r\nTo: rcpt@example.com\r\nSubject: {subject} {n}\r\n"
            f"Date: Tue, 02 Jan 2024 1{n % 10}:00:00 +0000\r\n\r\nbody number {n}\r\n").encode()


def untagged(client, name):
    return client.untagged_responses.get(name, [])


def test_capability_and_noop(imap):
    typ, data = imap.capability()
    caps = data[0].decode().split()
    for cap in ("IMAP4rev1", "IMAP4rev2", "IDLE", "UIDPLUS", "MOVE", "ESEARCH", "SPECIAL-USE", "LIST-STATUS"):
        assert cap in caps
    assert any(c.startswith("APPENDLIMIT=") for c in caps)
    assert imap.noop()[0] == "OK"


def test_login_failures(server, user):
    c = imaplib.IMAP4(server.host, server.port)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login(user[0], "wrong")
    with pytest.raises(imaplib.IMAP4.error):
        c.login("nobody-here", "wrong")
    assert c.login(*user)[0] == "OK"
    c.logout()


def test_too_many_failures_disconnects(server, user):
    c = RawClient(server.host, server.port)
    for i in range(server.config.max_auth_failures - 1):
        assert b"NO [AUTHENTICATIONFAILED]" in c.cmd(f"a{i}", f"LOGIN {user[0]} bad")[-1]
    lines = c.cmd("z", f"LOGIN {user[0]} bad")
    assert lines[-1].startswith(b"z NO [AUTHENTICATIONFAILED]")
    assert c.readline().startswith(b"* BYE")
    assert c.readline() == b""   # closed
    assert server.ctx.authenticator.failures >= server.config.max_auth_failures


def test_authenticate_plain_and_login(server, user):
    c = imaplib.IMAP4(server.host, server.port)
    name, pw = user
    typ, _ = c.authenticate("PLAIN", lambda _: f"\0{name}\0{pw}".encode())
    assert typ == "OK"
    c.logout()
    # SASL-IR and the LOGIN mechanism over a raw socket
    import base64
    r = RawClient(server.host, server.port)
    ir = base64.b64encode(f"\0{name}\0{pw}".encode()).decode()
    assert r.cmd("a", f"AUTHENTICATE PLAIN {ir}")[-1].startswith(b"a OK")
    r.close()
    r = RawClient(server.host, server.port)
    r.send("b AUTHENTICATE LOGIN\r\n")
    assert r.readline().startswith(b"+ ")
    r.send(base64.b64encode(name.encode()) + b"\r\n")
    assert r.readline().startswith(b"+ ")
    r.send(base64.b64encode(pw.encode()) + b"\r\n")
    assert r.read_until_tag("b")[-1].startswith(b"b OK")
    r.send("c AUTHENTICATE PLAIN\r\n")
    assert b"BAD" in r.read_until_tag("c")[-1]   # already authenticated
    r.close()
    r = RawClient(server.host, server.port)
    r.send("d AUTHENTICATE PLAIN\r\n")
    r.readline()
    r.send("*\r\n")
    assert r.read_until_tag("d")[-1].startswith(b"d BAD")
    r.close()


def test_starttls_and_implicit_tls(server, user):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = imaplib.IMAP4(server.host, server.port)
    assert "STARTTLS" in c.capabilities
    assert c.starttls(ssl_context=ctx)[0] == "OK"
    assert "STARTTLS" not in c.capability()[1][0].decode()
    assert c.login(*user)[0] == "OK"
    c.logout()
    s = imaplib.IMAP4_SSL(server.host, server.tls_port, ssl_context=ctx)
    assert s.login(*user)[0] == "OK"
    s.logout()


def test_plaintext_refused_when_configured_never(tmp_path, user):
    from tests.conftest import RunningServer
    srv = RunningServer(str(tmp_path), plaintext_auth="never")
    try:
        name, pw = srv.add_user()
        c = imaplib.IMAP4(srv.host, srv.port)
        assert "LOGINDISABLED" in c.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            c.login(name, pw)
        c.logout()
    finally:
        srv.stop()


def test_default_mailboxes_and_special_use(imap):
    typ, data = imap.list('""', "*")
    listing = {re.search(rb'"/" (.*)$', l).group(1).strip(b'"'): l for l in data}
    assert set(listing) == {b"INBOX", b"Drafts", b"Sent", b"Trash", b"Junk", b"Archive"}
    assert b"\\Sent" in listing[b"Sent"] and b"\\Trash" in listing[b"Trash"]
    typ, data = imap._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
    names = [l for l in untagged(imap, "LIST")]
    assert len(names) == 5 and not any(b"INBOX" in l for l in names)


def test_create_delete_rename_hierarchy(imap):
    assert imap.create("Work/Projects/2024")[0] == "OK"
    _, data = imap.list('""', "Work/*")
    assert any(b"Work/Projects/2024" in l for l in data)
    _, data = imap.list('""', "Work/%")
    assert len(data) == 1 and b"\\HasChildren" in data[0]
    assert imap.create("Work")[0] == "NO"
    assert imap.create("bad*name")[0] == "NO"
    assert imap.create("a//b")[0] == "NO"
    assert imap.rename("Work", "Job")[0] == "OK"
    _, data = imap.list('""', "*")
    text = b" ".join(data)
    assert b"Job/Projects/2024" in text and b"Work" not in text
    assert imap.delete("Job")[0] == "OK"          # has children: its name stays, \Noselect
    assert imap.delete("Job")[0] == "NO"          # a \Noselect name with children: HASCHILDREN
    assert imap.delete("Job/Projects/2024")[0] == "OK"
    assert imap.delete("INBOX")[0] == "NO"
    assert imap.delete("Nope")[0] == "NO"
    assert imap.rename("Nope", "Other")[0] == "NO"
    assert imap.rename("Job", "Sent")[0] == "NO"


def test_rename_inbox_moves_messages(imap):
    for i in range(3):
        imap.append("INBOX", None, None, simple(i))
    uidvalidity = imap.status("INBOX", "(UIDVALIDITY)")[1][0]
    assert imap.rename("INBOX", "Old")[0] == "OK"
    assert b"MESSAGES 3" in imap.status("Old", "(MESSAGES)")[1][0]
    assert b"MESSAGES 0" in imap.status("INBOX", "(MESSAGES)")[1][0]
    assert imap.status("INBOX", "(UIDVALIDITY)")[1][0] == uidvalidity


def test_subscribe_lsub_and_list_extended(imap):
    imap.create("Lists/a")
    assert imap.subscribe("Lists/a")[0] == "OK"
    assert imap.subscribe("NoSuchBox")[0] == "NO"
    _, data = imap.lsub('""', "Lists/*")
    assert data == [b'() "/" Lists/a']
    imap._simple_command("LIST", "(SUBSCRIBED)", '""', "Lists/*")
    lines = untagged(imap, "LIST")
    assert lines == [b'(\\HasNoChildren \\Subscribed) "/" Lists/a']
    imap.untagged_responses.clear()
    imap._simple_command("LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', "Lists")
    lines = untagged(imap, "LIST")
    assert lines and b'CHILDINFO' in lines[0]
    imap.untagged_responses.clear()
    assert imap.unsubscribe("Lists/a")[0] == "OK"
    _, data = imap.lsub('""', "Lists/*")
    assert data == [None]
    imap._simple_command("LIST", '""', "INBOX", "RETURN", "(CHILDREN STATUS (MESSAGES UIDNEXT SIZE))")
    assert untagged(imap, "STATUS") and b"UIDNEXT" in untagged(imap, "STATUS")[0]
    imap.untagged_responses.clear()
    _, data = imap.list('""', '""')
    assert data == [b'(\\Noselect) "/" ""']
    typ, data = imap.namespace()
    assert data == [b'(("" "/")) NIL NIL']


def test_select_examine_status(imap):
    for i in range(2):
        imap.append("INBOX", "(\\Seen)" if i == 0 else None, None, simple(i))
    typ, data = imap.select("INBOX")
    assert data == [b"2"]
    assert untagged(imap, "UIDVALIDITY") and untagged(imap, "UIDNEXT") == [b"3"]
    assert untagged(imap, "UNSEEN") == [b"2"]
    assert "READ-WRITE" in imap.untagged_responses
    typ, data = imap.select("INBOX", readonly=True)
    assert "READ-ONLY" in imap.untagged_responses
    assert imap.store("1", "+FLAGS", "\\Flagged")[0] == "NO"
    _, data = imap.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY DELETED SIZE RECENT)")
    assert re.search(rb"MESSAGES 2 .*UNSEEN 1 UIDNEXT 3", data[0])
    assert imap.select("Nope")[0] == "NO"
    assert imap.state == "AUTH"   # a failed SELECT leaves nothing selected


def test_append_variants(imap, server):
    typ, data = imap.append("INBOX", "(\\Flagged $Important)", imaplib.Time2Internaldate(1700000000), simple(1))
    assert typ == "OK" and re.search(rb"APPENDUID \d+ 1", data[0])
    typ, data = imap.append("Nope", None, None, simple(2))
    assert typ == "NO" and data[0].startswith(b"[TRYCREATE]")
    imap.select("INBOX")
    _, data = imap.fetch("1", "(FLAGS INTERNALDATE)")
    assert b"$Important" in data[0] and b"\\Flagged" in data[0]
    assert b'"14-Nov-2023 22:13:20 +0000"' in data[0]
    with pytest.raises(imaplib.IMAP4.error, match="Invalid date-time"):
        imap.append("INBOX", None, '"31-Feb-2024 00:00:00 +0000"', simple(3))


def test_multiappend_and_literal_plus(raw):
    a, b = simple(1), simple(2)
    raw.send(b"m APPEND INBOX (\\Seen) {%d+}\r\n" % len(a) + a + b" {%d+}\r\n" % len(b) + b + b"\r\n")
    tagged = raw.read_until_tag("m")[-1]
    assert re.match(rb"m OK \[APPENDUID \d+ 1:2\]", tagged), tagged
    # a synchronizing literal waits for the continuation
    raw.send(b"s APPEND INBOX {%d}\r\n" % len(a))
    assert raw.readline().startswith(b"+ ")
    raw.send(a + b"\r\n")
    assert re.match(rb"s OK \[APPENDUID \d+ 3\]", raw.read_until_tag("s")[-1])
    lines = raw.cmd("t", "STATUS INBOX (MESSAGES)")
    assert b"MESSAGES 3" in lines[0]


def test_fetch_items(imap):
    imap.append("INBOX", None, None, MSG)
    imap.select("INBOX")
    _, data = imap.fetch("1", "(ENVELOPE BODYSTRUCTURE RFC822.SIZE UID FLAGS)")
    head = data[0] if isinstance(data[0], bytes) else data[0][0]
    assert b'"Quarterly report"' in head and b'(("Bob Sender" NIL "bob" "example.com"))' in head
    assert b'"mixed"' in head and b'("attachment" ("filename" "data.bin"))' in head
    assert b"RFC822.SIZE %d" % len(MSG) in head
    _, data = imap.fetch("1", "(BODY.PEEK[1] BODY.PEEK[1.MIME] BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2])")
    flat = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    assert b"Gr=C3=BC=C3=9Fe" in flat
    assert "Grüße".encode() in flat
    assert b"BINARY.SIZE[2] 5" in flat
    assert b"\x00\x01\x02\x03\x04" in flat
    assert b"Content-Type: text/plain; charset=utf-8" in flat
    _, data = imap.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]     # PEEK did not set \Seen
    _, data = imap.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)] BODY[TEXT]<0.4>)")
    flat = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    assert b"Subject: Quarterly report\r\n\r\n" in flat and b"BODY[TEXT]<0> {4}" in flat
    assert b"\\Seen" in flat            # a non-peek fetch set it, and said so
    _, data = imap.fetch("1", "(RFC822.HEADER BODY[HEADER.FIELDS.NOT (SUBJECT)])")
    flat = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    assert flat.count(b"Subject:") == 1
    _, data = imap.fetch("1", "RFC822")
    assert data[0][1] == MSG
    _, data = imap.fetch("1", "(BODY[5] BODY[3.TEXT])")
    assert b"BODY[5] \"\"" in data[0] and b"BODY[3.TEXT] \"\"" in data[0]
    _, data = imap.fetch("1", "FAST")
    assert b"INTERNALDATE" in data[0] and b"RFC822.SIZE" in data[0]
    with pytest.raises(imaplib.IMAP4.error, match="Invalid message sequence"):
        imap.fetch("9", "FLAGS")
    with pytest.raises(imaplib.IMAP4.error, match="Unknown FETCH item"):
        imap.fetch("1", "(NOTANITEM)")
    _, data = imap.uid("FETCH", "1:*", "(FLAGS)")
    assert data[0].startswith(b"1 (UID 1 FLAGS")


def test_store_forms(imap):
    imap.append("INBOX", None, None, simple(1))
    imap.append("INBOX", None, None, simple(2))
    imap.select("INBOX")
    _, data = imap.store("1:2", "+FLAGS", "(\\Flagged work)")
    assert len(data) == 2 and all(b"\\Flagged" in d and b"work" in d for d in data)
    _, data = imap.store("1", "-FLAGS", "(work)")
    assert b"work" not in data[0]
    _, data = imap.store("2", "FLAGS", "(\\Answered)")
    assert b"\\Answered" in data[0] and b"\\Flagged" not in data[0]
    _, data = imap.store("1", "+FLAGS.SILENT", "(\\Draft)")
    assert data == [None]
    _, data = imap.uid("STORE", "2", "+FLAGS", "(\\Seen)")
    assert b"UID 2" in data[0]
    with pytest.raises(imaplib.IMAP4.error, match="Invalid system flag"):
        imap.store("1", "+FLAGS", "(\\Bogus)")
    with pytest.raises(imaplib.IMAP4.error, match="Invalid STORE item"):
        imap.store("1", "FOO", "(\\Seen)")
    # a new keyword is announced with FLAGS and PERMANENTFLAGS
    imap.untagged_responses.clear()
    imap.store("1", "+FLAGS", "(brandnew)")
    assert any(b"brandnew" in f for f in untagged(imap, "FLAGS"))


def test_search_keys(imap):
    imap.append("INBOX", "(\\Seen)", None, MSG)
    for i in range(1, 4):
        imap.append("INBOX", "(\\Flagged)" if i == 2 else None, None, simple(i, "Hello"))
    imap.select("INBOX")

    def s(*crit):
        typ, data = imap.search("UTF-8", *crit) if crit and crit[0] != "NOCHARSET" else imap.search(None, *crit[1:])
        assert typ == "OK", data
        return data[0].split()

    assert s("ALL") == [b"1", b"2", b"3", b"4"]
    assert s("SEEN") == [b"1"] and s("UNSEEN") == [b"2", b"3", b"4"]
    assert s("FLAGGED") == [b"3"]
    assert s("FROM", "bob") == [b"1"] and s("FROM", '"Bob Sender"') == [b"1"]
    assert s("TO", "alice") == [b"1"] and s("CC", "carol") == [b"1"]
    assert s("SUBJECT", "hello") == [b"2", b"3", b"4"]
    assert s("BODY", "budget") == [b"1"]
    assert s("BODY", "grüße".encode()) == [b"1"]           # decoded QP, case-folded
    assert s("TEXT", "quarterly") == [b"1"]
    assert s("HEADER", "Message-ID", "q1@example") == [b"1"]
    assert s("LARGER", "400") == [b"1"] and s("SMALLER", "400") == [b"2", b"3", b"4"]
    assert s("SENTBEFORE", "2-Jan-2024") == [b"1"] and s("SENTON", "2-Jan-2024") == [b"2", b"3", b"4"]
    assert s("SINCE", "1-Jan-2000") == [b"1", b"2", b"3", b"4"] and s("BEFORE", "1-Jan-2000") == []
    assert s("OR", "FLAGGED", "SEEN") == [b"1", b"3"]
    assert s("NOT", "SEEN", "NOT", "FLAGGED") == [b"2", b"4"]
    assert s("2:3") == [b"2", b"3"] and s("UID", "4:*") == [b"4"]
    assert s("(SEEN)", "ALL") == [b"1"]
    assert s("KEYWORD", "nothing") == [] and s("UNKEYWORD", "nothing") == [b"1", b"2", b"3", b"4"]
    # text keys ANDed with others narrow first; under OR and NOT they are tested per message
    assert s("SUBJECT", "hello", "2:3") == [b"2", b"3"] and s("FLAGGED", "SUBJECT", "hello") == [b"3"]
    assert s("BODY", "budget", "UNSEEN") == [] and s("SUBJECT", "hello", "BODY", "number") == [b"2", b"3", b"4"]
    assert s("OR", "BODY", "budget", "FLAGGED") == [b"1", b"3"] and s("NOT", "BODY", "budget") == [b"2", b"3", b"4"]
    assert s("RECENT") == [b"1", b"2", b"3", b"4"] and s("NEW") == [b"2", b"3", b"4"] and s("OLD") == []
    assert s("UID", "2,4", "NOT", "4") == [b"2"] and s("SMALLER", "400", "UNFLAGGED") == [b"2", b"4"]
    assert imap.search("KOI8-R", "ALL")[0] == "NO"
    with pytest.raises(imaplib.IMAP4.error, match="Unknown search key"):
        imap.search(None, "BOGUS")
    _, data = imap.uid("SEARCH", "FLAGGED")
    assert data == [b"3"]


def test_esearch_and_searchres(raw):
    for i in range(4):
        msg = simple(i)
        raw.send(b"a APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        raw.read_until_tag("a")
    raw.cmd("s", "SELECT INBOX")
    lines = raw.cmd("e", "SEARCH RETURN (MIN MAX COUNT ALL) 2:4")
    assert lines[0] == b'* ESEARCH (TAG "e") MIN 2 MAX 4 COUNT 3 ALL 2:4\r\n'
    lines = raw.cmd("u", "UID SEARCH RETURN () ALL")
    assert lines[0] == b'* ESEARCH (TAG "u") UID ALL 1:4\r\n'
    lines = raw.cmd("c", "SEARCH RETURN (COUNT) KEYWORD none")
    assert lines[0] == b'* ESEARCH (TAG "c") COUNT 0\r\n'
    lines = raw.cmd("v", "SEARCH RETURN (SAVE) 1:2")
    assert lines == [b"v OK SEARCH completed\r\n"]
    lines = raw.cmd("f", "FETCH $ (UID)")
    assert len(lines) == 3 and b"UID 1" in lines[0] and b"UID 2" in lines[1]
    raw.cmd("en", "ENABLE IMAP4rev2")
    lines = raw.cmd("r2", "SEARCH 1")
    assert lines[0] == b'* ESEARCH (TAG "r2") ALL 1\r\n'


def test_copy_move_expunge(imap):
    for i in range(4):
        imap.append("INBOX", None, None, simple(i))
    imap.select("INBOX")
    typ, data = imap.copy("1:2", "Archive")
    assert typ == "OK" and re.search(rb"COPYUID \d+ 1:2 1:2", data[0])
    assert imap.copy("1", "Nope")[0] == "NO"
    imap.untagged_responses.clear()
    typ, data = imap._simple_command("MOVE", "3", "Trash")
    assert typ == "OK"
    assert untagged(imap, "EXPUNGE") == [b"3"]
    imap.untagged_responses.clear()
    assert b"MESSAGES 1" in imap.status("Trash", "(MESSAGES)")[1][0]
    imap.store("1", "+FLAGS", "\\Deleted")
    typ, data = imap.expunge()
    assert data == [b"1"]
    _, data = imap.search(None, "ALL")
    assert data == [b"1 2"]
    imap.store("1:2", "+FLAGS", "\\Deleted")
    imap.untagged_responses.clear()
    typ, data = imap.uid("EXPUNGE", "4")
    assert typ == "OK" and untagged(imap, "EXPUNGE") == [b"2"]
    assert imap.uid("FETCH", "1:*", "UID")[1] == [b"1 (UID 2)"]
    assert imap.close()[0] == "OK"     # CLOSE expunges \Deleted silently
    assert b"MESSAGES 0" in imap.status("INBOX", "(MESSAGES)")[1][0]
    assert b"MESSAGES 2" in imap.status("Archive", "(MESSAGES)")[1][0]


def test_check_unselect_id_enable(raw):
    assert raw.cmd("1", "SELECT INBOX")[-1].startswith(b"1 OK [READ-WRITE]")
    assert raw.cmd("2", "CHECK")[-1].startswith(b"2 OK")
    assert raw.cmd("3", "UNSELECT")[-1].startswith(b"3 OK")
    assert raw.cmd("4", "CHECK")[-1].startswith(b"4 BAD")
    lines = raw.cmd("5", 'ID ("name" "test")')
    assert lines[0].startswith(b'* ID ("name" "Posthouse"')
    lines = raw.cmd("6", "ENABLE IMAP4rev2 FOO")
    assert lines[0] == b"* ENABLED IMAP4rev2\r\n"
    lines = raw.cmd("7", "SELECT INBOX")
    assert not any(b"RECENT" in l for l in lines)
    assert any(l.startswith(b'* LIST () "/" INBOX') for l in lines)
    lines = raw.cmd("8", "SELECT Sent")
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed.\r\n"


def test_utf8_and_mutf7_names(server, user):
    r = RawClient(server.host, server.port)
    r.cmd("l", f"LOGIN {user[0]} {user[1]}")
    assert r.cmd("c", "CREATE Entw&APw-rfe")[-1].startswith(b"c OK")
    lines = r.cmd("li", 'LIST "" Entw*')
    assert lines[0] == b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe\r\n'
    assert r.cmd("x", "CREATE &Jjo-bad&")[-1].startswith(b"x NO")
    r.cmd("e", "ENABLE UTF8=ACCEPT")
    lines = r.cmd("li2", 'LIST "" Entw*')
    assert lines[0] == '* LIST (\\HasNoChildren) "/" "Entwürfe"\r\n'.encode()
    r.close()


def test_idle_raw(server, user, raw):
    raw.cmd("s", "SELECT INBOX")
    raw.send("i IDLE\r\n")
    assert raw.readline().startswith(b"+ ")
    other = imaplib.IMAP4(server.host, server.port)
    other.login(*user)
    other.append("INBOX", None, None, simple(1))
    assert raw.readline() == b"* 1 EXISTS\r\n"
    assert raw.readline() == b"* 1 RECENT\r\n"
    other.select("INBOX")
    other.store("1", "+FLAGS", "\\Flagged")
    assert raw.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\n"
    other.store("1", "+FLAGS", "\\Deleted")
    raw.readline()
    other.expunge()
    assert raw.readline() == b"* 1 EXPUNGE\r\n"
    raw.send("DONE\r\n")
    assert raw.readline().startswith(b"i OK")
    other.logout()


def test_logout(raw):
    lines = raw.cmd("z", "LOGOUT")
    assert lines[0].startswith(b"* BYE") and lines[-1].startswith(b"z OK")
    assert raw.readline() == b""


def test_binary_append_keeps_bytes_and_text_append_gets_crlf(raw):
    binary = b"Subject: bin\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\n\x02\n"
    raw.send(b"b APPEND INBOX ~{%d+}\r\n" % len(binary) + binary + b"\r\n")
    assert raw.read_until_tag("b")[-1].startswith(b"b OK")
    text = b"Subject: lf\n\nline one\nline two\n"
    raw.send(b"t APPEND INBOX {%d+}\r\n" % len(text) + text + b"\r\n")
    assert raw.read_until_tag("t")[-1].startswith(b"t OK")
    raw.cmd("s", "SELECT INBOX")
    lines = raw.cmd("f", "FETCH 2 RFC822.SIZE")
    assert lines[0] == b"* 2 FETCH (RFC822.SIZE %d)\r\n" % len(text.replace(b"\n", b"\r\n"))
    # The part holds a NUL: it is stored base64 (RFC 3516), BINARY gives back its exact bytes.
    lines = raw.cmd("g", "FETCH 1 (BINARY.PEEK[1] BODY.PEEK[1])")
    flat = b"".join(lines)
    assert b"~{5}\r\n\x00\x01\n\x02\n" in flat and b"BODY[1] {8}\r\nAAEKAgo=" in flat


def test_big_message_streamed_exactly(imap):
    """Messages above the inline size live in files and are streamed: the bytes must be exact."""
    import os as _os
    payload = b"".join(b"line %06d " % i + _os.urandom(30).hex().encode() + b"\r\n" for i in range(12000))
    big = (b"From: big@example.com\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
           + payload + b"--B--\r\n")
    assert len(big) > 600_000
    imap.append("INBOX", None, None, big)
    imap.select("INBOX")
    typ, data = imap.fetch("1", "(BODY.PEEK[] BODY.PEEK[]<1000.300000> BODY.PEEK[2] RFC822.SIZE)")
    assert typ == "OK"
    parts = [x for x in data if isinstance(x, tuple)]
    assert parts[0][1] == big
    assert parts[1][1] == big[1000:301000]
    assert parts[2][1] == payload[:-2]      # the CRLF before a boundary belongs to it
    assert b"RFC822.SIZE %d" % len(big) in b"".join(x if isinstance(x, bytes) else x[0] for x in data)
    typ, data = imap.search(None, "BODY", '"line 011999"')
    assert data[0].split() == [b"1"]


def test_sort(imap):
    msgs = [
        b"From: Zed <zed@example.com>\r\nTo: b@x\r\nSubject: Re: beta\r\nDate: Wed, 03 Jan 2024 10:00:00 +0000\r\n\r\nx\r\n",
        b"From: alice@example.com\r\nTo: c@x\r\nSubject: alpha\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nxxxxxxxxx\r\n",
        b"From: Bob <bob@example.com>\r\nTo: a@x\r\nSubject: [list] gamma\r\nDate: garbage\r\n\r\nxxxx\r\n",
    ]
    for m in msgs:
        imap.append("INBOX", None, None, m)
    imap.select("INBOX")
    caps = imap.capability()[1][0].decode().split()
    assert "SORT" in caps and "SORT=DISPLAY" in caps

    def sort(criteria, search="ALL"):
        typ, data = imap._simple_command("SORT", criteria, "UTF-8", search)
        assert typ == "OK", data
        return [int(x) for x in imap._untagged_response(typ, data, "SORT")[1][0].split()]

    assert sort("(SUBJECT)") == [2, 1, 3]
    assert sort("(REVERSE SUBJECT)") == [3, 1, 2]
    assert sort("(FROM)") == [2, 3, 1]
    assert sort("(DISPLAYFROM)") == [2, 3, 1]          # alice@example.com, Bob, Zed
    assert sort("(TO)") == [3, 1, 2]
    assert sort("(SIZE)") == sorted([1, 2, 3], key=lambda n: len(msgs[n - 1]))
    assert sort("(ARRIVAL)") == [1, 2, 3]
    assert sort("(DATE)")[:2] == [2, 1]                 # message 3's date is broken: its arrival counts
    assert sort("(SUBJECT)", "FROM bob") == [3]
    typ, data = imap._simple_command("UID", "SORT", "(REVERSE ARRIVAL)", "UTF-8", "ALL")
    assert typ == "OK"
    for bad_args in (("(BOGUS)", "UTF-8", "ALL"), ("()", "UTF-8", "ALL"), ("(REVERSE)", "UTF-8", "ALL")):
        with pytest.raises(imaplib.IMAP4.error):
            imap._simple_command("SORT", *bad_args)
    typ, data = imap._simple_command("SORT", "(DATE)", "KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]


def test_esort_returns_in_sort_order_and_saves(raw):
    for subject in ("c", "a", "b", "d"):
        msg = f"Subject: {subject}\r\n\r\nx\r\n".encode()
        raw.send(b"A APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert raw.read_until_tag("A")[-1].startswith(b"A OK")
    assert raw.cmd("S", "SELECT INBOX")[-1].startswith(b"S OK")
    assert b"ESORT" in b"".join(raw.cmd("C", "CAPABILITY"))
    lines = raw.cmd("E1", "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL")
    assert lines[0] == b'* ESEARCH (TAG "E1") MIN 2 MAX 4 COUNT 4 ALL 2:3,1,4\r\n'
    assert raw.cmd("E2", "SORT RETURN () (SUBJECT) UTF-8 ALL")[0] == b'* ESEARCH (TAG "E2") ALL 2:3,1,4\r\n'
    lines = raw.cmd("E3", "SORT RETURN (SAVE) (REVERSE SUBJECT) UTF-8 2:3")
    assert lines == [b"E3 OK SORT completed\r\n"]
    assert raw.cmd("E4", "SEARCH $")[0] == b"* SEARCH 2 3\r\n"
    assert raw.cmd("E5", "SORT RETURN (BOGUS) (SUBJECT) UTF-8 ALL")[-1].startswith(b"E5 BAD")


def test_sort_leaves_out_a_message_expunged_by_another_session_and_keeps_ties_in_order(raw_pair):
    """Before the expunge is reported, sequence numbers stay the session's
    own; the gone message is in no SORT answer, by index keys (DATE) or by
    stored ones (SUBJECT); equal keys stay in mailbox order, also REVERSEd."""
    a, b = raw_pair
    for subject, day in (("b", 3), ("a", 1), ("b", 2), ("a", 1)):
        msg = f"Subject: {subject}\r\nDate: Mon, 0{day} Jan 2024 10:00:00 +0000\r\n\r\nx\r\n".encode()
        a.send(b"A APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert a.read_until_tag("A")[-1].startswith(b"A OK")
    assert a.cmd("S", "SELECT INBOX")[-1].startswith(b"S OK")
    assert a.cmd("T0", "SORT (SUBJECT REVERSE DATE) UTF-8 ALL")[0] == b"* SORT 2 4 1 3\r\n"
    assert a.cmd("T1", "SORT (REVERSE SUBJECT) UTF-8 ALL")[0] == b"* SORT 1 3 2 4\r\n"
    assert b.cmd("S", "SELECT INBOX")[-1].startswith(b"S OK")
    assert b.cmd("D", "STORE 3 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"D OK")
    assert b.cmd("E", "EXPUNGE")[-1].startswith(b"E OK")
    # SORT may not report the expunge (RFC 9051 7.5.1): the numbers are still a's.
    assert a.cmd("T2", "SORT (DATE) UTF-8 ALL")[0] == b"* SORT 2 4 1\r\n"
    assert a.cmd("T3", "SORT (SUBJECT) UTF-8 ALL")[0] == b"* SORT 2 4 1\r\n"
    lines = a.cmd("T4", "UID SORT (REVERSE SUBJECT) UTF-8 ALL")
    assert lines[0] == b"* SORT 1 2 4\r\n"
    assert b"* 3 EXPUNGE\r\n" in lines + a.cmd("N", "NOOP")     # a UID command may report it
    assert a.cmd("T5", "SORT (SUBJECT) UTF-8 ALL")[0] == b"* SORT 2 3 1\r\n"


def test_thread_command_and_its_errors(raw):
    msgs = [b"Message-ID: <t1@x>\r\nSubject: plan\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nx\r\n",
            b"Message-ID: <t2@x>\r\nReferences: <t1@x>\r\nSubject: Re: plan\r\n"
            b"Date: Mon, 01 Jan 2024 11:00:00 +0000\r\n\r\nx\r\n"]
    for msg in msgs:
        raw.send(b"A APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        assert raw.read_until_tag("A")[-1].startswith(b"A OK")
    assert raw.cmd("S", "SELECT INBOX")[-1].startswith(b"S OK")
    assert raw.cmd("T1", "THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD (1 2)\r\n"
    uids = raw.cmd("F", "FETCH 1:2 UID")
    first, second = (int(line.split(b"UID ")[1].split(b")")[0]) for line in uids[:2])
    assert raw.cmd("T2", "UID THREAD ORDEREDSUBJECT US-ASCII ALL")[0] == b"* THREAD (%d %d)\r\n" % (first, second)
    assert raw.cmd("T3", "THREAD REFERENCES UTF-8 SUBJECT nothing-like-this")[0] == b"* THREAD\r\n"
    assert raw.cmd("T4", "THREAD BOGUS UTF-8 ALL")[-1].startswith(b"T4 BAD")
    assert raw.cmd("T5", "THREAD REFERENCES KOI8-R ALL")[-1].startswith(b"T5 NO [BADCHARSET")
    assert raw.cmd("T6", "THREAD REFERENCES UTF-8 ALL")[-1].startswith(b"T6 OK")
