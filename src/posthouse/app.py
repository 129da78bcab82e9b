"""Wiring: config -> store -> service -> IMAP server, and the run loop."""
from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import signal
import socket
import sqlite3

from . import __version__
from .auth.authenticator import Authenticator
from .auth.service_identity import ServiceIdentity
from .auth.throttle import Throttle
from .config import Config
from .delivery.arrivals import Arrivals
from .delivery.deliver import Deliverer
from .delivery.journal import Journal
from .delivery.lmtp import LmtpServer
from .delivery.queue import OutboundQueue
from .delivery.smtp import SmtpServer
from .delivery.submission import SubmissionServer
from .managesieve.server import ManageSieveServer
from .pop3.server import Pop3Server
from .imap.registry import MailboxRegistry
from .imap.server import ImapServer, ServerContext
from .limits import ConnectionLimits
from .store.api import DiskFull, Store
from .store.service import StoreService
from .store.space import FreeSpace, is_disk_full
from .store.sqlite.backend import SQLiteStore
from .tls import ensure_self_signed, server_context, server_name

log = logging.getLogger("posthouse")


def open_store(config: Config, same_as: dict | None = None) -> Store:
    """same_as: the open_args of the store another process of this server
    opened (workers: the shared store process's), whose identity in the
    database this one takes (PostgreSQL: the origin of its NOTIFYs, the
    lessee of queued messages): so the node's own changes, committed there,
    are not taken for another node's."""
    if (config.database_url or "").startswith(("postgresql://", "postgres://")):
        # The mail store in PostgreSQL (a cluster): the node's journal of
        # arrivals is its own, named by this host and its data directory.
        from .store.postgres.backend import PostgresStore
        log.info("mail store: PostgreSQL at %s", config.database_url.rpartition("@")[2])
        same_as = same_as or {}
        return PostgresStore(config.database_url, quota_storage=config.quota_storage,
                             quota_messages=config.quota_messages, node=store_node(config), synchronous=config.fsync,
                             lessee=same_as.get("lessee"), origin=same_as.get("origin"))
    try:
        return SQLiteStore(config.data_dir, fsync=config.fsync, quota_storage=config.quota_storage,
                           quota_messages=config.quota_messages)
    except (sqlite3.Error, OSError) as e:
        # A full disk shows as SQLite's "disk I/O error" here (its shared-memory
        # file can't be made): say what is wrong, in one line.
        try:
            free = FreeSpace(config.data_dir).free()
        except OSError:
            raise e from None
        if not is_disk_full(e) and free >= 1 << 20:
            raise       # not for want of room
        raise DiskFull(f"can't open the store in {config.data_dir}: its disk is full "
                       f"({free} bytes free; {e}); free some space and start again") from e


def store_node(config: Config) -> str:
    """This server's name in a shared store: its host and data directory
    (where its journal of arrivals is, whose records it files)."""
    return f"{socket.gethostname()}:{os.path.abspath(config.data_dir)}"


