"""`posthouse import` and `posthouse export`, run as commands beside the running test server."""
from __future__ import annotations

import contextlib
import imaplib
import io
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from posthouse import cli
from posthouse.app import open_store
from posthouse.transfer import importer as importer_module
from posthouse.transfer.importer import run_import

MBOX = (b"From alice@example.com Mon Jan  2 15:04:05 2006\n"
        b"From: alice@example.com\nSubject: first\nStatus: RO\nX-Status: AF\n\n"
        b"Hello\n>From the top\n>>From quoted twice\n\n"
        b"From bob@example.com Tue Feb 14 08:00:00 2012 +0100\n"
        b"From: bob@example.com\nSubject: second\n\nBody two\n\n")


def posthouse(server, *args, check=True):
    """The command, run in this process (a new Python for each costs a second)."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["--data-dir", server.config.data_dir]
    if server.config.database_url:      # the mail store in PostgreSQL (POSTHOUSE_TEST_STORE)
        config = os.path.join(server.config.data_dir, "test-config.toml")
        with open(config, "w") as f:
            f.write(f'database_url = "{server.config.database_url}"\n')
        argv = ["--config", config, *argv]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main([*argv, *args])
    r = subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def login(server, user):
    c = imaplib.IMAP4(server.host, server.port)
    c.login(*user)
    return c


def fetch_all(c, mailbox):
    """{subject: (flags, internaldate, body)} of a mailbox."""
    typ, _ = c.select(f'"{mailbox}"', readonly=True)
    assert typ == "OK", mailbox
    typ, data = c.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    out = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        meta, body = item
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split()) - {"\\Recent"}
        idate = re.search(rb'INTERNALDATE "([^"]+)"', meta).group(1).decode()
        subject = re.search(rb"Subject: (.*)\r\n", body).group(1).decode()
        out[subject] = (flags, idate, body)
    return out


def write_maildir(path, messages):
    """messages: (sub dir, file name, bytes, mtime)."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    for sub, name, raw, mtime in messages:
        file = os.path.join(path, sub, name)
        with open(file, "wb") as f:
            f.write(raw)
        os.utime(file, (mtime, mtime))


def test_mbox_import_folders_flags_dates_quoting(server, tmp_path):
    user = server.add_user()
    tree = tmp_path / "Mail"
    (tree / "Lists.sbd").mkdir(parents=True)
    (tree / "inbox").write_bytes(MBOX)
    (tree / "Lists.sbd" / "python").write_bytes(MBOX.replace(b"first", b"list-first"))
    (tree / "Lists.msf").write_bytes(b"// a Thunderbird index, not mail")
    r = posthouse(server, "import", user[0], str(tree))
    assert "imported 4 messages into 2 folders" in r.stdout
    c = login(server, user)
    inbox = fetch_all(c, "INBOX")
    flags, idate, body = inbox["first"]
    assert flags == {"\\Seen", "\\Answered", "\\Flagged"}
    assert idate == "02-Jan-2006 15:04:05 +0000"
    # mboxrd quoting taken off one level; the mail reader's status headers are not the message's
    assert b"\r\nFrom the top\r\n>From quoted twice\r\n" in body
    assert b"Status:" not in body
    assert body.endswith(b"quoted twice\r\n")
    flags, idate, body = inbox["second"]
    assert flags == set() and idate == "14-Feb-2012 07:00:00 +0000"
    assert body.endswith(b"Body two\r\n")
    assert set(fetch_all(c, "Lists/python")) == {"list-first", "second"}
    c.logout()


