from __future__ import annotations

import subprocess
import sys

import pytest

from posthouse.auth.passwords import hash_password, verify_password
from posthouse.config import Config
from posthouse.imap.args import format_uid_set, parse_sequence_set
from posthouse.imap.protocol.tokens import ParseError


def test_password_hash():
    h = hash_password("correct horse")
    assert h.startswith("$scrypt$") and "correct" not in h
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "wrong")
    assert not verify_password("garbage", "x") and not verify_password("$scrypt$ln=99,r=1,p=1$a$b", "x")


def test_sequence_sets():
    assert parse_sequence_set("1:3,7,9:*").resolve(10) == [(1, 3), (7, 7), (9, 10)]
    assert parse_sequence_set("*:4").resolve(2) == [(2, 4)]
    for bad in ("", "0", "1:", "a", "1,,2", "4294967296"):
        with pytest.raises(ParseError):
            parse_sequence_set(bad)
    assert format_uid_set([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"


def test_config_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('data_dir = "/x"\nmax_message_size = 1000\n[imap]\nport = 143\ntls_port = 993\n'
                    '[tls]\ncert = "c.pem"\nkey = "k.pem"\n')
    cfg = Config.load(str(path))
    assert (cfg.data_dir, cfg.imap_port, cfg.imap_tls_port, cfg.tls_cert, cfg.max_message_size) == (
        "/x", 143, 993, "c.pem", 1000)
    assert (cfg.lmtp_host, cfg.lmtp_port, cfg.lmtp_socket, cfg.recipient_delimiter) == ("127.0.0.1", 2424, None, "+")
    path.write_text('[lmtp]\nport = false\nsocket = "/run/p/lmtp"\n')
    cfg = Config.load(str(path))
    assert (cfg.lmtp_port, cfg.lmtp_socket) == (None, "/run/p/lmtp")
    path.write_text("bogus_key = 1\n")
    with pytest.raises(ValueError, match="unknown key bogus_key"):
        Config.load(str(path))


def test_recipient_candidates():
    from posthouse.delivery.recipients import candidates
    assert candidates("<Alice+lists@Example.com>") == [
        ("Alice+lists@Example.com", None), ("Alice+lists", None),
        ("Alice@Example.com", "lists"), ("Alice", "lists")]
    assert candidates("bob") == [("bob", None)]
    assert candidates("bob+x", delimiter="") == [("bob+x", None)]
    assert candidates("+x@d") == [("+x@d", None), ("+x", None)]        # no base name: no subaddress
    assert candidates("") == []


def run_cli(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "posthouse", *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


def test_cli_users(tmp_path):
    d = str(tmp_path / "data")
    assert run_cli("--data-dir", d, "user", "add", "carol", "--password-stdin", stdin="pw1\n").returncode == 0
    r = run_cli("--data-dir", d, "user", "add", "carol", "--password-stdin", stdin="pw1\n")
    assert r.returncode == 1 and "exists" in r.stderr
    assert run_cli("--data-dir", d, "user", "list").stdout.split() == ["carol"]
    assert run_cli("--data-dir", d, "user", "passwd", "carol", "--password-stdin", stdin="pw2\n").returncode == 0
    from posthouse.store.sqlite.backend import SQLiteStore
    store = SQLiteStore(d, fsync=False)
    user = store.get_user("carol")
    assert verify_password(user.password_hash, "pw2")
    boxes = {b.name: b.special_use for b in store.list_mailboxes(user.id)}
    assert boxes == {"INBOX": None, "Drafts": "\\Drafts", "Sent": "\\Sent", "Trash": "\\Trash",
                     "Junk": "\\Junk", "Archive": "\\Archive"}
    store.close()
    assert run_cli("--data-dir", d, "user", "del", "carol").returncode == 0
    assert run_cli("--data-dir", d, "user", "list").stdout.split() == []
    assert run_cli("--data-dir", d, "user", "del", "carol").returncode == 1
    assert run_cli("--data-dir", d, "user", "add", "x", "--password-stdin", stdin="\n").returncode != 0


def test_trace_headers_keep_client_words_on_their_line():
    from posthouse.delivery.deliver import trace_headers
    out = trace_headers("evil@x\r\nBcc: victim@y", "helo\r\nX-Injected: 1", "127.0.0.1", "mx.test", "LMTP", "abc")
    lines = out.split(b"\r\n")
    assert lines[0] == b"Return-Path: <evil@xBcc: victim@y>"
    assert lines[1] == b"Received: from heloX-Injected: 1 (127.0.0.1)"
    assert not any(line.startswith((b"Bcc", b"X-Injected")) for line in lines)
    assert trace_headers("<>", None, "p", "h", "LMTP", "i").startswith(b"Return-Path: <>\r\n")


def test_sizes_and_quota_config(tmp_path):
    from posthouse.config import parse_size
    assert [parse_size(v) for v in (0, "512", "500K", "20M", "2G", " 1gb ")] == [
        0, 512, 500 * 1024, 20 << 20, 2 << 30, 1 << 30]
    for bad_value in ("-1", "1.5G", "G", "10X", True, -5, ""):
        with pytest.raises(ValueError):
            parse_size(bad_value)
    path = tmp_path / "c.toml"
    path.write_text('[quota]\nstorage = "1G"\nmessages = 1000\nfull_tempfail = true\n')
    cfg = Config.load(str(path))
    assert (cfg.quota_storage, cfg.quota_messages, cfg.quota_full_tempfail) == (1 << 30, 1000, True)
    path.write_text('[quota]\nmessages = "many"\n')
    with pytest.raises(ValueError):
        Config.load(str(path))


def test_vanished_ranges_when_history_is_forgotten_match_a_brute_force_answer():
    """What QRESYNC names when the expunge history is forgotten: every UID up to
    the largest that no message has, within the client's UID set."""
    import random
    from posthouse.imap.commands.resync import _intersect, _merged, _missing_spans
    rng = random.Random(5)
    for _ in range(2000):
        largest = rng.randint(0, 60)
        present = sorted(rng.sample(range(1, largest + 1), rng.randint(0, largest))) if largest else []
        wanted = [tuple(sorted((rng.randint(1, 70), rng.randint(1, 70)))) for _ in range(rng.randint(1, 4))]
        got = _intersect(_missing_spans(present, largest), _merged(wanted))
        expected = [u for u in range(1, largest + 1)
                    if u not in present and any(lo <= u <= hi for lo, hi in wanted)]
        assert [u for lo, hi in got for u in range(lo, hi + 1)] == expected, (present, largest, wanted)
        assert all(a[1] + 1 < b[0] for a, b in zip(got, got[1:])) or len(got) < 2   # disjoint, ascending