def build_context(config: Config, worker=None) -> ServerContext:
    """worker: a workers.WorkerRole when this is one of several session processes."""
    os.makedirs(config.data_dir, exist_ok=True)
    wake_watch = None
    if worker is not None and worker.wake_counters is not None:
        from .store.wake_counters import WakeWatch
        wake_watch = WakeWatch(worker.wake_counters, worker.number, worker.count)
    service = StoreService(open_store(config, worker.store_args if worker is not None else None),
                           config.parse_processes, config.store_process,
                           store_connection=worker.store_sock if worker is not None else None,
                           wake_watch=wake_watch)
    service.space = FreeSpace(config.data_dir, config.min_free_space)
    service.space.room_for()     # logs a WARNING now if there is too little room for new mail
    cert, key = config.tls_cert, config.tls_key
    if not cert:
        cert, key = config.path("tls/cert.pem"), config.path("tls/key.pem")
        ensure_self_signed(cert, key, server_name(config.hostname))
    tls = server_context(cert, key)
    # One deliverer for every way mail arrives, and the queue for mail that
    # leaves; each needs the other (bounces are delivered, vacation replies queued).
    deliverer = Deliverer(service, config)
    number = worker.number if worker is not None else 0
    if worker is not None:
        service.worker_number = number
        service.server_pid = os.getppid()      # `posthouse serve`, the supervisor
    many_journals = getattr(service.store, "ARRIVAL_JOURNALS", False)
    if config.delivery_journal and hasattr(service.store, "file_arrival") and (number == 0 or many_journals):
        # One journal per worker (worker 0's is a single process's); a store
        # that keeps one journal's filings only: worker 0's, the others file at once.
        path = config.path("arrivals" if number == 0 else f"arrivals.{number}")
        deliverer.arrivals = Arrivals(deliverer, Journal(path, fsync=config.fsync))
        deliverer.arrivals.watch = service.pending_watch
        if number:
            deliverer.arrivals.journal_key = (number,)
    queue = OutboundQueue(service, config, deliverer)
    deliverer.queue = queue
    throttle = Throttle(config.failure_delay, config.auth_throttle_max, config.auth_throttle_forget)
    if worker is not None:
        throttle = SharedThrottle(service, config.failure_delay, config.auth_throttle_max,
                                  config.auth_throttle_forget)
    return ServerContext(config, service, MailboxRegistry(service),
                         Authenticator(service, config.failure_delay, cache_ttl=config.auth_cache_ttl,
                                       throttle=throttle,
                                       service_identity=ServiceIdentity(config.data_dir)), tls, deliverer, queue,
                         ConnectionLimits(config.max_connections, config.max_connections_per_ip))


async def start_arrivals(ctx: ServerContext) -> None:
    """Mail accepted before the last stop and not yet filed is filed first."""
    if ctx.deliverer.arrivals is not None:
        await ctx.deliverer.arrivals.start()


async def stop_arrivals(ctx: ServerContext) -> None:
    """After the listeners that deliver: what they accepted is filed."""
    if ctx.deliverer.arrivals is not None:
        await ctx.deliverer.arrivals.close()


class CantListen(Exception):
    """A listener's port could not be had (in use, or not allowed)."""


async def _listen(name: str, host: str, listener) -> None:
    try:
        await listener.start()
    except OSError as e:
        why = e.strerror or str(e)
        if "address already in use" in str(e).lower():
            why = "the address is already in use (another server?)"
        bound = re.search(r"\('([^']*)', (\d+)", str(e))     # asyncio names the address it tried
        where = f"{bound[1]} port {bound[2]}" if bound else host
        raise CantListen(f"can't listen for {name} on {where}: {why}; stop what holds the port, "
                         f"or choose another port (or false) in the config's [{name.lower()}] section") from None


class SharedThrottle(Throttle):
    """The login throttle of one of several workers: each outcome is counted
    here and relayed to every other worker, where it is counted too."""

    def __init__(self, service: StoreService, *args):
        super().__init__(*args)
        self._service = service
        service.relay_handlers["login"] = self._heard

    def done(self, address: str, account: str, ok: bool, slotted: bool = False) -> None:
        super().done(address, account, ok, slotted)
        if self.max_delay:
            self._service.relay("login", address, account, ok)

    def _heard(self, address: str, account: str, ok: bool) -> None:
        super().done(address, account, ok)


