"""New mail to activity: from the provider's LMTP 250 to the activity readable
in the REST API, with Posthouse (NOTIFY push) and Dovecot (IDLE) as the provider.

    python3 bench/tracker_latency.py                  # 500 messages per provider
    python3 bench/tracker_latency.py --messages 100 --only posthouse

For each provider: a private server on 127.0.0.1 (servers.py), a Posthouse
with its web API on (`posthouse serve`, [web] port) holding the CRM database,
the account added with `posthouse account add` (--local on Posthouse: the
tracker logs in with the service identity; a password account on Dovecot),
a contact made with `posthouse contact add` for the sender's address, a
token from `posthouse token create`, and one tracker process
(tracker_runner.py) on that data directory. Once the tracker follows the
account, M messages from the contact are delivered over LMTP one at a time;
for each, the time from the LMTP 250 to the activity (its subject) in
`GET /api/v1/contacts/{id}/activities`, polled every few milliseconds over
one keep-alive HTTP connection. Prints p50, p90, p99 and the worst, beside
the goal (p99 under 1 s).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lmtp_client import LmtpClient                                              # noqa: E402
from servers import HOST, PASSWORD, DovecotServer, PosthouseServer, ensure_dovecot, wait_port   # noqa: E402
from tracker_common import percentile, runner, wait_status                     # noqa: E402

USER = "bench1"
SENDER = "ann.sender@latency.example"
GOAL_P99 = 1.0


def posthouse_cli(config: str, *argv: str, stdin: str | None = None) -> str:
    r = subprocess.run([sys.executable, "-m", "posthouse", "--config", config, *argv], input=stdin,
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"posthouse {' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def message(i: int, run: str) -> tuple[str, bytes]:
    subject = f"latency {run} {i}"
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    body = (f"From: Ann Sender <{SENDER}>\r\nTo: {USER}@bench.example\r\nSubject: {subject}\r\n"
            f"Date: {date}\r\nMessage-ID: <{run}.{i}@latency.example>\r\n\r\n"
            f"Hello, this is message {i} of the latency run.\r\n")
    return subject, body.encode()


async def measure(lmtp_port: int, web_port: int, token: str, contact_id: int, count: int,
                  timeout: float, poll: float) -> tuple[list[float], int]:
    import httpx
    run = uuid.uuid4().hex[:8]
    latencies, missed = [], 0
    url = f"http://{HOST}:{web_port}/api/v1/contacts/{contact_id}/activities"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        lmtp = await LmtpClient.connect(HOST, lmtp_port)
        try:
            for i in range(count):
                subject, data = message(i, run)
                await lmtp.deliver(SENDER, [USER], data)
                t0 = time.monotonic()       # the 250 for the recipient just came
                while True:
                    r = await http.get(url, params={"limit": 20})
                    r.raise_for_status()
                    if any(a.get("subject") == subject for a in r.json()):
                        latencies.append(time.monotonic() - t0)
                        break
                    if time.monotonic() - t0 > timeout:
                        missed += 1
                        break
                    await asyncio.sleep(poll)
        finally:
            await lmtp.quit()
    return latencies, missed


def run_provider(kind: str, work: str, args) -> dict:
    """One provider's run; everything started is stopped before it returns."""
    servers, tracker = [], None
    try:
        web = PosthouseServer(os.path.join(work, kind), [USER], web=True,
                              mailboxes=[("INBOX", None), ("Sent", "\\Sent")])
        servers.append(web)
        # The web API starts after the mail listeners and makes the CRM database's
        # tables: no other process may open the database before (two first
        # migrations at once: one fails with "table alembic_version already exists").
        wait_port(web.web_port, web.proc)
        config = web.config_path
        if kind == "posthouse":
            provider = web
            posthouse_cli(config, "account", "add", USER, "--local")
            extra = []
        else:
            provider = DovecotServer(os.path.join(work, kind), [USER], max_sessions=20)
            servers.append(provider)
            posthouse_cli(config, "account", "add", USER, "--imap", f"{HOST}:{provider.port}", "--tls", "none",
                          "--login", USER, "--password-stdin", "--since", "all", stdin=PASSWORD + "\n")
            extra = ["--no-notify"]     # Dovecot as an IDLE provider (what most servers offer)
        out = posthouse_cli(config, "contact", "add", "--name", "Ann Sender", "--email", SENDER)
        token = posthouse_cli(config, "token", "create", USER).strip()
        status_path = os.path.join(work, f"{kind}-status.json")
        tracker = runner(None, os.path.join(work, f"{kind}-tracker.log"), "--status", status_path,
                         "--poll-interval", "1", *extra, config=config)
        wait_status(status_path, tracker, lambda s: s.get("synced"), args.timeout, "the first sync")
        import httpx
        found = httpx.get(f"http://{HOST}:{web.web_port}/api/v1/contacts", params={"email": SENDER},
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
        found.raise_for_status()
        contacts = found.json()
        if not contacts:
            raise SystemExit(f"no contact for {SENDER} in the API (contact add said: {out!r})")
        latencies, missed = asyncio.run(asyncio.wait_for(
            measure(provider.lmtp_port, web.web_port, token, contacts[0]["id"], args.messages,
                    args.sample_timeout, args.poll),
            args.messages * (args.sample_timeout + 5) + 60))
        return {"latencies": latencies, "missed": missed, "rss_kib": tracker_rss(tracker.pid)}
    finally:
        if tracker is not None:
            tracker.terminate()
            tracker.kill()
        for server in reversed(servers):
            server.stop()


def tracker_rss(pid: int) -> int:
    from tracker_common import rss_kib
    try:
        return rss_kib(pid)
    except OSError:
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=500, help="messages (samples) per provider")
    ap.add_argument("--only", choices=["posthouse", "dovecot"], help="one provider")
    ap.add_argument("--poll", type=float, default=0.005, help="seconds between API reads while waiting")
    ap.add_argument("--sample-timeout", type=float, default=30, help="a message not seen by then is missed")
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed for the first sync")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    kinds = [args.only] if args.only else ["posthouse", "dovecot"]
    if "dovecot" in kinds:
        ensure_dovecot()
    work = tempfile.mkdtemp(prefix="posthouse-tracker-latency-")
    os.chmod(work, 0o755)
    results = {}
    try:
        for kind in kinds:
            results[kind] = run_provider(kind, work, args)
            r = results[kind]
            print(f"{kind}: {len(r['latencies'])} samples, {r['missed']} missed", flush=True)
    finally:
        if args.keep:
            print("work directory:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    push = {"posthouse": "NOTIFY", "dovecot": "IDLE"}
    print(f"\nnew mail to activity in the API, {args.messages} messages one at a time "
          f"(LMTP 250 -> GET /api/v1/contacts/ID/activities; goal p99 < {GOAL_P99:.0f} s)")
    failed = False
    for kind, r in results.items():
        lat = r["latencies"]
        if not lat:
            print(f"  {kind:9} ({push[kind]}): no sample arrived ({r['missed']} missed)")
            failed = True
            continue
        p99 = percentile(lat, 99)
        print(f"  {kind:9} ({push[kind]:6}) p50 {percentile(lat, 50) * 1000:6.0f} ms  p90 {percentile(lat, 90) * 1000:6.0f} ms"
              f"  p99 {p99 * 1000:6.0f} ms  max {max(lat) * 1000:6.0f} ms  missed {r['missed']}"
              f"  -> p99 {'under' if p99 < GOAL_P99 else 'OVER'} the goal ({p99 / GOAL_P99:.2f}x of 1 s)"
              f"  tracker RSS {r['rss_kib'] / 1024:.0f} MiB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