def test_maildir_trees(server, tmp_path):
    user = server.add_user()
    root = tmp_path / "Maildir"
    msg = b"From: a@example.com\nSubject: %s\n\nbody\n"
    write_maildir(root, [("cur", "1.a.host:2,S", msg % b"inbox-seen", 1_600_000_000),
                         ("new", "2.b.host", msg % b"inbox-new", 1_600_000_100)])
    # Maildir++ subfolder "Work/Reports", and a non-ASCII name in modified UTF-7
    write_maildir(root / ".Work.Reports", [("cur", "3.c.host:2,FRT", msg % b"report", 1_500_000_000),
                                          ("cur", "4.d.host:2,DP", msg % b"draft", 1_500_000_001)])
    write_maildir(root / ".Gr&APw-&AN8-e", [("cur", "5.e.host:2,", msg % b"gruss", 1_500_000_002)])
    r = posthouse(server, "import", user[0], str(root))
    assert "imported 5 messages into 3 folders" in r.stdout
    c = login(server, user)
    inbox = fetch_all(c, "INBOX")
    assert inbox["inbox-seen"][0] == {"\\Seen"} and inbox["inbox-seen"][1] == "13-Sep-2020 12:26:40 +0000"
    assert inbox["inbox-new"][0] == set()
    work = fetch_all(c, "Work/Reports")
    assert work["report"][0] == {"\\Flagged", "\\Answered", "\\Deleted"}
    assert work["draft"][0] == {"\\Draft", "$Forwarded"}
    assert work["report"][1] == "14-Jul-2017 02:40:00 +0000"
    assert set(fetch_all(c, "Gr&APwA3w-e")) == {"gruss"}      # Grüße, as an IMAP4rev1 name
    c.logout()

    # a plain nested tree (mbsync's SubFolders Verbatim)
    other = server.add_user()
    nested = tmp_path / "nested"
    write_maildir(nested / "INBOX", [("cur", "1.a.host:2,S", msg % b"top", 1_600_000_000)])
    write_maildir(nested / "Projects" / "Alpha", [("cur", "2.b.host:2,F", msg % b"alpha", 1_600_000_000)])
    r = posthouse(server, "import", other[0], str(nested))
    assert "imported 2 messages" in r.stdout
    c = login(server, other)
    assert fetch_all(c, "Projects/Alpha")["alpha"][0] == {"\\Flagged"}
    assert set(fetch_all(c, "INBOX")) == {"top"}
    c.logout()


def test_import_twice_adds_nothing(server, tmp_path):
    user = server.add_user()
    (tmp_path / "a.mbox").write_bytes(MBOX + MBOX.replace(b"first", b"third"))
    posthouse(server, "import", user[0], str(tmp_path / "a.mbox"), "--folder", "Old")
    r = posthouse(server, "import", user[0], str(tmp_path / "a.mbox"), "--folder", "Old")
    assert "imported 0 messages" in r.stdout and "(4 imported before)" in r.stdout
    c = login(server, user)
    assert c.select("Old")[1] == [b"4"]     # "second" twice: two copies in the source, two here
    c.logout()


def test_interrupted_import_resumes(server, tmp_path, monkeypatch):
    user = server.add_user()
    parts = [MBOX.replace(b"first", b"m%d-a" % i).replace(b"second", b"m%d-b" % i) for i in range(10)]
    (tmp_path / "big.mbox").write_bytes(b"".join(parts))
    monkeypatch.setattr(importer_module, "BATCH_MESSAGES", 4)
    store = open_store(server.config)      # the server's store, SQLite or PostgreSQL
    try:
        real = store.import_messages
        calls = []

        def dies_third_time(*args):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt     # as if killed: the third batch never commits
            return real(*args)
        monkeypatch.setattr(store, "import_messages", dies_third_time)
        with pytest.raises(KeyboardInterrupt):
            run_import(store, user[0], [str(tmp_path / "big.mbox")], "Big")
        monkeypatch.setattr(store, "import_messages", real)
        report = run_import(store, user[0], [str(tmp_path / "big.mbox")], "Big")
        assert (report.added, report.skipped) == (12, 8)
    finally:
        store.close()
    c = login(server, user)
    got = fetch_all(c, "Big")
    assert len(got) == 20 and c.select("Big")[1] == [b"20"]
    c.logout()


