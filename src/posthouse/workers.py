"""`workers = N`: N session processes on one machine, over one store.

One event loop is one core. With workers > 1, `posthouse serve` is a
supervisor: it starts the store process (store/shared_writer.py: the one
writer, group commits across every worker, and the events of each commit
sent to every other worker in commit order) and forks N workers. Each worker
is today's server (app.serve) with its own read connections, listening on the
same ports (SO_REUSEPORT: the kernel spreads the connections). What one
process held in memory and must hold across them:
- changes reach every worker's sessions (IDLE, NOTIFY, the next command's
  untagged responses) from the store process's broadcast; a session applies
  what has come before each command (StoreService.take_remote);
- \\Recent is claimed in the store (take_recent), so one session gets it;
- write-behind STORE: counted in shared memory (store/wake_counters.py)
  before it is answered; another worker's session waits for the count to be
  done before its next command on the mailbox;
- the POP3 lock is a file lock (pop3/maildrop.py); failed logins are relayed
  to every worker's throttle; mailbox list changes (NOTIFY) are relayed;
- each worker has its own arrivals journal (arrivals, arrivals.1, ...),
  filed with its own sequence numbers; a worker started again files its own;
  mail answered "250" and not filed yet is counted in shared memory per user,
  and another worker's session waits for it before its next command;
- the admin socket, metrics, the outbound queue, the LMTP unix socket, the
  tracker and the web app run in worker 0 only (admin status is worker 0's).
The supervisor starts a worker that ends again (its connections are lost,
nobody else's), and stops everything on SIGTERM/SIGINT with the one line.
"""
from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback

log = logging.getLogger("posthouse")

# (config key of a port, config key of its host)
TCP_PORTS = [("imap_port", "imap_host"), ("imap_tls_port", "imap_host"), ("lmtp_port", "lmtp_host"),
             ("smtp_port", "smtp_host"), ("pop3_port", "pop3_host"), ("pop3_tls_port", "pop3_host"),
             ("submission_port", "submission_host"), ("submission_tls_port", "submission_host"),
             ("managesieve_port", "managesieve_host")]

RESTART_DELAY_MIN = 0.1     # a worker that ends soon after its start is started again after this, doubling
RESTART_DELAY_MAX = 5.0
STOP_TIMEOUT = 60.0


