"""The two servers under test, each started privately on 127.0.0.1.

Dovecot gets its own base_dir, config, passwd-file and sdbox mail under a
temporary directory; Posthouse gets its own data_dir. Both listen on a free
loopback port and are stopped (with everything they started) at the end.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

PASSWORD = "bench-pass"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def generator_scheduling() -> None:
    """The load generator runs as a batch task: woken by a server's answer,
    it then waits for a free core instead of preempting the server under
    test (on a 2-core machine a woken generator took the core of the one
    process that was answering). A remote client costs a server nothing of
    the kind. Both servers are measured so."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def normal_scheduling() -> None:
    """In a server's process before it starts: the policy every server runs with."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def process_tree(root_pid: int) -> list[int]:
    """root_pid and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


class Server:
    name = "?"
    proc: subprocess.Popen

    def pss_kib(self) -> int:
        return pss_kib(process_tree(self.proc.pid))

    def process_count(self) -> int:
        return len(process_tree(self.proc.pid))

    def wait_processes(self, count: int, timeout: float) -> None:
        """Wait until the server runs no more than count processes (those of
        ended sessions have exited), or timeout seconds."""
        t0 = time.monotonic()
        while self.process_count() > count and time.monotonic() - t0 < timeout:
            time.sleep(0.2)

    def _start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=open(os.path.join(self.dir, "server.log"), "a"),
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=normal_scheduling)
        wait_port(self.port, self.proc)

    def restart(self) -> None:
        """A fresh process on the same data: the baseline for memory figures."""
        self.stop()
        self._start()

    def settle(self, timeout: float = 600) -> float:
        """Wait until the server has no deferred work left; returns seconds waited."""
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class PosthouseServer(Server):
    name = "posthouse"

    def __init__(self, workdir: str, users: list[str], fsync: bool = True, web: bool = False,
                 mailboxes: list[tuple[str, str | None]] = (("INBOX", None),),
                 top_level: str = "", subdir: str = "posthouse"):
        # top_level: more top-level config lines (workers = N, database_url = "..."),
        # subdir: this server's own directory (several nodes over one database).
        self.dir = os.path.join(workdir, subdir)
        self.database_url = "database_url" in top_level
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.lmtp_port = free_port()
        # The REST API (tracker benchmarks read activities through it).
        self.web_port = free_port() if web else None
        self.mailboxes = list(mailboxes)
        self.config_path = os.path.join(self.dir, "posthouse.toml")
        with open(self.config_path, "w") as f:
            f.write(f'data_dir = "{self.dir}/data"\nfsync = {str(fsync).lower()}\nlog_level = "WARNING"\n'
                    f'default_mailboxes = []\n' + top_level
                    # Session processes (issue 24): $POSTHOUSE_BENCH_WORKERS, else the server's default (cores).
                    + (f'workers = {int(os.environ["POSTHOUSE_BENCH_WORKERS"])}\n'
                       if os.environ.get("POSTHOUSE_BENCH_WORKERS") and "workers" not in top_level else '')
                    + f'[imap]\nhost = "{HOST}"\nport = {self.port}\ntls_port = false\n'
                    f'[lmtp]\nhost = "{HOST}"\nport = {self.lmtp_port}\n[smtp]\nport = false\n[pop3]\nport = false\ntls_port = false\n[managesieve]\nport = false\n[submission]\nport = false\ntls_port = false\n'
                    + (f'[web]\nhost = "{HOST}"\nport = {self.web_port}\n' if web else '[web]\nport = false\n')
                    # The tracker benchmarks run their own tracker process.
                    + '[tracker]\nenabled = false\n'
                    # Up to 10,000 idle sessions, all from loopback: the connection limits are lifted.
                    + f'[limits]\nmax_connections = 0\nmax_connections_per_ip = 0\n')
        self._create_users(users)
        self.argv = [sys.executable, "-m", "posthouse", "--config", self.config_path, "serve"]
        self._start()

    def settle(self, timeout: float = 600) -> float:
        """Posthouse indexes the text of new mail in batches, when idle or once a
        backlog builds: wait until none waits, so the next workload doesn't pay
        for the last one's indexing (and the load figure includes it)."""
        import sqlite3
        if self.database_url:
            return 0.0      # (the PostgreSQL store indexes text as it stores it)
        t0 = time.monotonic()
        db = sqlite3.connect(f"file:{self.dir}/data/index.sqlite3?mode=ro", uri=True)
        try:
            while time.monotonic() - t0 < timeout:
                if db.execute("SELECT count(*) FROM text_pending").fetchone()[0] == 0:
                    break
                time.sleep(0.2)
        finally:
            db.close()
        return time.monotonic() - t0

    def _create_users(self, users: list[str]) -> None:
        from posthouse.app import open_store
        from posthouse.auth.passwords import hash_password
        from posthouse.config import Config
        if not users:
            return
        store = open_store(Config.load(self.config_path))
        try:
            hashed = hash_password(PASSWORD)    # one scrypt for all: the salt doesn't matter here
            for name in users:
                store.create_user(name, hashed, self.mailboxes)
        finally:
            store.close()