def test_killed_import_resumes(server, tmp_path):
    """A real kill -9 in the middle of a command, then the same command again."""
    user = server.add_user()
    parts = [MBOX.replace(b"first", b"k%d-a" % i).replace(b"second", b"k%d-b" % i) for i in range(1500)]
    (tmp_path / "kill.mbox").write_bytes(b"".join(parts))
    proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--data-dir", server.config.data_dir,
                             "import", user[0], str(tmp_path / "kill.mbox"), "--folder", "Kill"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = open_store(server.config)      # the server's store, SQLite or PostgreSQL
    killed = []
    try:
        uid = store.get_user(user[0]).id
        # Kill it once some of its batches are in (or when it has finished, on a fast machine).
        for _ in range(600):
            if proc.poll() is not None:
                break
            mark = "%s" if type(store).__name__ == "PostgresStore" else "?"
            n = store.db.execute(f"SELECT count(*) FROM imported WHERE user_id={mark}", (uid,)).fetchone()[0]
            if n:
                proc.kill()
                killed.append(n)
                break
            time.sleep(0.05)
    finally:
        proc.wait(60)
        proc.stdout.close()
        proc.stderr.close()
        store.close()
    r = posthouse(server, "import", user[0], str(tmp_path / "kill.mbox"), "--folder", "Kill")
    if killed:      # (a machine fast enough may have finished first)
        assert "(0 imported before)" not in r.stdout
    c = login(server, user)
    assert c.select("Kill")[1] == [b"3000"]
    c.logout()


