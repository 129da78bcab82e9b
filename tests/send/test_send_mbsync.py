"""After a send, an mbsync (Debian isync) copy of the account finds the sent
mail in its Sent folder: what every other client sees."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from posthouse.send import compose, send

from .conftest import add_account


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (Debian isync) not installed")
def test_sent_mail_appears_in_an_mbsync_copy(server, accounts, tmp_path):
    (name, pw), bob = server.add_user(), server.add_user()
    account = add_account(accounts, server, (name, pw))
    composed = compose(from_addr=f"{name}@example.com", to=[f"{bob[0]}@example.com"], subject="Seen by mbsync",
                       text="hello from Posthouse", message_id_domain="example.com")
    result = asyncio.run(send(accounts, account, composed))
    assert result.appended[0] == "Sent"

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
Create Near
Sync Pull
SyncState *
""")
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    files = [os.path.join(local, "Sent", sub, f) for sub in ("cur", "new")
             if os.path.isdir(os.path.join(local, "Sent", sub)) for f in os.listdir(os.path.join(local, "Sent", sub))]
    assert len(files) == 1
    with open(files[0], "rb") as f:
        copy = f.read()
    # the bytes sent, as mbsync keeps them: LF line ends, and its own X-TUID header added
    lines = [line for line in copy.replace(b"\r\n", b"\n").split(b"\n") if not line.startswith(b"X-TUID: ")]
    assert b"\n".join(lines) == composed.message.replace(b"\r\n", b"\n")
    assert "S" in os.path.basename(files[0]).rpartition(":2,")[2]      # \Seen: the S in the Maildir flags
