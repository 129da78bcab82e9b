"""The database thread's work in a process of its own.

The server's sessions and its database calls would otherwise share one GIL:
under load the event loop and the database thread each wanted about half of
it, and neither got a core. Here one child process owns the write connection
and runs queued calls in group commits (one transaction, one fsync, a
savepoint per call), exactly as the database thread does; the server sends it
(method, arguments) and gets back the results, each only after its commit.

Wire format, both ways: a frame is an 8-byte big-endian length and a pickle.
Requests are (id, method, args, durable); a reply frame is a list of
(id, ok, result or exception) for one batch. The child reads requests until
none is waiting (up to MAX_BATCH), runs them, and answers the batch in one
frame. End of input (the server closed its end, or died) stops the child
after the batch it is running.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
import time

from ..lifeline import die_with_parent, ignore_stop_signals, stop_signals_held
from .batches import BatchRunner, settle

log = logging.getLogger("posthouse.store")

_HEADER = struct.Struct(">Q")
MAX_BATCH = 128
RECV_CHUNK = 256 * 1024


class StoreProcessDied(Exception):
    """The store process ended while a call was under way or waiting."""


# A write-behind STORE from a worker (StoreService.send_behind): store_flags,
# counted done in shared memory once its changes are sent to every worker.
WRITE_BEHIND = "@store_flags_behind"
# Filing from a worker's arrivals journal (StoreService.file_arrivals): args
# (user ids, *file_arrivals' args); the users' ARRIVALS counted finished in
# shared memory once the changes are sent to every worker, if it worked.
FILE_ARRIVALS = "@file_arrivals"

def _frame(obj) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _portable(result: tuple) -> tuple:
    """A reply item that pickles and unpickles: an exception that won't (one
    whose constructor wants other arguments) is sent as its text."""
    try:
        data = pickle.dumps(result[2], protocol=pickle.HIGHEST_PROTOCOL)
        if not result[1]:
            pickle.loads(data)
        return result
    except Exception:
        value = result[2]
        if isinstance(value, BaseException):
            return (result[0], False, RuntimeError(f"{type(value).__name__}: {value}"))
        return (result[0], False, RuntimeError(f"result of type {type(value).__name__} can't be sent"))


class _Child:
    """One store process and our end of its socket (non-blocking, read on the event loop)."""

    def __init__(self, spec: str):
        parent, child = socket.socketpair()
        for sock in (parent, child):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        env = dict(os.environ)
        # The child imports this package from where the server did, installed or not.
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        try:
            with stop_signals_held():
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "posthouse.store.process", str(child.fileno()), spec, str(os.getpid())],
                    pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, env=env)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        parent.setblocking(False)
        self.sock = parent
        self.ended = False
        self.inbox = bytearray()        # reply bytes not yet a whole frame
        self.outbox = bytearray()       # request bytes the socket has not taken yet
        self.waiting_to_write = False   # the loop watches for room in the socket
        self.answered = False           # it sent a reply: it started and worked

    def kill(self) -> None:
        """Kill it and wait for its end: no commit of its can come after this."""
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.error("the store process %d does not end after SIGKILL", self.proc.pid)

    def stop(self, timeout: float = 30) -> None:
        """Send what is left, then close our end: the child finishes its batch,
        sees end of input and exits."""
        try:
            if self.outbox and not self.ended:
                self.sock.setblocking(True)
                self.sock.sendall(self.outbox)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.error("the store process did not stop; killing it")
            self.proc.kill()
            self.proc.wait()
        self.sock.close()


class StoreProcess:
    """The server's end: submit() sends a call, the reply settles its future.

    The socket is read and written by the event loop itself (no thread in
    between: a reply costs one wake-up, not two and a GIL hand-off). Calls
    from another thread's loop while this one runs are passed over to it.
    A child that dies fails the calls it had (StoreProcessDied: the caller
    can't know whether a change committed), and the next call starts a new one.
    Changes it committed whose replies died with it were never published: on
    its death, on_death() is called (at once, before those callers hear of
    it), so whoever keeps state in memory reads it again from the database.
    """

    # A child that dies having answered nothing (or within its first second)
    # is restarted after a delay that doubles, so one that can't start is not
    # restarted in a tight loop; one that did its work is restarted at once.
    RESTART_AFTER = 1.0
    RESTART_DELAY_MIN = 0.05
    RESTART_DELAY_MAX = 2.0

    def __init__(self, store_class: type, open_args: dict):
        self._spec = json.dumps({"module": store_class.__module__, "class": store_class.__qualname__,
                                 "args": open_args})
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self._late_flush_scheduled = False
        self._stopping = False
        self._started_at = time.monotonic()
        self._restart_at = 0.0          # a dead child is replaced from then on
        self._restart_delay = 0.0
        self.on_death = None            # called when a child dies (see the class's notes)
        # Shared by workers (store/shared_writer.py): what the others committed,
        # on_remote(kind, value), in order with our replies; and per call, a
        # publisher called with its result as it comes, before anything after it.
        self.on_remote = None
        self._publishers: dict[int, object] = {}
        self._child = self._first_child()
        # recv() into one buffer kept for the purpose: recv(n) would allocate n bytes every time.
        self._recv_buf = memoryview(bytearray(RECV_CHUNK))

    @property
    def pid(self) -> int:
        return self._child.proc.pid

    POST_DELAY = 0.02   # seconds a posted call may wait for company before it is sent alone

    def _first_child(self):
        return _Child(self._spec)

    def submit(self, method: str, args: tuple, durable: bool = True, soon: bool = True,
               publish=None) -> asyncio.Future:
        """Send a call; its future settles with the reply. soon=False: the call
        may wait up to POST_DELAY to leave with the next one (it costs the
        loop and the child no wake-up of its own)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self._loop is not None and self._loop.is_running():
                # Another thread's loop owns the socket: the call is made there.
                return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                    self._submit_there(method, args, durable, soon, publish), self._loop))
            self._bind(loop)
        future = loop.create_future()
        child = self._live_child()
        if child is None:
            future.set_exception(StoreProcessDied("the store process died and is not restarted yet"))
            return future
        call_id = next(self._ids)
        child.outbox += _frame((call_id, method, args, durable))    # an argument that won't pickle raises here
        self._waiting[call_id] = future
        if publish is not None:
            self._publishers[call_id] = publish
        if not soon:
            if not self._flush_scheduled and not self._late_flush_scheduled:
                self._late_flush_scheduled = True
                loop.call_later(self.POST_DELAY, self._late_flush)
        elif not self._flush_scheduled:
            # Calls made in one turn of the loop leave together: one write, one wake-up of the child.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    async def _submit_there(self, method, args, durable, soon, publish=None):
        return await self.submit(method, args, durable, soon, publish)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        old = self._loop
        if old is not None and not old.is_closed():
            old.remove_reader(self._child.sock.fileno())
            old.remove_writer(self._child.sock.fileno())
        self._loop = loop
        self._flush_scheduled = False
        self._late_flush_scheduled = False
        if not self._child.ended:
            loop.add_reader(self._child.sock.fileno(), self._readable, self._child)
            self._child.waiting_to_write = bool(self._child.outbox)
            if self._child.outbox:
                loop.add_writer(self._child.sock.fileno(), self._writable, self._child)

    def _live_child(self) -> _Child | None:
        if self._stopping:
            return None
        child = self._child
        if not child.ended and child.proc.poll() is not None:
            self._ended(child, f"the store process ended (exit status {child.proc.returncode})")
        if child.ended:
            if time.monotonic() < self._restart_at:
                return None
            log.warning("starting a new store process")
            child.sock.close()
            self._started_at = time.monotonic()
            self._child = child = _Child(self._spec)
            self._loop.add_reader(child.sock.fileno(), self._readable, child)
        return child

    def _late_flush(self) -> None:
        self._late_flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        child = self._child
        if child.outbox and not child.ended:
            self._writable(child)
            if child.outbox and not child.ended and not child.waiting_to_write:
                child.waiting_to_write = True
                self._loop.add_writer(child.sock.fileno(), self._writable, child)

    def _writable(self, child: _Child) -> None:
        try:
            sent = child.sock.send(child.outbox)
        except BlockingIOError:
            return
        except OSError as e:
            self._ended(child, f"the store process is gone: {e}")
            return
        del child.outbox[:sent]
        if not child.outbox and child.waiting_to_write:
            child.waiting_to_write = False
            self._loop.remove_writer(child.sock.fileno())

    def _readable(self, child: _Child) -> None:
        buf = self._recv_buf
        ended = None        # why the replies ended, once every whole one that came is taken
        try:
            while True:
                n = child.sock.recv_into(buf)
                if not n:
                    ended = f"the store process ended (exit status {child.proc.poll()})"
                    break
                child.inbox += buf[:n]
                if n < len(buf):
                    break
        except BlockingIOError:
            pass
        except OSError as e:
            ended = f"the store process's replies broke off: {e}"
        self._take_replies(child)
        if ended is not None:
            self._ended(child, ended)

    def _take_replies(self, child: _Child) -> None:
        inbox = child.inbox
        while len(inbox) >= _HEADER.size:
            n = _HEADER.unpack_from(inbox)[0]
            if len(inbox) < _HEADER.size + n:
                break
            try:
                replies = pickle.loads(memoryview(inbox)[_HEADER.size:_HEADER.size + n])
            except Exception as e:
                self._ended(child, f"a reply from the store process that can't be read: {e!r}")
                return
            del inbox[:_HEADER.size + n]
            child.answered = True
            for call_id, ok, value in replies:
                if call_id < 0:
                    self._remote(call_id, value)
                    continue
                publish = self._publishers.pop(call_id, None) if self._publishers else None
                if publish is not None and ok:
                    try:
                        publish(value)
                    except Exception:
                        log.exception("publishing the events of a store call")
                future = self._waiting.pop(call_id, None)
                if future is not None:
                    settle(future, ok, value)

    def _ended(self, child: _Child, why: str) -> None:
        if child.ended:
            return
        child.ended = True
        if not self._stopping:
            log.error("%s", why)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(child.sock.fileno())
            self._loop.remove_writer(child.sock.fileno())
        child.kill()
        child.outbox.clear()
        now = time.monotonic()
        if child.answered or now - self._started_at >= self.RESTART_AFTER:
            self._restart_delay = 0.0
        else:
            self._restart_delay = min(max(self.RESTART_DELAY_MIN, 2 * self._restart_delay),
                                      self.RESTART_DELAY_MAX)
        self._restart_at = now + self._restart_delay
        if not self._stopping and self.on_death is not None:
            # Before the callers below hear of it: the state kept in memory
            # is marked for a new read before anything else is published.
            try:
                self.on_death()
            except Exception:
                log.exception("after the store process died")
        waiting, self._waiting = self._waiting, {}
        self._publishers.clear()
        for future in waiting.values():
            settle(future, False, StoreProcessDied(why))

    def _remote(self, kind: int, value) -> None:
        if self.on_remote is not None:
            try:
                self.on_remote(kind, value)
            except Exception:
                log.exception("applying what another worker committed")

    def poll(self) -> None:
        """Take at once what has come from the store (a session is about to run
        a command: changes committed before it was sent are applied first)."""
        child = self._child
        if self._loop is not None and not child.ended:
            self._readable(child)

    def stop(self) -> None:
        self._stopping = True
        child = self._child
        if self._loop is not None and not self._loop.is_closed() and not child.ended:
            self._loop.remove_reader(child.sock.fileno())
            self._loop.remove_writer(child.sock.fileno())
        child.stop()


