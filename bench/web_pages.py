"""The web app's pages under load: the message list of a 100,000-message folder
and a contact page with 5,000 activities, p50 and p99 under 20 concurrent users.

    python3 bench/web_pages.py                                  # full size
    python3 bench/web_pages.py --messages 2000 --activities 200 --duration 5

A private `posthouse serve` on 127.0.0.1 (IMAP, web; tracker off, fsync off):
user `bench` gets N small messages in INBOX by `posthouse import` of a
generated mbox (distinct subjects and senders), their Posthouse mailbox
connected (`posthouse account add bench --local`), a contact made with
`posthouse contact add` and M messages from that contact applied to the CRM
as the tracker would (Crm.apply of MessageSeen facts, in batches). Then, for
each page, 20 client tasks (one HTTP/1.1 keep-alive connection each, logged
in as bench) each keep one request in flight for --duration seconds; the
response time of each request (sent to last byte, as seen on loopback by the
client: an upper bound of the server's time) gives p50, p90, p99 and the worst.
Pages: the folder's first page, a page deep in it (page 1,000 of 2,000), and
the contact page. Prints the figures beside the goal (p99 under 300 ms).
The client runs in this process on the same cores as the server: its own
CPU share is printed too.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import HOST, free_port      # noqa: E402

USER, PASSWORD = "bench", "bench-web-pass"
DOMAIN = "bench.example"
CONTACT = "ann.contact@client.example"
GOAL_P99 = 0.300


def cli(config: str, *argv: str, stdin: str | None = None, timeout: float = 3600) -> str:
    r = subprocess.run([sys.executable, "-m", "posthouse", "--config", config, *argv], input=stdin,
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"posthouse {' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def write_mbox(path: str, count: int) -> None:
    """count small, distinct messages (about 600 bytes each), oldest first."""
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with open(path, "wb") as f:
        for i in range(count):
            when = start + timedelta(minutes=i)
            date = when.strftime("%a, %d %b %Y %H:%M:%S +0000")
            f.write(f"From sender{i % 997}@senders.example {when.strftime('%a %b %d %H:%M:%S %Y')}\n"
                    f"From: Sender {i % 997} <sender{i % 997}@senders.example>\n"
                    f"To: {USER}@{DOMAIN}\nSubject: Message number {i} about the quarterly report\n"
                    f"Date: {date}\nMessage-ID: <web-bench-{i}@senders.example>\n"
                    f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"
                    f"Hello,\n\nthis is message {i} of the web pages benchmark. The figures are attached\n"
                    f"in spirit only; the text is here to give the message a body.\n\nRegards\n\n"
                    .encode())


def apply_activities(config_path: str, contact_id: int, contact_email: str, count: int,
                     batch: int = 500) -> tuple[float, int]:
    """count messages from the contact, told to the CRM as the tracker tells it;
    (seconds taken, activities the contact has then)."""
    import hashlib
    from posthouse.config import Config
    from posthouse.crmside import open_crm_side
    from posthouse.tracker.facts import MessageSeen, Place
    side = open_crm_side(Config.load(config_path))
    t0 = time.monotonic()
    try:
        account = side.accounts.list()[0]
        start = datetime(2025, 1, 1, tzinfo=timezone.utc)
        for first in range(0, count, batch):
            facts = []
            for i in range(first, min(count, first + batch)):
                raw = (f"From: Ann Contact <{contact_email}>\r\nTo: {USER}@{DOMAIN}\r\n"
                       f"Subject: Activity {i}: about the contract\r\nMessage-ID: <act-{i}@client.example>\r\n"
                       f"Date: {(start + timedelta(hours=i)).strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
                       f"Content-Type: text/plain\r\n\r\nActivity {i}: the contract, the figures, the meeting.\r\n"
                       ).encode()
                facts.append(MessageSeen(
                    place=Place(account.id, "Archive-bench", 1, i + 1), message_id=f"act-{i}@client.example",
                    emailid=None, content_hash=hashlib.sha256(raw).hexdigest(),
                    internaldate=start + timedelta(hours=i), size=len(raw), flags=("\\Seen",), modseq=None,
                    skeleton=raw, special_use=None))
            side.crm.apply(facts)
        took = time.monotonic() - t0
        from sqlalchemy import func, select
        from posthouse.crm.tables import activities
        with side.engine.connect() as conn:
            linked = conn.execute(select(func.count()).select_from(activities)
                                  .where(activities.c.contact_id == contact_id)).scalar()
    finally:
        side.close()
    return took, linked


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


async def load(url: str, cookies: dict, path: str, users: int, duration: float, max_requests: int) -> dict:
    import httpx
    times: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + duration

    async def user() -> None:
        async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=120,
                                     limits=httpx.Limits(max_connections=1)) as client:
            while time.monotonic() < deadline and len(times) + len(errors) < max_requests:
                t0 = time.perf_counter()
                try:
                    r = await client.get(path)
                    await r.aread()
                except httpx.HTTPError as e:
                    errors.append(repr(e))
                    continue
                took = time.perf_counter() - t0
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                else:
                    times.append(took)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    await asyncio.gather(*(user() for _ in range(users)))
    wall = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"times": times, "errors": errors, "wall": wall, "client_cpu": cpu / wall if wall else 0.0}


def login(url: str) -> dict:
    import httpx
    with httpx.Client(base_url=url, timeout=60) as c:
        form = c.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)[1]
        r = c.post("/login", data={"name": USER, "password": PASSWORD, "csrf": token, "next": "/"})
        if r.status_code != 303:
            raise SystemExit(f"login failed: {r.status_code} {r.text[:300]}")
        return {"posthouse_session": c.cookies["posthouse_session"]}


def report(label: str, result: dict, users: int) -> str:
    times = result["times"]
    if not times:
        return f"{label}: no answer ({len(result['errors'])} errors: {result['errors'][:2]})"
    p50, p90, p99 = (percentile(times, p) * 1000 for p in (50, 90, 99))
    met = "met" if p99 / 1000 < GOAL_P99 else "NOT met"
    line = (f"{label}: {users} users, {len(times)} requests in {result['wall']:.1f} s "
            f"({len(times) / result['wall']:.1f}/s): p50 {p50:.0f} ms, p90 {p90:.0f} ms, p99 {p99:.0f} ms, "
            f"worst {max(times) * 1000:.0f} ms; goal p99 < {GOAL_P99 * 1000:.0f} ms: {met}; "
            f"client CPU {result['client_cpu'] * 100:.0f}% of a core")
    if result["errors"]:
        line += f"; {len(result['errors'])} errors, e.g. {result['errors'][0][:200]}"
    return line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--activities", type=int, default=5_000)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load per page")
    ap.add_argument("--max-requests", type=int, default=100_000, help="per page")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="posthouse-web-bench-")
    proc = log = None
    try:
        web_port, imap_port = free_port(), free_port()
        config = os.path.join(work, "posthouse.toml")
        with open(config, "w") as f:
            f.write(f'data_dir = "{work}/data"\nfsync = false\nlog_level = "WARNING"\ndomains = ["{DOMAIN}"]\n'
                    f'[imap]\nhost = "{HOST}"\nport = {imap_port}\ntls_port = false\n[lmtp]\nport = false\n'
                    '[smtp]\nport = false\n[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n'
                    '[submission]\nport = false\ntls_port = false\n'
                    f'[web]\nhost = "{HOST}"\nport = {web_port}\n[tracker]\nenabled = false\n'
                    '[limits]\nmax_connections = 0\nmax_connections_per_ip = 0\n')
        cli(config, "user", "add", USER, "--password-stdin", stdin=PASSWORD + "\n")
        mbox = os.path.join(work, "INBOX.mbox")
        t0 = time.monotonic()
        write_mbox(mbox, args.messages)
        cli(config, "import", USER, mbox, "--folder", "INBOX")
        print(f"filled INBOX: {args.messages:,} messages by `posthouse import` in {time.monotonic() - t0:.1f} s",
              flush=True)
        os.remove(mbox)
        log = open(os.path.join(work, "serve.log"), "w+")
        proc = subprocess.Popen([sys.executable, "-m", "posthouse", "--config", config, "serve"],
                                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            # (log_level WARNING: the port answering says it is up)
            try:
                import socket
                with socket.create_connection((HOST, web_port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("serve did not start:\n" + open(log.name).read()[-3000:])
                time.sleep(0.2)
        cli(config, "account", "add", USER, "--local")
        contact = cli(config, "contact", "add", "--name", "Ann Contact", "--email", CONTACT)
        contact_id = int(re.search(r'"id":\s*(\d+)', contact)[1])
        took, linked = apply_activities(config, contact_id, CONTACT, args.activities)
        print(f"contact {contact_id}: {args.activities:,} messages applied to the CRM in {took:.1f} s; "
              f"the contact has {linked:,} activities", flush=True)
        url = f"http://{HOST}:{web_port}"
        cookies = login(url)
        deep = max(1, min(1000, -(-args.messages // 50) // 2))
        pages = [(f"message list, {args.messages:,}-message folder, page 1", "/mail/1?folder=INBOX"),
                 (f"message list, {args.messages:,}-message folder, page {deep:,}", f"/mail/1?folder=INBOX&page={deep}"),
                 (f"contact page, {args.activities:,} activities", f"/contacts/{contact_id}")]
        print(f"load: {args.users} concurrent users (one request in flight each), {args.duration:.0f} s per page",
              flush=True)
        for label, path in pages:
            warm = asyncio.run(load(url, cookies, path, 1, 60, 2))        # (first answers: caches warm)
            if not warm["times"]:
                raise SystemExit(f"{label}: {path} fails: {warm['errors'][:2]}")
            result = asyncio.run(load(url, cookies, path, args.users, args.duration, args.max_requests))
            print(report(label, result, args.users), flush=True)
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log is not None:
            log.close()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
