"""Prometheus metrics on an admin port, off unless `[metrics] port` is set.

Each server has a registry of its own (tests run several servers in one
process). The hooks on the hot paths are one function call each: an IMAP
command's and a store call's time go into a histogram whose child per name
is looked up once and kept; deliveries are counted by result. Figures that
exist already (open sessions, failed logins, the journal's backlog, the
outbound queue) are read when scraped instead of being kept twice.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .status import PROTOCOLS

log = logging.getLogger("posthouse.admin")

# Seconds: from well under a millisecond (a FETCH FLAGS from memory) to slow.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    def __init__(self, ctx, started: float | None = None):
        self.ctx = ctx
        self.started = started if started is not None else time.time()
        self.registry = CollectorRegistry()
        self.commands = Histogram("posthouse_imap_command_seconds", "IMAP commands by name, and their time",
                                  ["command"], registry=self.registry, buckets=BUCKETS)
        self.store_calls = Histogram("posthouse_store_call_seconds", "Store calls by method, and their time",
                                     ["method"], registry=self.registry, buckets=BUCKETS)
        self.deliveries = Counter("posthouse_deliveries", "Deliveries to a recipient, by result "
                                  "(delivered, deferred: 4xx, refused: 5xx)", ["result"], registry=self.registry)
        self.registry.register(_Figures(ctx, self.started))
        self._command_children: dict[str, object] = {}
        self._store_children: dict[str, object] = {}
        from ..imap.commands import COMMANDS
        self._known_commands = frozenset(COMMANDS)
        self._http = None

    # -- hooks (app.py installs them) -------------------------------------------------
    def install(self) -> None:
        self.ctx.command_timer = self.imap_command
        self.ctx.service.call_timer = self.store_call
        self.ctx.deliverer.on_results = self.delivered

    def imap_command(self, name: str, seconds: float) -> None:
        child = self._command_children.get(name)
        if child is None:
            # Names clients make up are not labels of their own (unbounded).
            label = name if name in self._known_commands else "other"
            child = self._command_children[name] = self.commands.labels(label)
        child.observe(seconds)

    def store_call(self, method: str, seconds: float) -> None:
        child = self._store_children.get(method)
        if child is None:
            child = self._store_children[method] = self.store_calls.labels(method)
        child.observe(seconds)

    def delivered(self, results) -> None:
        for result in results:
            code = result.code
            self.deliveries.labels("delivered" if code < 400 else "deferred" if code < 500 else "refused").inc()

    # -- the endpoint --------------------------------------------------------------------
    def start(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (a thread of prometheus_client's); the port."""
        self._http, _thread = start_http_server(port, addr=host, registry=self.registry)
        return self._http.server_port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class _Figures:
    """What is read when scraped (on the endpoint's thread)."""

    def __init__(self, ctx, started: float):
        self.ctx = ctx
        self.started = started

    def collect(self):
        ctx = self.ctx
        sessions = GaugeMetricFamily("posthouse_sessions", "Open connections by protocol", labels=["protocol"])
        counts = dict.fromkeys(PROTOCOLS, 0)
        counts.update(dict(getattr(ctx.limits, "sessions", None) or {}))
        for protocol, count in sorted(counts.items()):
            sessions.add_metric([protocol], count)
        yield sessions
        yield CounterMetricFamily("posthouse_auth_failures", "Failed logins (every protocol)",
                                  value=getattr(ctx.authenticator, "failures", 0))
        arrivals = getattr(ctx.deliverer, "arrivals", None)
        yield GaugeMetricFamily("posthouse_journal_backlog", "Mail accepted and not filed yet",
                                value=arrivals.backlog if arrivals is not None else 0)
        yield GaugeMetricFamily("posthouse_uptime_seconds", "Seconds since the server started",
                                value=time.time() - self.started)
        store = ctx.service.store
        if hasattr(store, "figures"):       # PostgreSQL: the database's figures, and the other nodes'
            yield from _postgres(ctx)
            return
        try:
            length, oldest = _queue(ctx.config.data_dir)
        except sqlite3.Error as e:
            log.warning("metrics: the outbound queue could not be read: %s", e)
            return
        yield GaugeMetricFamily("posthouse_queue_length", "Messages in the outbound queue", value=length)
        yield GaugeMetricFamily("posthouse_queue_oldest_seconds", "Age of the oldest message in the outbound queue",
                                value=time.time() - oldest if oldest is not None else 0)


def _postgres(ctx):
    """The queue, the store's counts and the cluster's notifications, from a PostgreSQL store."""
    try:
        figures = ctx.service.store.reading().figures()
    except Exception as e:
        log.warning("metrics: the PostgreSQL store could not be read: %s", e)
        return
    queue = figures["queue"]
    yield GaugeMetricFamily("posthouse_queue_length", "Messages in the outbound queue", value=queue["length"])
    yield GaugeMetricFamily("posthouse_queue_oldest_seconds", "Age of the oldest message in the outbound queue",
                            value=time.time() - queue["oldest"] if queue["oldest"] is not None else 0)
    yield GaugeMetricFamily("posthouse_store_messages", "Messages in the store (every node's)",
                            value=figures["messages"])
    yield GaugeMetricFamily("posthouse_store_mailboxes", "Mailboxes in the store", value=figures["mailboxes"])
    yield GaugeMetricFamily("posthouse_store_users", "Users in the store", value=figures["users"])
    yield GaugeMetricFamily("posthouse_store_database_bytes", "Size of the PostgreSQL database",
                            value=figures["bytes"])
    bus = getattr(ctx.service, "bus", None)
    if bus is not None:
        yield CounterMetricFamily("posthouse_cluster_notifications", "Change notifications heard from the nodes",
                                  value=bus.heard)
        yield CounterMetricFamily("posthouse_cluster_wakes", "Wake-ups for other nodes' changes handed to sessions",
                                  value=bus.woken)
        yield GaugeMetricFamily("posthouse_cluster_listening", "1 while listening for other nodes' changes",
                                value=1 if bus.listening else 0)


def _queue(data_dir: str) -> tuple[int, float | None]:
    db = sqlite3.connect(f"file:{os.path.join(data_dir, 'index.sqlite3')}?mode=ro", uri=True)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        return db.execute("SELECT count(*), min(created) FROM outbound").fetchone()
    finally:
        db.close()