class _NoProcess:
    """What _Child.proc is asked, for a store process this worker did not start."""
    pid = None
    returncode = None

    def poll(self):
        return None


class _Attached:
    """Our end of a connection to the store process shared by the workers
    (store/shared_writer.py), which the supervisor started and owns."""

    def __init__(self, sock: socket.socket):
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        sock.setblocking(False)
        self.sock = sock
        self.proc = _NoProcess()
        self.ended = False
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.waiting_to_write = False
        self.answered = False

    def kill(self) -> None:
        pass        # not ours to kill: the supervisor restarts it (and us)

    def stop(self, timeout: float = 30) -> None:
        try:
            if self.outbox and not self.ended:
                self.sock.setblocking(True)
                self.sock.settimeout(timeout)
                self.sock.sendall(self.outbox)
        except OSError:
            pass
        self.sock.close()


class SharedStoreConnection(StoreProcess):
    """A worker's connection to the shared store process: as StoreProcess,
    but never starts one. When the store process dies, the calls under way
    fail as with StoreProcess, and so do new ones until the supervisor has
    started another and hands us our connection to it (attach())."""

    def __init__(self, sock: socket.socket, wake_watch=None):
        self._sock = sock
        # store/wake_counters.py: poll() reads the socket only when frames of
        # others' changes came since the last look (None: always).
        self._wake_watch = wake_watch
        self.on_lost = None         # called when the connection ends
        self.on_attached = None     # called when a new one is in place
        super().__init__(object, {})

    def attach(self, sock: socket.socket) -> None:
        """A connection to the new store process, from the supervisor."""
        old = self._child
        if not old.ended:
            self._ended(old, "the store process was replaced")
        old.stop(0)
        self._child = _Attached(sock)
        self._started_at = time.monotonic()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.add_reader(self._child.sock.fileno(), self._readable, self._child)
        if self.on_attached is not None:
            self.on_attached()

    def _first_child(self):
        return _Attached(self._sock)

    def poll(self) -> None:
        watch = self._wake_watch
        if watch is None or watch.changed():
            super().poll()

    @property
    def pid(self) -> int:
        return 0

    def _live_child(self):
        if self._stopping or self._child.ended:
            return None
        return self._child

    def _ended(self, child, why: str) -> None:
        was = child.ended
        super()._ended(child, why)
        if not was and not self._stopping and self.on_lost is not None:
            self.on_lost()


