"""`posthouse status` against a running server and against none; the
Prometheus endpoint: its counters move with IMAP commands, deliveries and
failed logins."""
from __future__ import annotations

import imaplib
import json
import os
import re
import time
import smtplib
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from .test_backup import Server, add_user, message, posthouse


def scrape(port: int) -> dict:
    """{(sample name, labels as sorted tuple): value}"""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_status_of_a_running_server_and_of_none(tmp_path):
    data = str(tmp_path / "data")
    add_user(data)
    nobody = posthouse("status", data_dir=data)
    assert nobody.returncode == 1
    assert nobody.stderr.decode().strip() == f"posthouse: no server is running on {data}"

    server = Server(tmp_path, data)
    try:
        with smtplib.LMTP("127.0.0.1", server.lmtp_port, timeout=30) as lmtp:
            lmtp.sendmail("load@example.com", ["alice@example.com"], message(1))
        imap = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
        imap.login("alice", "pw-secret")
        try:
            shown = posthouse("status", config=server.config)
            assert shown.returncode == 0, shown.stderr
            lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in shown.stdout.decode().splitlines())
            assert lines["sessions imap"] == "1", shown.stdout
            assert lines["sessions pop3"] == "0"
            assert lines["store"].startswith("1 messages, 1 users, ")
            assert lines["outbound queue"] == "0"
            assert lines["data directory"] == data
            doc = json.loads(posthouse("status", "--json", config=server.config).stdout)
            assert doc["pid"] == server.proc.pid
            assert doc["sessions"]["imap"] == 1 and doc["store"]["messages"] == 1
            assert doc["journal"]["enabled"] and doc["journal"]["backlog"] == 0
            assert doc["store"]["bytes"] > 0 and doc["uptime"] >= 0
        finally:
            imap.logout()
        assert os.stat(os.path.join(data, "admin.sock")).st_mode & 0o777 == 0o600
    finally:
        server.stop()
    gone = posthouse("status", data_dir=data)
    assert gone.returncode == 1 and b"no server is running" in gone.stderr


def test_metrics_endpoint_counts_commands_deliveries_and_failed_logins(tmp_path):
    data = str(tmp_path / "data")
    add_user(data)
    # One process: with several workers the metrics are worker 0's own (its
    # sessions' commands only), and a connection may land on another worker.
    server = Server(tmp_path, data, metrics=True, workers=1)
    try:
        before = scrape(server.metrics_port)
        # (the start-up check's own IMAP session ends when the server has seen it close)
        deadline = time.monotonic() + 10
        while before[("posthouse_sessions", (("protocol", "imap"),))] and time.monotonic() < deadline:
            time.sleep(0.05)
            before = scrape(server.metrics_port)
        assert before[("posthouse_sessions", (("protocol", "imap"),))] == 0
        assert before[("posthouse_queue_length", ())] == 0

        imap = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
        imap.login("alice", "pw-secret")
        imap.noop()
        imap.select("INBOX")
        imaplib.Commands.setdefault("MADEUP", ("SELECTED",))
        try:
            imap._simple_command("MADEUP")      # a name of the client's own: counted as "other"
        except imaplib.IMAP4.error:
            pass
        finally:
            del imaplib.Commands["MADEUP"]
        during = scrape(server.metrics_port)
        assert during[("posthouse_sessions", (("protocol", "imap"),))] == 1
        imap.logout()
        with smtplib.LMTP("127.0.0.1", server.lmtp_port, timeout=30) as lmtp:
            lmtp.sendmail("load@example.com", ["alice@example.com"], message(1))
            refused = lmtp.sendmail("load@example.com", ["alice@example.com", "nobody@example.com"], message(2))
            assert list(refused) == ["nobody@example.com"]
        wrong = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
        try:
            wrong.login("alice", "not-the-password")
        except imaplib.IMAP4.error:
            pass
        wrong.logout()

        after = scrape(server.metrics_port)
        def moved(name, labels=()):
            return after.get((name, labels), 0) - before.get((name, labels), 0)
        assert moved("posthouse_imap_command_seconds_count", (("command", "NOOP"),)) == 1
        assert moved("posthouse_imap_command_seconds_count", (("command", "SELECT"),)) == 1
        assert moved("posthouse_imap_command_seconds_count", (("command", "LOGIN"),)) == 2
        assert after[("posthouse_imap_command_seconds_bucket", (("command", "NOOP"), ("le", "+Inf")))] == 1
        assert moved("posthouse_imap_command_seconds_count", (("command", "other"),)) == 1
        assert moved("posthouse_deliveries_total", (("result", "delivered"),)) == 2
        assert moved("posthouse_auth_failures_total") == 1
        # Calls that leave the event loop (quick reads from memory are not timed).
        assert moved("posthouse_store_call_seconds_count", (("method", "load_index"),)) == 1      # the SELECT
        assert moved("posthouse_store_call_seconds_count", (("method", "file_arrivals"),)) >= 1
        # The sessions are gone once the server has seen the connections close.
        deadline = time.monotonic() + 10
        while scrape(server.metrics_port)[("posthouse_sessions", (("protocol", "imap"),))] and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert scrape(server.metrics_port)[("posthouse_sessions", (("protocol", "imap"),))] == 0
        assert after[("posthouse_uptime_seconds", ())] > 0
    finally:
        server.stop()
