"""`posthouse import` against `doveadm import`, on the same mbox.

    python3 bench/import.py                    # 100,000 messages
    python3 bench/import.py --messages 10000   # a shorter run

Generates an mbox with ../shared/tools/gen_mbox.py (varied sizes, MIME
structures, "From " lines to quote), starts a private Dovecot (servers.py:
sdbox, mail_fsync=optimized) and a private Posthouse (fsync on), each
running, and times the import of the mbox into a user's INBOX by each
one's own command, wall clock, as a whole process: `posthouse import`
(parsing and storing every message, search text included) and
`doveadm import` from an mbox location. Prints both, messages per second,
and the ratio; then checks both hold every message.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import DovecotServer, PosthouseServer, _mail_user, ensure_dovecot   # noqa: E402

GEN_MBOX = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "tools", "gen_mbox.py")
USER = "bench1"


def timed(argv, **kw) -> float:
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--mbox", help="use this mbox instead of generating one")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    ensure_dovecot()
    work = tempfile.mkdtemp(prefix="posthouse-import-bench-")
    os.chmod(work, 0o755)      # Dovecot's mail user reads the mbox
    dovecot = posthouse = None
    try:
        mbox_dir = os.path.join(work, "mbox")
        os.makedirs(mbox_dir)
        os.chmod(mbox_dir, 0o755)
        mbox = os.path.join(mbox_dir, "inbox")
        if args.mbox:
            shutil.copyfile(args.mbox, mbox)
        else:
            t0 = time.monotonic()
            subprocess.run([sys.executable, GEN_MBOX, mbox, str(args.messages)], check=True,
                           stdout=subprocess.DEVNULL)
            print(f"generated {args.messages} messages in {time.monotonic() - t0:.0f}s")
        os.chmod(mbox, 0o644)
        size = os.path.getsize(mbox)
        count = sum(1 for _ in _from_lines(mbox))
        print(f"mbox: {count} messages, {size / 1e6:.0f} MB")

        posthouse = PosthouseServer(work, [USER])
        p_time = timed([sys.executable, "-m", "posthouse", "--config", posthouse.config_path,
                        "import", USER, mbox, "--folder", "INBOX"])
        dovecot = DovecotServer(work, [USER], max_sessions=10)
        import pwd
        pw = pwd.getpwnam(_mail_user())
        os.chown(mbox_dir, pw.pw_uid, pw.pw_gid)
        d_time = timed(["doveadm", "-c", dovecot.config_path, "import", "-u", USER,
                        f"mbox:{mbox_dir}:INBOX={mbox}", "", "all"])

        db = sqlite3.connect(f"file:{posthouse.dir}/data/index.sqlite3?mode=ro", uri=True)
        p_count = db.execute("SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id "
                             "WHERE b.name = 'INBOX'").fetchone()[0]
        db.close()
        d_out = subprocess.run(["doveadm", "-c", dovecot.config_path, "-f", "flow", "mailbox", "status",
                                "-u", USER, "messages", "INBOX"], capture_output=True, text=True).stdout
        print(f"posthouse import: {p_time:7.1f}s  {count / p_time:7.0f} msg/s  ({p_count} messages in INBOX)")
        print(f"doveadm import:   {d_time:7.1f}s  {count / d_time:7.0f} msg/s  ({d_out.strip()})")
        print(f"posthouse / dovecot time: {p_time / d_time:.2f}")
    finally:
        for server in (posthouse, dovecot):
            if server is not None:
                server.stop()
        if args.keep:
            print("work directory:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _from_lines(path):
    with open(path, "rb") as f:
        previous = b"\n"
        for line in f:
            if line.startswith(b"From ") and previous in (b"\n", b"\r\n"):
                yield line
            previous = line


if __name__ == "__main__":
    sys.exit(main())
