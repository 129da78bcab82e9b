"""Real sync programs from Debian: mbsync (isync) and offlineimap3, both directions."""
from __future__ import annotations

import imaplib
import os
import shutil
import subprocess

import pytest

MSG = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n\r\nbody %s\r\n"


def msg(tag: str) -> bytes:
    t = tag.encode()
    return MSG % (t, t, t)


def maildir_files(folder):
    out = []
    for sub in ("cur", "new"):
        path = os.path.join(folder, sub)
        if os.path.isdir(path):
            out += [os.path.join(path, f) for f in os.listdir(path)]
    return out


def subjects(folder):
    subs = {}
    for path in maildir_files(folder):
        with open(path, "rb") as f:
            for line in f.read().split(b"\n"):
                if line.startswith(b"Subject: "):
                    subs[line[9:].strip().decode()] = os.path.basename(path)
    return subs


needs_mbsync = pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (Debian isync) not installed")
needs_offlineimap = pytest.mark.skipif(shutil.which("offlineimap") is None,
                                       reason="offlineimap (Debian offlineimap3) not installed")


@needs_mbsync
def test_mbsync_two_way(server, user, tmp_path):
    name, pw = user
    local = tmp_path / "mail"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""IMAPAccount t
Host {server.host}
Port {server.port}
User {name}
Pass {pw}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account t

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel c
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")

    def sync():
        r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    c = imaplib.IMAP4(server.host, server.port)
    c.login(name, pw)
    for tag in ("one", "two", "three"):
        c.append("INBOX", None, None, msg(tag))
    sync()
    inbox = str(local / "INBOX")
    assert set(subjects(inbox)) == {"one", "two", "three"}
    assert os.path.isdir(local / "Sent")

    # local changes: flag a message, create a folder with a message in it
    fname = subjects(inbox)["one"]
    path = next(p for p in maildir_files(inbox) if os.path.basename(p) == fname)
    base = path.split(":2,")[0]
    os.rename(path, os.path.join(inbox, "cur", os.path.basename(base) + ":2,F"))
    newdir = local / "Projects"
    for sub in ("cur", "new", "tmp"):
        (newdir / sub).mkdir(parents=True)
    (newdir / "new" / "1700000000.1.host").write_bytes(msg("local-made"))
    sync()
    c.select("INBOX")
    typ, data = c.search(None, "FLAGGED")
    assert len(data[0].split()) == 1
    typ, data = c.fetch(data[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"one" in data[0][1]
    c.select("Projects")
    typ, data = c.search(None, "ALL")
    assert data == [b"1"]

    # server changes: expunge one, flag another
    c.select("INBOX")
    _, data = c.search(None, "SUBJECT", "two")
    c.store(data[0], "+FLAGS", "\\Deleted")
    c.expunge()
    _, data = c.search(None, "SUBJECT", "three")
    c.store(data[0], "+FLAGS", "\\Seen")
    sync()
    subs = subjects(inbox)
    assert set(subs) == {"one", "three"}
    assert subs["three"].endswith("S") or ":2," in subs["three"] and "S" in subs["three"].split(":2,")[1]

    # a last run changes nothing
    before = {p: os.path.getmtime(p) for p in maildir_files(inbox)}
    state = c.status("INBOX", "(MESSAGES UIDNEXT)")[1][0]
    sync()
    assert {p: os.path.getmtime(p) for p in maildir_files(inbox)} == before
    assert c.status("INBOX", "(MESSAGES UIDNEXT)")[1][0] == state
    c.logout()


@needs_offlineimap
def test_offlineimap_both_directions(server, user, tmp_path):
    name, pw = user
    local = tmp_path / "Mail"
    rc = tmp_path / "offlineimaprc"
    rc.write_text(f"""[general]
accounts = t
metadata = {tmp_path}/meta

[Account t]
localrepository = L
remoterepository = R

[Repository L]
type = Maildir
localfolders = {local}

[Repository R]
type = IMAP
remotehost = {server.host}
remoteport = {server.port}
remoteuser = {name}
remotepass = {pw}
ssl = no
starttls = no
""")

    def sync():
        r = subprocess.run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0 and "ERROR" not in r.stdout + r.stderr, r.stdout + r.stderr
        return r

    c = imaplib.IMAP4(server.host, server.port)
    c.login(name, pw)
    c.append("INBOX", "(\\Flagged)", None, msg("from-server"))
    sync()
    inbox = str(local / "INBOX")
    subs = subjects(inbox)
    assert set(subs) == {"from-server"}
    assert "F" in subs["from-server"].split(":2,")[1]
    os.makedirs(os.path.join(inbox, "new"), exist_ok=True)
    with open(os.path.join(inbox, "new", "1700000001.2.host"), "wb") as f:
        f.write(msg("from-local"))
    sync()
    c.select("INBOX")
    _, data = c.search(None, "SUBJECT", "from-local")
    assert len(data[0].split()) == 1
    c.logout()
