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
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Callable

log = logging.getLogger("posthouse.store")

_HEADER = struct.Struct(">Q")
MAX_BATCH = 128
IDLE_AFTER = 0.2        # seconds without calls before deferred work runs


class StoreProcessDied(Exception):
    """The store process ended while a call was under way or waiting."""


def _frame(obj) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            return None
        got += k
    return bytes(buf)


def _recv_frame(sock: socket.socket):
    head = _recv_exact(sock, _HEADER.size)
    if head is None:
        return None
    body = _recv_exact(sock, _HEADER.unpack(head)[0])
    if body is None:
        return None
    return pickle.loads(body)


def _portable(result: tuple) -> tuple:
    """A reply item that pickles: an exception that won't is sent as its text."""
    try:
        pickle.dumps(result[2], protocol=pickle.HIGHEST_PROTOCOL)
        return result
    except Exception:
        value = result[2]
        if isinstance(value, BaseException):
            return (result[0], False, RuntimeError(f"{type(value).__name__}: {value}"))
        return (result[0], False, RuntimeError(f"result of type {type(value).__name__} can't be sent"))


class _Child:
    """One store process and our end of its socket, with the thread that reads its replies."""

    def __init__(self, spec: str, on_reply: Callable, on_end: Callable):
        parent, child = socket.socketpair()
        for sock in (parent, child):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        env = dict(os.environ)
        # The child imports this package from where the server did, installed or not.
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "posthouse.store.process", str(child.fileno()), spec],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, env=env)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        self.sock = parent
        self.ended = False
        self._on_reply = on_reply
        self._on_end = on_end
        self.receiver = threading.Thread(target=self._receive, name="posthouse-store-replies", daemon=True)
        self.receiver.start()

    def _receive(self) -> None:
        why = "the store process ended"
        try:
            while True:
                replies = _recv_frame(self.sock)
                if replies is None:
                    break
                self._on_reply(replies)
        except (OSError, pickle.UnpicklingError, EOFError) as e:
            why = f"the store process's replies broke off: {e}"
        self.ended = True
        self._on_end(self, why)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.kill()     # the receiver sees the end and fails whatever waits

    def kill(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()

    def stop(self, timeout: float = 30) -> None:
        """Close our end: the child finishes its batch, sees end of input and exits."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.error("the store process did not stop; killing it")
            self.proc.kill()
            self.proc.wait()
        self.receiver.join(timeout=5)
        self.sock.close()


class StoreProcess:
    """The server's end: submit() sends a call, the reply settles its future.

    A child that dies fails the calls it had (StoreProcessDied: the caller
    can't know whether a change committed), and the next call starts a new one.
    """

    RESTART_AFTER = 1.0     # seconds: a child that keeps dying is not restarted in a tight loop

    def __init__(self, store_class: type, open_args: dict):
        self._spec = json.dumps({"module": store_class.__module__, "class": store_class.__qualname__,
                                 "args": open_args})
        self._lock = threading.Lock()
        self._outgoing: list[bytes] = []
        self._ids = itertools.count()
        self._waiting: dict[int, tuple[asyncio.Future, asyncio.AbstractEventLoop, _Child]] = {}
        self._stopping = False
        self._started_at = time.monotonic()
        self._child = _Child(self._spec, self._on_reply, self._on_end)

    @property
    def pid(self) -> int:
        return self._child.proc.pid

    def submit(self, method: str, args: tuple, durable: bool = True) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        call_id = next(self._ids)
        frame = _frame((call_id, method, args, durable))    # an argument that won't pickle raises here
        with self._lock:
            child = self._live_child()
            if child is None:
                future.set_exception(StoreProcessDied("the store process died and is not restarted yet"))
                return future
            self._waiting[call_id] = (future, loop, child)
            # Calls made in one turn of the loop leave together: one write, one wake-up of the child.
            self._outgoing.append(frame)
            if len(self._outgoing) == 1:
                loop.call_soon(self._send)
        return future

    def _live_child(self) -> _Child | None:
        if self._stopping:
            return None
        if self._child.ended or self._child.proc.poll() is not None:
            if time.monotonic() - self._started_at < self.RESTART_AFTER:
                return None
            log.warning("starting a new store process")
            self._outgoing.clear()
            self._started_at = time.monotonic()
            self._child = _Child(self._spec, self._on_reply, self._on_end)
        return self._child

    def _send(self) -> None:
        with self._lock:
            data = b"".join(self._outgoing)
            self._outgoing.clear()
            child = self._child
        if data:
            child.send(data)

    def _on_reply(self, replies) -> None:
        for call_id, ok, value in replies:
            waiting = self._waiting.pop(call_id, None)
            if waiting is not None:
                _settle_from_thread(waiting[1], waiting[0], ok, value)

    def _on_end(self, child: _Child, why: str) -> None:
        if not self._stopping:
            log.error("%s (exit status %s)", why, child.proc.poll())
        with self._lock:
            lost = [k for k, (_f, _l, c) in self._waiting.items() if c is child]
            for call_id in lost:
                future, loop, _c = self._waiting.pop(call_id)
                _settle_from_thread(loop, future, False, StoreProcessDied(why))

    def stop(self) -> None:
        self._send()
        with self._lock:
            self._stopping = True
        self._child.stop()


def _settle_from_thread(loop, future, ok, value) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, ok, value)
    except RuntimeError:
        pass    # that loop is closed: nobody waits any more


def _settle(future: asyncio.Future, ok: bool, value) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


# -- the child ------------------------------------------------------------------

class _Requests:
    """Request frames from the server, read as they come (select + recv, no blocking past a timeout)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
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
            data = self.sock.recv(1 << 20)
            if data:
                self.buf += data
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
    run_batch = store.run_batch
    idle_work = getattr(store, "idle_work", None)
    busy_work = getattr(store, "busy_work", None)
    idle_pending = idle_work is not None
    last_call = time.monotonic()
    requests = _Requests(sock)
    while True:
        if idle_pending:
            # Deferred work waits until calls have stopped for a moment, then
            # goes on chunk after chunk for as long as nothing else is asked.
            wait = IDLE_AFTER - (time.monotonic() - last_call)
            if not requests.wait(max(0.0, wait)):
                try:
                    idle_pending = idle_work()
                except Exception:
                    log.exception("deferred store work failed")
                    idle_pending = False
                continue
        requests.wait(None)
        request = requests.take()
        if request is None:
            return
        batch = [request]
        while len(batch) < MAX_BATCH and requests.wait(0):
            request = requests.take()
            if request is None:
                break
            batch.append(request)
        durable = any(d for _i, _m, _a, d in batch)
        try:
            results = run_batch([_call(store, method, args) for _i, method, args, _d in batch], durable)
        except BaseException as e:      # the commit itself failed: every call in the batch did
            results = [(False, e)] * len(batch)
        replies = [(call_id, ok, value) for (call_id, _m, _a, _d), (ok, value) in zip(batch, results)]
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
        idle_pending = idle_work is not None
        last_call = time.monotonic()
        if busy_work is not None:
            try:
                busy_work()
            except Exception:
                log.exception("deferred store work failed")


def _call(store, method: str, args: tuple):
    def call():
        if method.startswith("_"):
            raise ValueError(f"{method} is not a store call")
        return getattr(store, method)(*args)
    return call


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the server stops us by closing the socket
    fd = int(argv[0])
    spec = json.loads(argv[1])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s store[%(process)d] %(levelname)s %(message)s")
    module = __import__(spec["module"], fromlist=[spec["class"]])
    store = getattr(module, spec["class"])(**spec["args"])
    sock = socket.socket(fileno=fd)
    try:
        _serve(sock, store)
    finally:
        store.close()
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1:])
