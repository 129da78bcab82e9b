"""The running server's admin socket (data_dir/admin.sock, for its owner
only) and `posthouse status`, which asks it how the server is doing.

One request per connection, one JSON line each way:
  {"op": "status"}        -> the status document (see status_document)
  {"op": "hold-journal"}  -> {"ok": true} once no journal segment will be
                             dropped until this connection closes (backup.py)
  {"op": "changed", "mailboxes": [id, ...]}
                          -> {"ok": true} once the server has been told that
                             another process (`posthouse import`) changed
                             those mailboxes: open ones are read again
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
import time

log = logging.getLogger("posthouse.admin")

ADMIN_SOCKET = "admin.sock"
PROTOCOLS = ("imap", "pop3", "lmtp", "smtp", "submission", "managesieve")


class NotRunning(Exception):
    """No server answers on the data directory's admin socket."""


# -- in the server -----------------------------------------------------------------------------
class AdminSocket:
    def __init__(self, ctx, started: float | None = None):
        self.ctx = ctx
        self.started = started if started is not None else time.time()
        self.path = ctx.config.path(ADMIN_SOCKET)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()    # open connections, ended by close()

    async def start(self) -> None:
        # The server holds serve.lock: a socket file here is a dead server's.
        if os.path.exists(self.path):
            os.unlink(self.path)
        if len(os.fsencode(os.path.abspath(self.path))) > 100:
            log.warning("admin socket not started: its path is too long for a unix socket (%s); "
                        "`posthouse status` and `posthouse backup` won't reach this server", self.path)
            return
        old = os.umask(0o177)       # made 0600: the status is the server owner's business
        try:
            self._server = await asyncio.start_unix_server(self._serve, self.path)
        finally:
            os.umask(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()      # a backup's hold, say: its journal is let go
            await self._server.wait_closed()
            self._server = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            try:
                request = json.loads(line)
                op = request.get("op") if isinstance(request, dict) else None
            except ValueError:
                op = None
            if op == "status":
                await self._answer(writer, await status_document(self.ctx, self.started))
            elif op == "hold-journal":
                await self._hold_journal(reader, writer)
            elif op == "changed":
                await self._changed(writer, request.get("mailboxes"))
            else:
                await self._answer(writer, {"error": "unknown request"})
        except (asyncio.TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("admin socket request failed")
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _answer(writer, document: dict) -> None:
        writer.write(json.dumps(document).encode() + b"\n")
        await writer.drain()

    MAX_CHANGED = 10_000       # mailbox ids in one "changed" request

    async def _changed(self, writer, mailboxes) -> None:
        if (not isinstance(mailboxes, list) or len(mailboxes) > self.MAX_CHANGED
                or not all(isinstance(m, int) and not isinstance(m, bool) for m in mailboxes)):
            await self._answer(writer, {"error": "mailboxes must be a list of mailbox ids"})
            return
        self.ctx.service.changes_lost(set(mailboxes), why="an admin command changed mailboxes")
        await self._answer(writer, {"ok": True})

    async def _hold_journal(self, reader, writer) -> None:
        arrivals = getattr(self.ctx.deliverer, "arrivals", None)
        if arrivals is None:
            await self._answer(writer, {"ok": True})
            await reader.read()
            return
        try:
            await arrivals.hold_segments()      # (counted at once: released below even if cut short)
            await self._answer(writer, {"ok": True})
            await reader.read()         # until the backup closes the connection (or dies)
        finally:
            arrivals.release_segments()


async def status_document(ctx, started: float) -> dict:
    limits = ctx.limits
    sessions = dict.fromkeys(PROTOCOLS, 0)
    sessions.update(getattr(limits, "sessions", {}) if limits is not None else {})
    arrivals = getattr(ctx.deliverer, "arrivals", None)
    loop = asyncio.get_running_loop()
    if hasattr(ctx.service.store, "figures"):       # PostgreSQL: the figures of the database
        store = await loop.run_in_executor(None, postgres_figures, ctx.service)
    else:
        store = await loop.run_in_executor(None, store_figures, ctx.config.data_dir)
    return {
        "pid": getattr(ctx.service, "server_pid", None) or os.getpid(), "data_dir": os.path.abspath(ctx.config.data_dir),
        "uptime": round(time.time() - started, 1), "started": started,
        "sessions": sessions,
        "queue": store.pop("queue"),
        "journal": {"backlog": arrivals.backlog if arrivals is not None else 0,
                    "segments": len(arrivals.journal.segments) if arrivals is not None else 0,
                    "enabled": arrivals is not None},
        "store": store,
    }


def store_figures(data_dir: str, with_size: bool = True) -> dict:
    """Message and user counts, the outbound queue, and the data directory's size (a thread's work)."""
    db = sqlite3.connect(f"file:{os.path.join(data_dir, 'index.sqlite3')}?mode=ro", uri=True)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        messages = db.execute("SELECT count(*) FROM messages").fetchone()[0]
        users = db.execute("SELECT count(*) FROM users").fetchone()[0]
        length, oldest = db.execute("SELECT count(*), min(created) FROM outbound").fetchone()
    finally:
        db.close()
    figures = {"messages": messages, "users": users,
               "queue": {"length": length, "oldest": oldest,
                         "oldest_age": round(time.time() - oldest, 1) if oldest is not None else None}}
    if with_size:
        figures["bytes"] = directory_size(data_dir)
    return figures


def postgres_figures(service) -> dict:
    """store_figures' counterpart for a PostgreSQL store (a thread's work,
    on that thread's own connection), and what this node heard of the others."""
    figures = service.store.reading().figures()
    oldest = figures["queue"]["oldest"]
    figures["queue"]["oldest_age"] = round(time.time() - oldest, 1) if oldest is not None else None
    bus = getattr(service, "bus", None)
    if bus is not None:
        figures["cluster"] = {"origin": bus.origin, "notifications": bus.heard, "wakes": bus.woken,
                              "listening": bus.listening}
    return figures


def directory_size(path: str) -> int:
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass
    return total


# -- in the admin commands ---------------------------------------------------------------------
def admin_connect(data_dir: str, request: dict, timeout: float = 60) -> tuple[socket.socket, dict]:
    """Send request to the server on data_dir: the open connection and its
    answer (NotRunning if nobody answers, or the answer is an error)."""
    path = os.path.join(data_dir, ADMIN_SOCKET)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        answer = _read_line(sock)
    except (OSError, ValueError) as e:
        sock.close()
        raise NotRunning(str(e) or type(e).__name__) from None
    if not isinstance(answer, dict) or answer.get("error"):
        sock.close()
        raise NotRunning(str(answer.get("error") if isinstance(answer, dict) else answer))
    return sock, answer


def admin_request(data_dir: str, request: dict, timeout: float = 60) -> dict:
    sock, answer = admin_connect(data_dir, request, timeout)
    sock.close()
    return answer


def _read_line(sock: socket.socket):
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return json.loads(data)


def format_status(doc: dict) -> str:
    """The status document as a readable table."""
    rows = [("server", f"pid {doc['pid']}, up {_duration(doc['uptime'])}"),
            ("data directory", doc["data_dir"])]
    rows += [(f"sessions {name}", str(count)) for name, count in doc["sessions"].items()]
    queue = doc["queue"]
    oldest = f" (oldest {_duration(queue['oldest_age'])} old)" if queue.get("oldest_age") is not None else ""
    rows.append(("outbound queue", f"{queue['length']}{oldest}"))
    journal = doc["journal"]
    rows.append(("journal backlog", f"{journal['backlog']} not yet filed ({journal['segments']} segments)"
                 if journal["enabled"] else "journal off"))
    store = doc["store"]
    if store.get("kind") == "postgresql":
        rows.append(("store", f"PostgreSQL: {store['messages']} messages ({_size(store['message_bytes'])}) in "
                              f"{store['mailboxes']} mailboxes, {store['users']} users; database "
                              f"{_size(store['bytes'])}"))
        cluster = store.get("cluster")
        if cluster:
            rows.append(("cluster", f"node {cluster['origin']}, "
                                    f"{'listening' if cluster['listening'] else 'NOT listening'} for other nodes: "
                                    f"{cluster['notifications']} notifications heard, {cluster['wakes']} wake-ups"))
    else:
        rows.append(("store", f"{store['messages']} messages, {store['users']} users, {_size(store['bytes'])}"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