def test_bad_sources_get_clear_errors(server, tmp_path):
    user = server.add_user()
    (tmp_path / "junk").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "good.mbox").write_bytes(MBOX)
    # refused before anything is imported, the good source named with it included
    r = posthouse(server, "import", user[0], str(tmp_path / "good.mbox"), str(tmp_path / "junk"), check=False)
    assert r.returncode == 1 and "not an mbox file" in r.stderr and "Traceback" not in r.stderr

    (tmp_path / "notmail").mkdir()
    (tmp_path / "notmail" / "readme").write_text("hello")
    r = posthouse(server, "import", user[0], str(tmp_path / "notmail"), check=False)
    assert r.returncode == 1 and "neither a Maildir" in r.stderr and "Traceback" not in r.stderr

    r = posthouse(server, "import", user[0], str(tmp_path / "good.mbox"), "--folder", "a/*/b", check=False)
    assert r.returncode == 1 and "Wildcards in mailbox name" in r.stderr

    r = posthouse(server, "import", user[0], str(tmp_path / "missing"), check=False)
    assert r.returncode == 1 and "no such file" in r.stderr

    r = posthouse(server, "import", "nobody-here", str(tmp_path / "junk"), check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr

    (tmp_path / "empty").write_bytes(b"")
    r = posthouse(server, "import", user[0], str(tmp_path / "empty"), "--folder", "Empty")
    assert "imported 0 messages" in r.stdout

    # cut off in the middle of a From_ line: what came before is imported, the rest reported
    (tmp_path / "cut.mbox").write_bytes(MBOX + b"From carol@exa")
    r = posthouse(server, "import", user[0], str(tmp_path / "cut.mbox"), check=False)
    assert r.returncode == 1 and "truncated" in r.stderr and "imported 2 messages" in r.stdout

    # an empty file in a Maildir is left out, the rest imported
    write_maildir(tmp_path / "md", [("cur", "1.a:2,S", b"Subject: ok\n\nfine\n", 1_600_000_000),
                                    ("cur", "2.b:2,S", b"", 1_600_000_000)])
    r = posthouse(server, "import", user[0], str(tmp_path / "md"), "--folder", "MD", check=False)
    assert r.returncode == 1 and "empty file" in r.stderr and "imported 1 messages" in r.stdout
    c = login(server, user)
    assert c.select("cut")[1] == [b"2"] and c.select("MD")[1] == [b"1"]
    assert c.select("good")[0] == "NO"
    c.logout()


def _contents(store, user_name):
    """{mailbox: sorted [(bytes, flags, internaldate)]} of a user."""
    user = store.get_user(user_name)
    out = {}
    for mb in store.list_mailboxes(user.id):
        _info, entries = store.load_index(mb.id)
        data = store.message_data(mb.id, [e.uid for e in entries], with_bytes=True)
        out[mb.name] = sorted((data[e.uid].inline or store.read_blob(data[e.uid].blob_key),
                               tuple(sorted(e.flags)), e.internaldate) for e in entries)
    return out


@pytest.mark.parametrize("layout", ["maildir++", "verbatim"])
def test_export_round_trip(server, tmp_path, layout):
    a, b = server.add_user(), server.add_user()
    tree = tmp_path / "Mail"
    (tree / "Lists.sbd").mkdir(parents=True)
    (tree / "inbox").write_bytes(MBOX)
    (tree / "Lists.sbd" / "Grüße").write_bytes(MBOX.replace(b"first", b"list-first"))
    posthouse(server, "import", a[0], str(tree))
    c = login(server, a)
    c.select("INBOX")
    c.store("2", "+FLAGS", "(\\Draft $Forwarded)")
    c.logout()
    out = tmp_path / "export"
    r = posthouse(server, "export", a[0], str(out), "--layout", layout)
    assert "exported 4 messages" in r.stdout
    # again: nothing new is written
    r = posthouse(server, "export", a[0], str(out), "--layout", layout)
    assert "exported 0 messages" in r.stdout and "4 unchanged" in r.stdout
    posthouse(server, "import", b[0], str(out))
    store = open_store(server.config)      # the server's store, SQLite or PostgreSQL
    try:
        assert _contents(store, a[0]) == _contents(store, b[0])
    finally:
        store.close()


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (Debian isync) not installed")
def test_mbsync_reads_the_export(server, tmp_path):
    a, b = server.add_user(), server.add_user()
    (tmp_path / "Mail" / "Lists.sbd").mkdir(parents=True)
    (tmp_path / "Mail" / "inbox").write_bytes(MBOX)
    (tmp_path / "Mail" / "Lists.sbd" / "python").write_bytes(MBOX.replace(b"first", b"list-first"))
    posthouse(server, "import", a[0], str(tmp_path / "Mail"))
    out = tmp_path / "export"
    posthouse(server, "export", a[0], str(out))
    # mbsync takes the exported Maildir++ tree as its local store and pushes it to another account
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""IMAPAccount t
Host {server.host}
Port {server.port}
User {b[0]}
Pass {b[1]}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account t

MaildirStore local
Inbox {out}
SubFolders Maildir++

Channel c
Far :remote:
Near :local:
Patterns *
Create Far
Sync Push
SyncState *
""")
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    c = login(server, b)
    inbox = fetch_all(c, "INBOX")
    assert set(inbox) == {"first", "second"}
    assert inbox["first"][0] == {"\\Seen", "\\Answered", "\\Flagged"}
    assert inbox["second"][0] == set()
    assert set(fetch_all(c, "Lists/python")) == {"list-first", "second"}
    c.logout()


def _doveadm(conf, *args):
    r = subprocess.run(["doveadm", "-c", str(conf), *args], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, USER="exported", HOME=str(conf.parent)))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.skipif(shutil.which("doveadm") is None, reason="doveadm (Debian dovecot-core) not installed")
def test_dovecot_reads_the_export(server, tmp_path):
    a = server.add_user()
    (tmp_path / "Mail" / "Lists.sbd").mkdir(parents=True)
    (tmp_path / "Mail" / "inbox").write_bytes(MBOX)
    (tmp_path / "Mail" / "Lists.sbd" / "Grüße").write_bytes(MBOX.replace(b"first", b"list-first"))
    posthouse(server, "import", a[0], str(tmp_path / "Mail"))
    # Dovecot, with a config of its own, reads the Maildir++ tree as a user's mail (as the
    # user that owns it: Dovecot refuses to touch mail as root, so root hands it to nobody,
    # in a directory of its own: pytest's are root's alone)
    top = tempfile.mkdtemp(prefix="posthouse-export-")
    try:
        _dovecot_reads(server, a, pathlib.Path(top))
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _dovecot_reads(server, a, top):
    import pwd
    out = top / "export"
    posthouse(server, "export", a[0], str(out))
    dove = top / "dovecot"
    dove.mkdir()
    owner = pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
    for where, dirs, files in os.walk(top):
        for name in [""] + dirs + files:
            os.chown(os.path.join(where, name), owner.pw_uid, owner.pw_gid)
    conf = dove / "dovecot.conf"
    conf.write_text(f"base_dir = {dove}/run\nstate_dir = {dove}/state\nlog_path = {dove}/dovecot.log\n"
                    f"mail_location = maildir:{out}\nmail_uid = {owner.pw_uid}\nmail_gid = {owner.pw_gid}\n"
                    f"first_valid_uid = 1\nfirst_valid_gid = 1\n")
    names = set(_doveadm(conf, "mailbox", "list").split())
    assert "Lists.Grüße" in names or "Lists/Grüße" in names, names
    lines = _doveadm(conf, "-f", "flow", "fetch", "flags date.received hdr.subject", "mailbox", "INBOX").splitlines()
    got = {re.search(r"hdr.subject=(.*)", line).group(1): line for line in lines}
    assert set(got) == {"first", "second"}
    assert all(f in got["first"] for f in ("\\Seen", "\\Answered", "\\Flagged"))
    assert "date.received=2006-01-02 " in got["first"]     # (in local time: the day is safe)


def test_server_shows_mail_imported_beside_it(server, tmp_path):
    """An import while a session has the mailbox open: the server doesn't hear of it,
    but reads it from the database once the next message arrives there (README)."""
    user = server.add_user()
    watcher = login(server, user)
    assert watcher.select("INBOX")[1] == [b"0"]
    (tmp_path / "inbox").write_bytes(MBOX)
    posthouse(server, "import", user[0], str(tmp_path / "inbox"))
    other = login(server, user)
    other.append("INBOX", None, None, b"From: c@example.com\r\nSubject: later\r\n\r\nhi\r\n")
    other.logout()
    typ, data = watcher.noop()
    for _ in range(50):     # the catch-up reads the database on its own time
        if watcher.untagged_responses.get("EXISTS", [b"0"])[-1] == b"3":
            break
        time.sleep(0.1)
        watcher.noop()
    assert watcher.untagged_responses.get("EXISTS", [b"0"])[-1] == b"3"
    assert set(fetch_all(watcher, "INBOX")) == {"first", "second", "later"}
    watcher.logout()


def test_a_running_server_shows_imported_mail_to_open_sessions_at_once(tmp_path):
    """`posthouse import` beside a running server tells it (admin socket) which
    mailboxes each batch went into: a session that has INBOX selected (so the
    server has it loaded) sees the mail at its next command, as it would a
    delivery, without waiting for another message to arrive."""
    import imaplib
    from .test_backup import Server, add_user, posthouse
    data = str(tmp_path / "data")
    add_user(data)
    mbox = tmp_path / "inbox"
    mbox.write_bytes(b"".join(
        b"From sender@example.org Mon Jan  1 10:00:00 2024\n"
        b"From: sender@example.org\nSubject: imported %d\n\nbody %d\n\n" % (i, i) for i in range(5)))
    server = Server(tmp_path, data)
    try:
        imap = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
        imap.login("alice", "pw-secret")
        typ, data_ = imap.select("INBOX")
        before = int(data_[0])
        done = posthouse("import", "alice", str(mbox), "--jobs", "1", config=server.config)
        assert done.returncode == 0, done.stderr
        typ, _ = imap.noop()
        exists = [int(r.split()[0]) for r in imap.untagged_responses.get("EXISTS", [])]
        assert exists and exists[-1] == before + 5, (exists, before)
        _, found = imap.search(None, "SUBJECT", "imported")
        assert len(found[0].split()) == 5
        imap.logout()
        assert "read again" in open(server.log).read()
    finally:
        server.stop()
