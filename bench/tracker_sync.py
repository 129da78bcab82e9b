"""Initial sync of a big mailbox from Dovecot: the tracker beside mbsync.

    python3 bench/tracker_sync.py                     # 100,000 messages
    python3 bench/tracker_sync.py --messages 10000    # a shorter run

Generates an mbox with ../shared/tools/gen_mbox.py, fills a private Dovecot
(servers.py) with `doveadm import`, then, in the same run, against the same
mailbox:
- mbsync (Debian's isync) pulls INBOX into a Maildir (a fresh one, no state);
- the tracker (bench/tracker_runner.py, a child process: the real
  AccountStore with the Dovecot account as a password account, since=all,
  the real Crm sink and reply sorter on a temporary SQLite CRM database)
  runs until its status says every folder's backfill is done.
Each is timed as a whole process, its peak memory is the child's ru_maxrss
(os.wait4). Prints messages per second, peak memory, the ratios, and the
rows the CRM database holds at the end (messages and places: N each).
"""
from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import HOST, PASSWORD, DovecotServer, _mail_user, ensure_dovecot   # noqa: E402
from tracker_common import GEN_MBOX, Child, account_store, crm_counts, runner   # noqa: E402

USER = "bench1"


def fill_dovecot(work: str, messages: int, mbox_path: str | None) -> tuple[DovecotServer, int]:
    mbox_dir = os.path.join(work, "mbox")
    os.makedirs(mbox_dir)
    mbox = os.path.join(mbox_dir, "inbox")
    if mbox_path:
        shutil.copyfile(mbox_path, mbox)
    else:
        t0 = time.monotonic()
        subprocess.run([sys.executable, GEN_MBOX, mbox, str(messages)], check=True, stdout=subprocess.DEVNULL)
        print(f"generated {messages} messages ({os.path.getsize(mbox) / 1e6:.0f} MB) in {time.monotonic() - t0:.0f}s",
              flush=True)
    dovecot = DovecotServer(work, [USER], max_sessions=10)
    pw = pwd.getpwnam(_mail_user())
    for path in (mbox_dir, mbox):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    t0 = time.monotonic()
    r = subprocess.run(["doveadm", "-c", dovecot.config_path, "import", "-u", USER,
                        f"mbox:{mbox_dir}:INBOX={mbox}", "", "all"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"doveadm import failed: {r.stdout}{r.stderr}")
    out = subprocess.run(["doveadm", "-c", dovecot.config_path, "-f", "flow", "mailbox", "status",
                          "-u", USER, "messages", "INBOX"], capture_output=True, text=True).stdout
    count = int(out.split("=")[1])
    print(f"doveadm import: {count} messages in {time.monotonic() - t0:.0f}s", flush=True)
    os.remove(mbox)
    return dovecot, count


def run_mbsync(work: str, dovecot: DovecotServer, timeout: float) -> dict:
    maildir = os.path.join(work, "maildir")
    os.makedirs(maildir)
    rc = os.path.join(work, "mbsyncrc")
    with open(rc, "w") as f:
        f.write(f"IMAPAccount bench\nHost {HOST}\nPort {dovecot.port}\nUser {USER}\nPass {PASSWORD}\n"
                f"SSLType None\nAuthMechs LOGIN\n\n"
                f"IMAPStore remote\nAccount bench\n\n"
                f"MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\n\n"
                f"Channel pull\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync Pull\n"
                f"SyncState *\n")
    child = Child(["mbsync", "-c", rc, "-q", "pull"], os.path.join(work, "mbsync.log"))
    try:
        code, peak, seconds = child.wait(timeout)
    finally:
        child.kill()
    if code != 0:
        raise SystemExit(f"mbsync failed ({code}):\n{child.log_tail()}")
    files = sum(len(os.listdir(os.path.join(maildir, "INBOX", sub))) for sub in ("cur", "new"))
    return {"seconds": seconds, "peak_kib": peak, "messages": files}


def run_tracker(work: str, dovecot: DovecotServer, timeout: float, batch_size: int, sink: str = "crm") -> dict:
    data_dir = os.path.join(work, "tracker" if sink == "crm" else f"tracker-{sink}")
    os.makedirs(data_dir)
    engine, store = account_store(data_dir)
    store.add(owner=USER, kind="imap", imap_host=HOST, imap_port=dovecot.port, imap_tls="none",
              login=USER, auth="password", secret={"password": PASSWORD}, since=None,
              addresses=[f"{USER}@bench.example"])
    engine.dispose()
    extra = ["--until-synced", "--timeout", str(timeout), "--sink", sink]
    if batch_size:
        extra += ["--batch-size", str(batch_size)]
    child = runner(data_dir, os.path.join(work, f"tracker-{sink}.log"), *extra)
    try:
        code, peak, seconds = child.wait(timeout + 60)
    finally:
        child.kill()        # (nothing left when it exited by itself)
    result = child.last_json()
    if code != 0 or not result.get("synced"):
        raise SystemExit(f"the tracker did not finish ({code}, {result}):\n{child.log_tail()}")
    return {"seconds": seconds, "sync_seconds": result["seconds"], "peak_kib": peak, **crm_counts(data_dir)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--mbox", help="use this mbox instead of generating one")
    ap.add_argument("--batch-size", type=int, default=0, help="the tracker's FETCH batch (0: its default)")
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds allowed for each sync")
    ap.add_argument("--tracker-first", action="store_true", help="run the tracker before mbsync")
    ap.add_argument("--null-sink", action="store_true",
                    help="also run the tracker with a sink that drops the facts (its cost without the CRM), "
                         "and with the CRM but no reply sorter")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    ensure_dovecot()
    if not shutil.which("mbsync"):
        raise SystemExit("mbsync is not installed: apt-get install isync")
    work = tempfile.mkdtemp(prefix="posthouse-tracker-sync-")
    os.chmod(work, 0o755)       # Dovecot's mail user reads the mbox
    dovecot = None
    try:
        dovecot, count = fill_dovecot(work, args.messages, args.mbox)
        steps = [("mbsync", lambda: run_mbsync(work, dovecot, args.timeout)),
                 ("tracker", lambda: run_tracker(work, dovecot, args.timeout, args.batch_size))]
        if args.tracker_first:
            steps.reverse()
        if args.null_sink:
            steps.append(("tracker, null sink",
                          lambda: run_tracker(work, dovecot, args.timeout, args.batch_size, "null")))
            steps.append(("tracker, CRM without the reply sorter",
                          lambda: run_tracker(work, dovecot, args.timeout, args.batch_size, "crm-noclassify")))
        results = {}
        for name, step in steps:
            results[name] = step()
            r = results[name]
            print(f"{name}: {r['seconds']:.1f}s  {count / r['seconds']:.0f} msg/s  peak RSS {r['peak_kib'] / 1024:.0f} MiB",
                  flush=True)
        t, m = results["tracker"], results["mbsync"]
        print(f"\ninitial sync of {count} messages from Dovecot (order: {', then '.join(n for n, _ in steps)})")
        print(f"  tracker  {t['seconds']:8.1f} s  {count / t['seconds']:7.0f} msg/s  peak RSS {t['peak_kib'] / 1024:6.1f} MiB"
              f"  (synced after {t['sync_seconds']:.1f} s in the process)")
        print(f"  mbsync   {m['seconds']:8.1f} s  {count / m['seconds']:7.0f} msg/s  peak RSS {m['peak_kib'] / 1024:6.1f} MiB"
              f"  ({m['messages']} files in the Maildir)")
        print(f"  tracker / mbsync: time {t['seconds'] / m['seconds']:.2f}x, peak memory "
              f"{t['peak_kib'] / m['peak_kib']:.2f}x")
        if args.null_sink:
            z = results["tracker, null sink"]
            print(f"  tracker with a null sink (no CRM): {z['seconds']:.1f} s  {count / z['seconds']:.0f} msg/s  "
                  f"peak RSS {z['peak_kib'] / 1024:.1f} MiB: the CRM's share of the time "
                  f"{max(0.0, 1 - z['seconds'] / t['seconds']) * 100:.0f}%")
            z = results["tracker, CRM without the reply sorter"]
            print(f"  tracker with the CRM but no reply sorter: {z['seconds']:.1f} s  {count / z['seconds']:.0f} msg/s: "
                  f"the sorter's share of the time {max(0.0, 1 - z['seconds'] / t['seconds']) * 100:.0f}%")
        ok = t["messages"] == count and t["places"] == count
        print(f"  CRM database: {t['messages']} messages, {t['places']} places, {t['activities']} activities "
              f"({'= N' if ok else f'EXPECTED {count}'})")
        return 0 if ok else 1
    finally:
        if dovecot is not None:
            dovecot.stop()
        if args.keep:
            print("work directory:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