async def serve(config: Config, ready=None, config_file: str | None = None, worker=None) -> None:
    """worker: a workers.WorkerRole when this is one of several session processes
    (workers.py); None: the one process, as ever."""
    ctx = build_context(config, worker)
    first = worker is None or worker.number == 0
    started = [("posthouse %s: data directory %s, config %s", __version__, config.data_dir,
                config_file or "none (the defaults)")]     # logged once every listener is up
    closers: list = []      # what is started, stopped in the reverse order
    admin = None            # admin.sock (status, backup) and metrics: closed first
    stop = asyncio.Event()
    reason: list[str] = []
    # From the start: a signal while starting stops the server once it has started.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, lambda sig=sig: (reason.append(signal.Signals(sig).name), stop.set()))
        except (NotImplementedError, RuntimeError):
            pass    # not the main thread (the tests run the server on one): stopped by server.close()
    if worker is not None:
        worker.follow_store(ctx.service, loop)
    try:
        await start_arrivals(ctx)
        closers.append(lambda: stop_arrivals(ctx))
        if hasattr(ctx.service.store, "origin"):      # PostgreSQL: other nodes' changes (LISTEN/NOTIFY)
            from .store.postgres.bus import start_bus
            closers.append((await start_bus(ctx.service)).close)
        if first:
            from .admin.service import start_admin
            admin = await start_admin(ctx)      # admin.sock for status and backup; metrics if configured
        server = ImapServer(ctx)
        await _listen("IMAP", config.imap_host, server)
        closers.insert(0, server.close)     # (stopped last: after the arrivals are filed)
        started.append(("IMAP listening on %s ports %s", config.imap_host, server.ports))
        lmtp = LmtpServer(ctx)
        await _listen("LMTP", config.lmtp_host, lmtp)
        closers.append(lmtp.close)
        if config.lmtp_port is not None or config.lmtp_socket:
            started.append(("LMTP listening on %s", ", ".join(
                [f"{config.lmtp_host} port {p}" for p in lmtp.ports] + [config.lmtp_socket or ""]).strip(", ")))
        smtp = SmtpServer(ctx)
        await _listen("SMTP", config.smtp_host, smtp)
        closers.append(smtp.close)
        if config.smtp_port is not None:
            started.append(("SMTP listening on %s port %s for %s", config.smtp_host, smtp.ports,
                            ", ".join(config.domains) or "no domains (set domains in the config)"))
        pop3 = Pop3Server(ctx)
        await _listen("POP3", config.pop3_host, pop3)
        closers.append(pop3.close)
        if pop3.ports:
            started.append(("POP3 listening on %s ports %s", config.pop3_host, pop3.ports))
        queue = ctx.queue
        if first:       # (one sender of queued mail: worker 0's; the others wake it, see queue.enqueue)
            queue.start()
            ctx.service.relay_handlers["outbound"] = queue.wake
        closers.append(queue.close)
        submission = SubmissionServer(ctx)
        await _listen("Submission", config.submission_host, submission)
        closers.append(submission.close)
        if submission.ports:
            started.append(("Submission listening on %s ports %s; relay: %s", config.submission_host, submission.ports,
                            f"{config.relay_host}:{config.relay_port}" if config.relay_host
                            else "none (local mail only)"))
        sieve = ManageSieveServer(ctx)
        await _listen("ManageSieve", config.managesieve_host, sieve)
        closers.append(sieve.close)
        if sieve.ports:
            started.append(("ManageSieve listening on %s port %s", config.managesieve_host, sieve.ports))
        started.append(("mail domains: %s", ", ".join(config.domains) or "none"))
        if worker is not None:
            started.append(("%d session processes (workers) over one store process", worker.count))
        if config.web_port is not None or config.tracker_enabled:
            await _start_crm_side(config, ctx, loop, closers, started)
        if first:
            for line in started:
                log.info(*line)
        if worker is not None:
            worker.report(f"ready {worker.number}")     # (the supervisor says so)
        if ready is not None:
            ready(server)
        await stop.wait()
    finally:
        if admin is not None:
            await admin.close()
        sessions = ctx.limits.total if ctx.limits is not None else 0
        for close in reversed(closers):
            await close()
        unfiled = len(ctx.deliverer.arrivals._unfiled) if ctx.deliverer.arrivals is not None else 0
        ctx.authenticator.close()
        ctx.service.close()
        if worker is not None:      # the supervisor says it, once, for all of them
            worker.ended_well = bool(reason)
            worker.report(f"stopped {worker.number} {sessions} {unfiled}")
        elif reason:
            log.info("posthouse stopped (%s): %d connection%s closed, %d message%s left to file at the next start",
                     reason[0], sessions, "" if sessions == 1 else "s", unfiled, "" if unfiled == 1 else "s")