# -- the child ------------------------------------------------------------------

class _Requests:
    """Request frames from the server, read as they come (select + recv, no blocking past a timeout)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self._chunk = memoryview(bytearray(RECV_CHUNK))
        self.eof = False

    def _complete(self) -> bool:
        buf = self.buf
        return len(buf) >= _HEADER.size and len(buf) >= _HEADER.size + _HEADER.unpack_from(buf)[0]

    def wait(self, timeout: float | None) -> bool:
        """True once a whole request, or the end of input, is here; False after timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._complete() and not self.eof:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _w, _x = select.select([self.sock], [], [], remaining)
            if not ready:
                return False
            n = self.sock.recv_into(self._chunk)
            if n:
                self.buf += self._chunk[:n]
            else:
                self.eof = True
        return True

    def take(self):
        """The next request (wait() said it is here), or None at the end of input."""
        if not self._complete():
            return None
        n = _HEADER.unpack_from(self.buf)[0]
        try:
            request = pickle.loads(memoryview(self.buf)[_HEADER.size:_HEADER.size + n])
            call_id, method, args, durable = request
            if not isinstance(method, str) or not isinstance(args, tuple):
                raise ValueError("not a call")
        except Exception as e:
            # Out of step with the server: nothing after this can be trusted. Stop;
            # the server fails what it sent and starts a new store process.
            log.error("a request that is not one (%s): stopping", e)
            self.eof = True
            self.buf.clear()
            return None
        del self.buf[:_HEADER.size + n]
        return request