@dataclasses.dataclass
class WorkerRole:
    """What app.serve needs to know to run as one of several workers."""
    number: int
    count: int
    store_sock: socket.socket
    report_fd: int          # lines to the supervisor: "ready N", "stopped N sessions unfiled"
    ended_well: bool = False    # stopped by a signal (not by the loss of the store)

    control: socket.socket | None = None     # new store connections come here (a new store process)
    # How the store process opened the store: the worker's own store (its
    # reads, its LISTEN) is the same one to the database (app.open_store's same_as).
    store_args: dict | None = None
    # Shared with the store process: when to read what the others committed (store/wake_counters.py).
    wake_counters: object = None

    def follow_store(self, service, loop) -> None:
        """Take the connections to a new store process the supervisor sends when
        one died: the calls work again, and every open mailbox is read again
        (what was committed while this worker had no connection was not heard)."""
        connection = service._db_process

        def readable():
            try:
                msg, fds, _flags, _addr = socket.recv_fds(self.control, 16, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                msg, fds = b"", []
            if not msg and not fds:
                loop.remove_reader(self.control.fileno())
                return
            for fd in fds[:-1]:
                os.close(fd)
            if fds:
                connection.attach(socket.socket(fileno=fds[-1]))
                log.info("worker %d: connected to the new store process", self.number)
                service.changes_lost(None, why="a new store process", tell_others=False)
        self.control.setblocking(False)
        loop.add_reader(self.control.fileno(), readable)

    def report(self, line: str) -> None:
        try:
            os.write(self.report_fd, (line + "\n").encode())
        except OSError:
            pass


class _Child:
    def __init__(self, number: int, pid: int, control: socket.socket):
        self.number = number
        self.pid = pid
        self.control = control      # to send it a connection to a new store process
        self.started = time.monotonic()
        self.ready = False


class Supervisor:
    def __init__(self, config, config_file: str | None):
        self.config = config
        self.config_file = config_file
        self.count = config.workers
        self.store_args: dict | None = None     # the store process's open_args (see WorkerRole)
        self.workers: dict[int, _Child] = {}       # pid -> worker
        self.restart_at: dict[int, float] = {}     # worker number -> when to start it again
        self.delays: dict[int, float] = {}
        self.reserved: list[socket.socket] = []
        self.stop_reason: str | None = None
        self.failed = False
        # The store process counts here the frames of others' changes it sends
        # each worker (store/wake_counters.py); None: workers ask their socket.
        from .store.wake_counters import WakeCounters
        self.wake_counters = WakeCounters.create()
        self.reports = bytearray()
        self.stopped = {"sessions": 0, "unfiled": 0}

    # -- starting ---------------------------------------------------------------------
    def _reserve_ports(self) -> None:
        """Fail now, with today's message, on a port another program holds; turn
        port 0 into one port every worker then listens on (held, not listened on)."""
        from .app import CantListen
        for key, host_key in TCP_PORTS:
            port = getattr(self.config, key)
            if port is None:
                continue
            host = getattr(self.config, host_key) or None
            name = key.rsplit("_port", 1)[0].split("_")[0].upper()
            try:
                family, stype, proto, _c, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                    flags=socket.AI_PASSIVE)[0]
                if port:
                    probe = socket.socket(family, stype, proto)
                    try:
                        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        probe.bind(addr)
                    finally:
                        probe.close()
                sock = socket.socket(family, stype, proto)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind(addr)
            except OSError as e:
                why = e.strerror or str(e)
                if e.errno == 98:
                    why = "the address is already in use (another server?)"
                raise CantListen(f"can't listen for {name} on {host or '*'} port {port}: {why}; stop what holds "
                                 f"the port, or choose another port (or false) in the config's "
                                 f"[{name.lower()}] section") from None
            self.reserved.append(sock)
            setattr(self.config, key, sock.getsockname()[1])

    def _make_certificate(self) -> None:
        """The self-signed certificate, if one is needed, made once (not by each worker at once)."""
        if not self.config.tls_cert:
            from .tls import ensure_self_signed, server_name
            ensure_self_signed(self.config.path("tls/cert.pem"), self.config.path("tls/key.pem"),
                               server_name(self.config.hostname))

    def _forget_pending(self, numbers) -> None:
        """What these workers counted started in shared memory and was not
        finished never will be (the store process that would finish it, or
        the worker that started it, is gone): nobody waits for it."""
        if self.wake_counters is not None:
            from .store.wake_counters import ARRIVALS, BEHIND
            for number in numbers:
                for kind in (BEHIND, ARRIVALS):
                    self.wake_counters.forget(kind, number)

    def _start_store(self) -> None:
        self._forget_pending(range(self.count))
        from .app import open_store
        # Makes or upgrades the schema, once, before anyone uses it. A store
        # process started again keeps the first one's identity (PostgreSQL's
        # NOTIFY origin): the workers running on have it too.
        store = open_store(self.config, self.store_args)
        self.store_args = store.open_args
        spec = json.dumps({"module": type(store).__module__, "class": type(store).__qualname__,
                           "args": store.open_args})
        store.close()
        self.control, child = socket.socketpair()
        env = dict(os.environ)
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        from .lifeline import stop_signals_held
        wake = self.wake_counters
        argv = [sys.executable, "-m", "posthouse.store.process", "--shared", str(child.fileno()), spec,
                str(os.getpid())] + ([str(wake.fd)] if wake is not None else [])
        try:
            with stop_signals_held():
                self.store_proc = subprocess.Popen(
                    argv, pass_fds=(child.fileno(),) + ((wake.fd,) if wake is not None else ()),
                    stdin=subprocess.DEVNULL, env=env)
        finally:
            child.close()

    def _start_worker(self, number: int) -> None:
        self._forget_pending([number])
        mine, theirs = socket.socketpair()
        try:
            socket.send_fds(self.control, [str(number).encode()], [theirs.fileno()])
        except OSError as e:
            log.error("the store process can't take worker %d: %s", number, e)
            mine.close()
            theirs.close()
            self.restart_at[number] = time.monotonic() + 1.0
            return
        theirs.close()
        control, worker_control = socket.socketpair()
        # A stop signal that comes meanwhile must not be taken by the child
        # with the supervisor's handler (it would then never stop): held over
        # the fork, it reaches the child once its handlers are the default.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                control.close()
                code = self._worker_main(number, mine, worker_control)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        mine.close()
        worker_control.close()
        self.workers[pid] = _Child(number, pid, control)

    def _reconnect(self, child: _Child) -> None:
        """Give a running worker a connection to the new store process."""
        mine, theirs = socket.socketpair()
        try:
            socket.send_fds(self.control, [str(child.number).encode()], [theirs.fileno()])
            socket.send_fds(child.control, [b"store"], [mine.fileno()])
        except OSError as e:
            log.error("worker %d can't be connected to the new store process: %s", child.number, e)
        finally:
            mine.close()
            theirs.close()

    def _worker_main(self, number: int, store_sock: socket.socket, control: socket.socket) -> int:
        # The kernel ends us with the supervisor, however it ends.
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
        if os.getppid() != self._pid:
            return 1
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.close(self._wake_r)
        os.close(self._wake_w)
        os.close(self._report_r)
        self.control.close()
        for other in self.workers.values():
            other.control.close()
        for sock in self.reserved:
            sock.close()
        config = self.config
        if number:
            # What one process runs: worker 0's (see the module's notes).
            config.lmtp_socket = None
            config.web_port = None
            config.tracker_enabled = False
            config.metrics_port = None
        config.parse_processes = max(1, config.parse_processes // self.count) if config.parse_processes else 0
        from . import net
        net.REUSE_PORT = True
        from .app import CantListen, serve
        role = WorkerRole(number, self.count, store_sock, self._report_w, control=control,
                          store_args=self.store_args, wake_counters=self.wake_counters)
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        import asyncio
        try:
            asyncio.run(serve(config, config_file=self.config_file, worker=role))
        except CantListen as e:
            print(f"posthouse: {e}", file=sys.stderr)
            return 2
        return 0 if role.ended_well else 3

    # -- running ----------------------------------------------------------------------
    def run(self) -> int:
        self._pid = os.getpid()
        self._reserve_ports()
        self._make_certificate()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._report_r, self._report_w = os.pipe()
        os.set_blocking(self._report_r, False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self._wake_w)
        self._start_store()
        # Worker 0 first (it runs what one process runs: the admin socket, the
        # web app...), the others once it is ready: a port that answers is then
        # a server that does everything.
        self._start_worker(0)
        later = list(range(1, self.count))
        while self.stop_reason is None and not self.failed:
            select.select([self._wake_r, self._report_r], [], [], 0.5)
            self._drain()
            self._reap()
            first_ready = any(c.number == 0 and c.ready for c in self.workers.values())
            if later and self.stop_reason is None and first_ready:
                for number in later:
                    self._start_worker(number)
                later = []
            now = time.monotonic()
            for number, when in list(self.restart_at.items()):
                if now >= when and self.stop_reason is None:
                    del self.restart_at[number]
                    self._start_worker(number)
        self._stop()
        return 1 if self.failed else 0

    def _on_stop(self, signum, _frame) -> None:
        if self.stop_reason is None:
            self.stop_reason = signal.Signals(signum).name

    def _drain(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        try:
            while True:
                data = os.read(self._report_r, 4096)
                if not data:
                    break
                self.reports += data
        except (BlockingIOError, InterruptedError):
            pass
        while b"\n" in self.reports:
            line, _, rest = bytes(self.reports).partition(b"\n")
            self.reports = bytearray(rest)
            words = line.decode(errors="replace").split()
            if len(words) >= 2 and words[0] == "ready":
                for child in self.workers.values():
                    if child.number == int(words[1]):
                        child.ready = True
                        # (at the first start, after worker 0's lines, which end with what it listens on)
                        log.log(logging.INFO if child.number in self.delays else logging.DEBUG,
                                "worker %d (pid %d) ready", child.number, child.pid)
                self._write_pids()
            elif len(words) == 4 and words[0] == "stopped":
                self.stopped["sessions"] += int(words[2])
                self.stopped["unfiled"] += int(words[3])

    PIDS_FILE = "workers.pids"

    def _write_pids(self) -> None:
        """data_dir/workers.pids: "number pid" of each worker that is ready, a line each."""
        path = self.config.path(self.PIDS_FILE)
        try:
            with open(path + ".new", "w") as f:
                for child in sorted(self.workers.values(), key=lambda c: c.number):
                    if child.ready:
                        f.write(f"{child.number} {child.pid}\n")
            os.replace(path + ".new", path)
        except OSError as e:
            log.warning("can't write %s: %s", path, e)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.store_proc.pid:
                self.store_proc.returncode = os.waitstatus_to_exitcode(status)
                if self.stop_reason is None:
                    # The workers' calls fail meanwhile (as with one process's
                    # store process); each is given a connection to the new one.
                    log.error("the store process ended (exit status %s); starting a new one",
                              self.store_proc.returncode)
                    self.control.close()
                    self._start_store()
                    for other in self.workers.values():
                        self._reconnect(other)
                continue
            child = self.workers.pop(pid, None)
            if child is None:
                continue
            child.control.close()
            if self.stop_reason is None:
                self._write_pids()
            code = os.waitstatus_to_exitcode(status)
            if self.stop_reason is not None:
                continue
            if not child.ready and code == 2:
                log.error("worker %d could not start (exit status %s): stopping", child.number, code)
                self.failed = True
                return
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            quick = time.monotonic() - child.started < 1.0
            delay = min(RESTART_DELAY_MAX, 2 * self.delays.get(child.number, RESTART_DELAY_MIN / 2)) if quick \
                else 0.0
            self.delays[child.number] = delay or RESTART_DELAY_MIN / 2
            log.warning("worker %d (pid %d) ended (%s): its connections are lost; starting it again%s",
                        child.number, pid, how, f" in {delay:.1f} s" if delay else "")
            self.restart_at[child.number] = time.monotonic() + delay

    def _stop(self) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.workers and time.monotonic() < deadline:
            select.select([self._wake_r, self._report_r], [], [], 0.2)
            self._drain()
            self._reap()
        for pid in list(self.workers):
            log.error("worker pid %d does not stop; killing it", pid)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self._drain()
        self.control.close()        # the store process ends once every worker has gone
        try:
            self.store_proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.error("the store process did not stop; killing it")
            self.store_proc.kill()
            self.store_proc.wait()
        for sock in self.reserved:
            sock.close()
        if self.stop_reason is not None:
            sessions, unfiled = self.stopped["sessions"], self.stopped["unfiled"]
            log.info("posthouse stopped (%s): %d connection%s closed, %d message%s left to file at the next start",
                     self.stop_reason, sessions, "" if sessions == 1 else "s", unfiled,
                     "" if unfiled == 1 else "s")


def run_workers(config, config_file: str | None = None) -> int:
    return Supervisor(config, config_file).run()


def pop3_file_lock(data_dir: str, user_id: int):
    """The POP3 maildrop lock of a user across processes: an open descriptor
    holding an exclusive flock (released by closing it, or by the kernel when
    the holder dies), or None if another session holds it."""
    directory = os.path.join(data_dir, "pop3-locks")
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, str(int(user_id))), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