async def _start_crm_side(config: Config, ctx: ServerContext, loop, closers: list, started: list) -> None:
    """The activity tracker and the web app, over one CRM database, after the
    mail listeners (the tracker follows local accounts through our own IMAP);
    stopped before them."""
    from sqlalchemy.exc import SQLAlchemyError
    from .crmside import LocalUsers, open_crm_side
    users = LocalUsers(ctx.service)
    await users.start()
    closers.append(users.close)
    try:
        side = await asyncio.to_thread(open_crm_side, config, local_users=users)
    except (SQLAlchemyError, OSError) as e:    # one line saying so, as for a port in use
        raise CantListen(f"can't start the tracker and the web app: the CRM database can't be used "
                         f"({e.__class__.__name__}: {str(e).splitlines()[0]}); check database_url") from None

    async def close_side():
        await asyncio.to_thread(side.close)
    closers.append(close_side)
    from .webhooks.service import start_webhooks; start_webhooks(config, side, closers)  # noqa: E702
    before, now = side.migrated
    if before != now:
        started.append(("CRM database %s: schema %s", side.engine.url.render_as_string(hide_password=True),
                         f"upgraded from {before} to {now}" if before else f"made (revision {now})"))
    tracker = None
    from .web.live import Hub
    hub = Hub.for_serve(side, loop)     # live updates for the pages, fed by the tracker's facts
    if config.tracker_enabled:
        from .tracker.engine import Tracker, options_from_config
        tracker = Tracker(side.engine, side.accounts, hub.sink(side.crm), options=options_from_config(config))
        hub.follow(tracker)
        task = loop.create_task(tracker.run(), name="tracker")

        async def stop_tracker():
            await tracker.stop()
            await asyncio.gather(task, return_exceptions=True)
        closers.append(stop_tracker)
        started.append(("tracker following the accounts in %s", side.engine.url.render_as_string(hide_password=True)))
    from .campaigns.serve import start_campaigns
    await start_campaigns(config, ctx, side, closers, started)
    if config.web_port is not None:     # the REST API; stopped first
        from .web.server import WebServer, tls_context
        from .web.services import build_app
        web_app = build_app(config, side, account_status=tracker.status if tracker is not None else None,
                            user_exists=_user_exists(ctx, loop), login=_web_login(ctx), live=hub)
        web = WebServer(web_app, config.web_host, config.web_port,
                        ssl=tls_context(config) if config.web_tls else None)
        await _listen("Web", config.web_host, web)
        closers.append(web.close)
        closers.append(hub.close)       # (before web.close: the event streams end, the server stops at once)
        started.append(("web listening on %s", web.url))


def _user_exists(ctx: ServerContext, loop):
    """user_exists(name) for the web app's worker threads: a token of a user
    deleted since is refused."""
    def user_exists(name: str) -> bool:
        return asyncio.run_coroutine_threadsafe(ctx.service.call("get_user", name), loop).result(30) is not None
    return user_exists


def _web_login(ctx: ServerContext):
    """The web pages' login: the mail protocols' password check and throttle
    (the web app runs on this event loop)."""
    async def login(name: str, password: str, peer: str) -> str | None:
        user = await ctx.authenticator.check(name, password, peer)
        return user.name if user is not None else None
    return login


class DataDirInUse(Exception):
    """Another server runs on this data directory."""


LOCK_FILE = "serve.lock"


def lock_data_dir(data_dir: str) -> int:
    """Hold the data directory for this server, for as long as the process
    lives (the kernel lets go when it ends, however it ends): two servers on
    one data directory would each answer mail the other can't see. The file
    holds the holder's pid. Admin commands don't take it: they run beside
    the server. Returns the lock's file descriptor; DataDirInUse if held."""
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirInUse(f"data directory {data_dir} is in use by another posthouse server "
                           f"(pid {holder}); not starting") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass    # a full disk: the lock holds without the pid (a second server says "unknown")
    return fd


class DataDirUnusable(Exception):
    """The data directory can't be made or written."""


def check_data_dir(data_dir: str) -> None:
    """Make the data directory if need be; DataDirUnusable, saying why and
    what to do, if it can't be made or written."""
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as e:
        raise DataDirUnusable(f"can't make data directory {data_dir}: {e.strerror}; make it (writable by "
                              "this user) or choose another (data_dir, $POSTHOUSE_DATA_DIR, --data-dir)") from None
    if not os.path.isdir(data_dir) or not os.access(data_dir, os.W_OK | os.X_OK):
        raise DataDirUnusable(f"data directory {data_dir} is not a writable directory; give this user write "
                              "permission or choose another (data_dir, $POSTHOUSE_DATA_DIR, --data-dir)")


def run(config: Config, config_file: str | None = None) -> int:
    check_data_dir(config.data_dir)
    lock_data_dir(config.data_dir)      # (held until the process ends)
    if config.workers > 1:
        from .workers import run_workers
        return run_workers(config, config_file)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(config, config_file=config_file))
    return 0