class DovecotServer(Server):
    name = "dovecot"

    def __init__(self, workdir: str, users: list[str], max_sessions: int):
        self.dir = os.path.join(workdir, "dovecot")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.lmtp_port = free_port()
        mail_user = _mail_user()
        pw = pwd.getpwnam(mail_user)
        os.makedirs(os.path.join(self.dir, "home"), exist_ok=True)
        os.chown(os.path.join(self.dir, "home"), pw.pw_uid, pw.pw_gid)
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            for name in users:
                f.write(f"{name}:{{PLAIN}}{PASSWORD}:{pw.pw_uid}:{pw.pw_gid}::{self.dir}/home/{name}\n")
        self.config_path = os.path.join(self.dir, "dovecot.conf")
        run_dir = os.path.join(self.dir, "run")
        os.makedirs(run_dir, exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(_DOVECOT_CONF.format(dir=self.dir, run=run_dir, port=self.port, lmtp_port=self.lmtp_port,
                                         uid=pw.pw_uid, max=max_sessions + 100,
                                         first_uid=min(pw.pw_uid, 500)))
        self.argv = ["dovecot", "-F", "-c", self.config_path]
        self._start()


def _mail_user() -> str:
    """Dovecot refuses to store mail as root: use (and make) an unprivileged user."""
    if os.getuid() != 0:
        return pwd.getpwuid(os.getuid()).pw_name
    try:
        pwd.getpwnam("phbench")
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "phbench"])
        if made.returncode != 0:
            pwd.getpwnam("phbench")     # (made meanwhile by a benchmark run beside this one, or fail)
    return "phbench"


def ensure_dovecot() -> None:
    if shutil.which("dovecot"):
        return
    if os.getuid() != 0:
        raise SystemExit("dovecot is not installed and this is not root: "
                         "apt-get install dovecot-imapd dovecot-lmtpd")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "dovecot-imapd", "dovecot-lmtpd"], check=True, env=env)
    # The package may start the system instance; ours is separate (own base_dir and port).


# A private instance: nothing outside the work directory is read or written.
_DOVECOT_CONF = """\
base_dir = {run}
instance_name = posthouse-bench-{port}
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# LMTP recipients are bare user names here, as they are for Posthouse.
auth_username_format = %Ln
first_valid_uid = {first_uid}
mail_location = sdbox:~/mail
mail_fsync = optimized
mail_max_userip_connections = {max}
default_process_limit = {max}
default_client_limit = {max}
default_vsz_limit = 1G
passdb {{
  driver = passwd-file
  args = {dir}/passwd
}}
userdb {{
  driver = passwd-file
  args = {dir}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  # "High-performance mode": a few login processes serve every connection.
  service_count = 0
  process_min_avail = 2
  client_limit = {max}
}}
service imap {{
  process_limit = {max}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service anvil {{
  client_limit = {max}
}}
service auth {{
  client_limit = {max}
}}
service stats {{
  client_limit = {max}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
"""
