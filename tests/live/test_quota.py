"""QUOTA (RFC 9208) on every path that adds mail: APPEND (and MULTIAPPEND),
COPY, MOVE and LMTP delivery; refusals change nothing, removals always work."""
from __future__ import annotations

import smtplib

import pytest

from posthouse.cli import main as cli_main


def msg(n: int, size: int = 1000) -> bytes:
    head = f"From: a@example.org\r\nSubject: quota {n}\r\nMessage-ID: <q{n}@example.org>\r\n\r\n".encode()
    body = (b"x" * 78 + b"\r\n") * (size // 80)
    return head + body[:size - len(head) - 2] + b"\r\n"


@pytest.fixture
def limited(server, user):
    """A user allowed 10 KiB and 3 messages."""
    server.call(server.ctx.service.call("set_quota", user[0], 10 * 1024, 3))
    return user


def append(raw, n, size=1000, mailbox="INBOX"):
    data = msg(n, size)
    raw.send(f"A{n} APPEND {mailbox} {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    return raw.read_until_tag(f"A{n}")


def status(raw, mailbox="INBOX"):
    lines = raw.cmd("S", f"STATUS {mailbox} (MESSAGES UIDNEXT SIZE)")
    return lines[0]


def quota(raw):
    lines = raw.cmd("Q", "GETQUOTA \"\"")
    assert lines[-1].startswith(b"Q OK")
    return lines[0]


def test_capabilities_and_no_limits(raw):
    caps = raw.cmd("C", "CAPABILITY")[0]
    for cap in (b"QUOTA", b"QUOTA=RES-STORAGE", b"QUOTA=RES-MESSAGE"):
        assert b" " + cap + b" " in caps or caps.rstrip().endswith(b" " + cap)
    assert b"QUOTASET" not in caps
    lines = raw.cmd("R", "GETQUOTAROOT INBOX")
    assert lines[0] == b'* QUOTAROOT INBOX ""\r\n'
    assert lines[1] == b'* QUOTA "" ()\r\n'
    assert lines[-1].startswith(b"R OK")


def test_getquota_reports_usage_and_limits(server, raw, limited):
    assert append(raw, 1)[-1].startswith(b"A1 OK")
    assert append(raw, 2, 1500)[-1].startswith(b"A2 OK")
    assert quota(raw) == b'* QUOTA "" (STORAGE 3 10 MESSAGE 2 3)\r\n'
    lines = raw.cmd("R", "GETQUOTAROOT Sent")
    assert lines[0] == b'* QUOTAROOT Sent ""\r\n' and lines[1].startswith(b'* QUOTA "" (STORAGE 3 10')


def test_bad_roots_and_setquota(raw):
    assert raw.cmd("G", 'GETQUOTA "User quota"')[-1].startswith(b"G NO [NONEXISTENT]")
    assert raw.cmd("R", "GETQUOTAROOT Nowhere")[-1].startswith(b"R NO [NONEXISTENT]")
    assert raw.cmd("S", 'SETQUOTA "" (STORAGE 1)')[-1].startswith(b"S NO [NOPERM]")
    assert raw.cmd("B", "GETQUOTA")[-1].startswith(b"B BAD")


def test_append_over_quota_changes_nothing(raw, limited):
    assert append(raw, 1)[-1].startswith(b"A1 OK")
    before = status(raw)
    assert append(raw, 2, 12000)[-1].startswith(b"A2 NO [OVERQUOTA]")
    # MULTIAPPEND: the second message doesn't fit, so neither is added.
    a, b = msg(3, 4000), msg(4, 6000)
    raw.send(f"M APPEND INBOX {{{len(a)}+}}\r\n".encode() + a + f" {{{len(b)}+}}\r\n".encode() + b + b"\r\n")
    assert raw.read_until_tag("M")[-1].startswith(b"M NO [OVERQUOTA]")
    assert status(raw) == before
    assert quota(raw) == b'* QUOTA "" (STORAGE 1 10 MESSAGE 1 3)\r\n'


def test_message_count_limit_copy_and_move(raw, limited):
    for n in (1, 2):
        assert append(raw, n)[-1].startswith(b"A%d OK" % n)
    raw.cmd("S", "SELECT INBOX")
    before = status(raw, "Archive")
    assert raw.cmd("C", "COPY 1:2 Archive")[-1].startswith(b"C NO [OVERQUOTA]")
    assert status(raw, "Archive") == before
    # A move takes nothing more: allowed at the limit.
    assert raw.cmd("C", "COPY 1 Archive")[-1].startswith(b"C OK")
    assert raw.cmd("M", "MOVE 1:2 Trash")[-1].startswith(b"M OK")
    assert quota(raw) == b'* QUOTA "" (STORAGE 3 10 MESSAGE 3 3)\r\n'
    assert append(raw, 5)[-1].startswith(b"A5 NO [OVERQUOTA]")
    # Expunging always works, over quota or not, and frees room.
    raw.cmd("T", "SELECT Trash")
    assert raw.cmd("D", "STORE 1 +FLAGS (\\Deleted)")[-1].startswith(b"D OK")
    lines = raw.cmd("U", "STATUS Trash (DELETED DELETED-STORAGE)")
    assert lines[0] == b"* STATUS Trash (DELETED 1 DELETED-STORAGE 1)\r\n"
    assert raw.cmd("E", "EXPUNGE")[-1].startswith(b"E OK")
    assert quota(raw) == b'* QUOTA "" (STORAGE 2 10 MESSAGE 2 3)\r\n'
    assert append(raw, 6)[-1].startswith(b"A6 OK")


def test_deleting_a_mailbox_frees_its_usage(raw, limited):
    assert raw.cmd("C", "CREATE Full")[-1].startswith(b"C OK")
    for n in (1, 2, 3):
        assert append(raw, n, mailbox="Full")[-1].startswith(b"A%d OK" % n)
    assert append(raw, 4)[-1].startswith(b"A4 NO [OVERQUOTA]")
    assert raw.cmd("D", "DELETE Full")[-1].startswith(b"D OK")
    assert quota(raw) == b'* QUOTA "" (STORAGE 0 10 MESSAGE 0 3)\r\n'


def test_lmtp_refuses_a_full_mailbox_per_recipient(server, raw, limited):
    other = server.add_user()
    for n in (1, 2, 3):
        assert append(raw, n)[-1].startswith(b"A%d OK" % n)
    with smtplib.LMTP(server.host, server.lmtp_port, timeout=10) as lmtp:
        lmtp.ehlo_or_helo_if_needed = lambda: None
        assert lmtp.docmd("LHLO", "client.test")[0] == 250
        assert lmtp.docmd("MAIL", "FROM:<s@example.org>")[0] == 250
        code, text = lmtp.docmd("RCPT", f"TO:<{limited[0]}@example.com>")
        assert (code, text[:5]) == (552, b"5.2.2")
        assert lmtp.docmd("RCPT", f"TO:<{other[0]}@example.com>")[0] == 250
        assert lmtp.docmd("RSET")[0] == 250


def test_lmtp_message_too_big_for_what_is_left(server, raw, limited):
    """RCPT can't know the size (no SIZE=): the refusal comes after DATA, for that
    recipient only."""
    other = server.add_user()
    assert append(raw, 1, 9000)[-1].startswith(b"A1 OK")
    with smtplib.LMTP(server.host, server.lmtp_port, timeout=10) as lmtp:
        lmtp.ehlo_or_helo_if_needed = lambda: None
        assert lmtp.docmd("LHLO", "client.test")[0] == 250
        assert lmtp.docmd("MAIL", "FROM:<s@example.org>")[0] == 250
        assert lmtp.docmd("RCPT", f"TO:<{limited[0]}>")[0] == 250
        assert lmtp.docmd("RCPT", f"TO:<{other[0]}>")[0] == 250
        assert lmtp.docmd("DATA")[0] == 354
        lmtp.send(msg(9, 3000) + b".\r\n")
        first, second = lmtp.getreply(), lmtp.getreply()
        assert first[0] == 552 and first[1].startswith(b"5.2.2")
        assert second[0] == 250
        # SIZE= lets RCPT refuse before any transfer.
        assert lmtp.docmd("MAIL", "FROM:<s@example.org> SIZE=3000")[0] == 250
        assert lmtp.docmd("RCPT", f"TO:<{limited[0]}>")[0] == 552
    assert quota(raw) == b'* QUOTA "" (STORAGE 9 10 MESSAGE 1 3)\r\n'



@pytest.fixture
def cli_user(tmp_path, monkeypatch):
    import io
    data = str(tmp_path / "data")
    monkeypatch.setattr("sys.stdin", io.StringIO("secret\n"))
    assert cli_main(["--data-dir", data, "user", "add", "carol", "--password-stdin"]) == 0
    return data


def test_cli_quota(cli_user, capsys):
    capsys.readouterr()
    assert cli_main(["--data-dir", cli_user, "quota", "set", "carol", "--storage", "2M", "--messages", "100"]) == 0
    assert "storage 0 of 2097152 bytes, messages 0 of 100" in capsys.readouterr().out
    assert cli_main(["--data-dir", cli_user, "quota", "set", "carol", "--storage", "none"]) == 0
    assert "storage 0 of unlimited bytes, messages 0 of 100" in capsys.readouterr().out
    assert cli_main(["--data-dir", cli_user, "quota", "set", "carol", "--storage", "lots"]) == 2
    assert cli_main(["--data-dir", cli_user, "quota", "set", "nobody", "--messages", "1"]) == 1
    assert cli_main(["--data-dir", cli_user, "quota", "show", "carol"]) == 0


def test_smtp_checks_everyone_before_storing(server, raw, limited):
    """One reply for the whole message: if one recipient can't take it, nobody
    gets it yet (452), so nobody gets it twice when the sender retries."""
    other = server.add_user()
    assert append(raw, 1, 9000)[-1].startswith(b"A1 OK")
    with smtplib.SMTP(server.host, server.smtp_port, timeout=10) as smtp:
        smtp.ehlo("client.test")
        smtp.mail("s@example.org")
        assert smtp.rcpt(f"{limited[0]}@example.com")[0] == 250
        assert smtp.rcpt(f"{other[0]}@example.com")[0] == 250
        code, text = smtp.data(msg(9, 3000))
        assert (code, text[:5]) == (452, b"4.2.2")
        smtp.rset()
        smtp.mail("s@example.org")
        assert smtp.rcpt(f"{limited[0]}@example.com")[0] == 250
        code, text = smtp.data(msg(10, 3000))
        assert (code, text[:5]) == (552, b"5.2.2")
    with smtplib.SMTP(server.host, server.smtp_port, timeout=10) as smtp:
        assert smtp.sendmail("s@example.org", [f"{other[0]}@example.com"], msg(11, 3000)) == {}
    assert quota(raw) == b'* QUOTA "" (STORAGE 9 10 MESSAGE 1 3)\r\n'


def test_submission_to_a_full_local_mailbox(server, raw, limited):
    sender = server.add_user()
    for n in (1, 2, 3):
        assert append(raw, n)[-1].startswith(b"A%d OK" % n)
    with smtplib.SMTP(server.host, server.submission_port, timeout=10) as s:
        s.login(*sender)
        s.mail(f"{sender[0]}@example.com")
        code, text = s.rcpt(f"{limited[0]}@example.com")
        assert (code, text[:5]) == (552, b"5.2.2")
    assert quota(raw) == b'* QUOTA "" (STORAGE 3 10 MESSAGE 3 3)\r\n'
