"""Wiring: config -> store -> service -> IMAP server, and the run loop."""
from __future__ import annotations

import asyncio
import logging
import os
import signal

from .auth.authenticator import Authenticator
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
from .store.service import StoreService
from .store.sqlite.backend import SQLiteStore
from .tls import ensure_self_signed, server_context, server_name

log = logging.getLogger("posthouse")


def open_store(config: Config) -> SQLiteStore:
    return SQLiteStore(config.data_dir, fsync=config.fsync, quota_storage=config.quota_storage,
                       quota_messages=config.quota_messages)


def build_context(config: Config) -> ServerContext:
    os.makedirs(config.data_dir, exist_ok=True)
    service = StoreService(open_store(config), config.parse_processes, config.store_process)
    cert, key = config.tls_cert, config.tls_key
    if not cert:
        cert, key = config.path("tls/cert.pem"), config.path("tls/key.pem")
        ensure_self_signed(cert, key, server_name(config.hostname))
    tls = server_context(cert, key)
    # One deliverer for every way mail arrives, and the queue for mail that
    # leaves; each needs the other (bounces are delivered, vacation replies queued).
    deliverer = Deliverer(service, config)
    if config.delivery_journal and hasattr(service.store, "file_arrival"):
        deliverer.arrivals = Arrivals(deliverer, Journal(config.path("arrivals"), fsync=config.fsync))
    queue = OutboundQueue(service, config, deliverer)
    deliverer.queue = queue
    return ServerContext(config, service, MailboxRegistry(service),
                         Authenticator(service, config.failure_delay,
                                       cache_ttl=config.auth_cache_ttl), tls, deliverer, queue)


async def start_arrivals(ctx: ServerContext) -> None:
    """Mail accepted before the last stop and not yet filed is filed first."""
    if ctx.deliverer.arrivals is not None:
        await ctx.deliverer.arrivals.start()


async def stop_arrivals(ctx: ServerContext) -> None:
    """After the listeners that deliver: what they accepted is filed."""
    if ctx.deliverer.arrivals is not None:
        await ctx.deliverer.arrivals.close()


async def serve(config: Config, ready=None) -> None:
    ctx = build_context(config)
    await start_arrivals(ctx)
    server = ImapServer(ctx)
    await server.start()
    log.info("IMAP listening on %s ports %s", config.imap_host, server.ports)
    lmtp = LmtpServer(ctx)
    await lmtp.start()
    if config.lmtp_port is not None or config.lmtp_socket:
        log.info("LMTP listening on %s", ", ".join(
            [f"{config.lmtp_host} port {p}" for p in lmtp.ports] + [config.lmtp_socket or ""]).strip(", "))
    smtp = SmtpServer(ctx)
    await smtp.start()
    if config.smtp_port is not None:
        log.info("SMTP listening on %s port %s for %s", config.smtp_host, smtp.ports,
                 ", ".join(config.domains) or "no domains (set domains in the config)")
    pop3 = Pop3Server(ctx)
    await pop3.start()
    if pop3.ports:
        log.info("POP3 listening on %s ports %s", config.pop3_host, pop3.ports)
    queue = ctx.queue
    queue.start()
    submission = SubmissionServer(ctx)
    await submission.start()
    if submission.ports:
        log.info("Submission listening on %s ports %s; relay: %s", config.submission_host, submission.ports,
                 f"{config.relay_host}:{config.relay_port}" if config.relay_host else "none (local mail only)")
    sieve = ManageSieveServer(ctx)
    await sieve.start()
    if sieve.ports:
        log.info("ManageSieve listening on %s port %s", config.managesieve_host, sieve.ports)
    if ready is not None:
        ready(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass    # not the main thread (the tests run the server on one): stopped by server.close()
    try:
        await stop.wait()
    finally:
        await sieve.close()
        await submission.close()
        await queue.close()
        await pop3.close()
        await smtp.close()
        await lmtp.close()
        await stop_arrivals(ctx)
        await server.close()
        ctx.authenticator.close()
        ctx.service.close()


def run(config: Config) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(config))