def _serve(sock: socket.socket, store) -> None:
    runner = BatchRunner(store)
    requests = _Requests(sock)
    while True:
        if not requests.wait(runner.idle_wait()):
            runner.idle()
            continue
        request = requests.take()
        if request is None:
            return
        batch = [request]
        while len(batch) < MAX_BATCH and requests.wait(0):
            request = requests.take()
            if request is None:
                break
            batch.append(request)
        results = runner.run([_call(store, method, args) for _i, method, args, _d in batch],
                             any(d for _i, _m, _a, d in batch))
        replies = [(call_id, ok, value) for (call_id, _m, _a, _d), (ok, value) in zip(batch, results)]
        if not all(ok for _i, ok, _v in replies):
            replies = [_portable(r) for r in replies]
        try:
            frame = _frame(replies)
        except Exception:
            frame = _frame([_portable(r) for r in replies])
        try:
            sock.sendall(frame)
        except OSError:
            return
        if request is None:
            return
        runner.between_batches()


def _call(store, method: str, args: tuple):
    def call():
        if method.startswith("_"):
            raise ValueError(f"{method} is not a store call")
        return getattr(store, method)(*args)
    # The rows the call will lock, for a store that locks a batch's rows in
    # one order before running it (the PostgreSQL store: see its run_batch).
    locks_of = getattr(store, "rows_locked_by", None)
    if locks_of is not None:
        call.locks = locks_of(method, args)
    call.method = method
    return call


def main(argv: list[str]) -> None:
    shared = bool(argv) and argv[0] == "--shared"     # one store process for several workers (shared_writer.py)
    if shared:
        argv = argv[1:]
    if len(argv) > 2:
        die_with_parent(int(argv[2]))   # (the end of input may come late: a long batch, deferred work)
    ignore_stop_signals()       # the server stops us by closing the socket (see lifeline)
    # Each call wakes us; a normal task woken so would preempt the server's
    # event loop on its core (measured: the loop's send to us then cost it
    # ~60 us a call). A batch task runs on an idle core or waits its turn.
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    fd = int(argv[0])
    spec = json.loads(argv[1])
    if os.environ.get("POSTHOUSE_LOG_FORMAT") == "json":     # the server's log_format (logfmt.configure_logging)
        from ..logfmt import configure_logging
        configure_logging("WARNING", "json")
    else:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s store[%(process)d] %(levelname)s %(message)s")
    module = __import__(spec["module"], fromlist=[spec["class"]])
    store = getattr(module, spec["class"])(**spec["args"])
    sock = socket.socket(fileno=fd)
    try:
        if shared:
            from .shared_writer import serve_shared
            from .wake_counters import WakeCounters
            serve_shared(sock, store, WakeCounters(int(argv[3])) if len(argv) > 3 else None)
        else:
            _serve(sock, store)
    finally:
        store.close()
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1:])
