"""The store process shared by several session processes (`workers = N`).

One process owns the write connection for all workers, as store/process.py
does for one: calls that queue up from any worker run together in one group
commit. Each worker has a connection of its own (a socketpair whose other
end the supervisor passes over the control socket, with the worker's
number). After a batch commits, every worker gets in one frame, in commit
order, the replies to its own calls and the events of the other workers'
changes: so a worker applies every change to a mailbox in the order the
store made them, whoever made it (no reordering across workers).

Frame items (call_id, ok, value), as store/process.py's, plus:
- (EVENTS, True, [events]): changes another worker committed;
- (RELAYED, True, message): a message another worker relayed (call "@relay":
  not a store call, just passed on in order, e.g. a failed login to count).

Events are found in a result as StoreService publishes them: a list of
events, (events, ...), an object with .events, or a list of such objects.
A worker that dies just loses its connection: what it had committed was
broadcast already, what it had not sent is not done.
"""
from __future__ import annotations

import logging
import pickle
import select
import socket

from .api import FlagsChanged, MailboxGone, MailboxListChanged, MessageAdded, MessagesExpunged
from .batches import BatchRunner
from .wake_counters import ARRIVALS, BEHIND
from .process import _HEADER, FILE_ARRIVALS, MAX_BATCH, RECV_CHUNK, WRITE_BEHIND, _call, _frame, _portable

log = logging.getLogger("posthouse.store")

EVENTS = -1
RELAYED = -2
RELAY = "@relay"
SEND_TIMEOUT = 30.0     # a worker that takes nothing for this long is dropped (it hangs)

EVENT_TYPES = (MessageAdded, FlagsChanged, MessagesExpunged, MailboxGone, MailboxListChanged)


def events_of(result) -> list:
    """The events a store call's result carries (see StoreService._publish_result)."""
    if isinstance(result, tuple):
        result = result[0] if result else None
    if isinstance(result, list):
        if not result:
            return []
        first = result[0]
        if isinstance(first, EVENT_TYPES):
            return [e for e in result if isinstance(e, EVENT_TYPES)]
        if hasattr(first, "events"):
            # append results, or file_arrivals' list of lists of them
            return [e for r in result for e in events_of(r)]
        if isinstance(first, list):
            return [e for r in result for e in events_of(r)]
        return []
    events = getattr(result, "events", None)
    if isinstance(events, list):
        return [e for e in events if isinstance(e, EVENT_TYPES)]
    return []


class _Worker:
    def __init__(self, sock: socket.socket, number: int):
        self.sock = sock
        self.number = number
        self.buf = bytearray()
        self.eof = False
        self.items: list = []       # to send after this batch

    def read(self, chunk: memoryview) -> None:
        try:
            n = self.sock.recv_into(chunk)
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if n:
            self.buf += chunk[:n]
        else:
            self.eof = True

    def has_whole_request(self) -> bool:
        buf = self.buf
        return len(buf) >= _HEADER.size and len(buf) >= _HEADER.size + _HEADER.unpack_from(buf)[0]

    def take(self):
        """The next whole request, or None."""
        buf = self.buf
        if len(buf) < _HEADER.size:
            return None
        n = _HEADER.unpack_from(buf)[0]
        if len(buf) < _HEADER.size + n:
            return None
        try:
            request = pickle.loads(memoryview(buf)[_HEADER.size:_HEADER.size + n])
            _call_id, method, args, _durable = request
            if not isinstance(method, str) or not isinstance(args, tuple):
                raise ValueError("not a call")
        except Exception as e:
            log.error("worker %d sent a request that is not one (%s): dropping it", self.number, e)
            self.eof = True
            buf.clear()
            return None
        del buf[:_HEADER.size + n]
        return request


def serve_shared(control: socket.socket, store, wake=None) -> None:
    """Serve the workers whose connections come over control until it ends
    (the supervisor stopped) and every worker has gone. wake: the workers'
    WakeCounters (store/wake_counters.py), counted after each frame of
    others' changes sent."""
    runner = BatchRunner(store)
    workers: dict[int, _Worker] = {}       # fileno -> worker
    chunk = memoryview(bytearray(RECV_CHUNK))
    control_open = True
    reads = getattr(store, "READS", frozenset())
    while control_open or workers:
        socks = [w.sock for w in workers.values()] + ([control] if control_open else [])
        ready, _w, _x = select.select(socks, [], [], runner.idle_wait())
        if not ready:
            runner.idle()
            continue
        for sock in ready:
            if sock is control:
                control_open = _accept(control, workers)
            else:
                workers[sock.fileno()].read(chunk)
        batch = []      # (worker, request)
        more = True
        while more and len(batch) < MAX_BATCH:
            more = False
            for worker in list(workers.values()):
                request = worker.take()
                if request is not None:
                    batch.append((worker, request))
                    more = True
        if batch:
            _run(runner, store, reads, batch, workers, wake)
        for key, worker in list(workers.items()):
            # (The part of a request a worker sent before it ended is dropped.)
            if worker.eof and not worker.has_whole_request():
                del workers[key]
                worker.sock.close()

                log.info("worker %d left the store", worker.number)
        if batch:
            runner.between_batches()


def _accept(control: socket.socket, workers: dict) -> bool:
    """A new worker's connection from the supervisor; False once it has closed."""
    try:
        msg, fds, _flags, _addr = socket.recv_fds(control, 64, 4)
    except OSError:
        return False
    if not msg and not fds:
        return False
    for fd in fds:
        sock = socket.socket(fileno=fd)
        # A worker busy for a moment (a long SORT on its loop) must not stop
        # every worker: its frames wait in this buffer (on a unix socket the
        # sender's is the one that counts; 4 MB, as far as wmem_max allows).
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        except OSError:
            pass
        sock.setblocking(False)
        number = int(msg.decode() or 0) if msg.decode().isdigit() else 0
        workers[sock.fileno()] = _Worker(sock, number)
    return True


def _run(runner: BatchRunner, store, reads, batch: list, workers: dict, wake=None) -> None:
    calls = [(_noop if method == RELAY else _call(store, *_store_call(method, args)))
             for _w, (_i, method, args, _d) in batch]
    results = runner.run(calls, any(d for _w, (_i, _m, _a, d) in batch))
    for (worker, (call_id, method, args, _d)), (ok, value) in zip(batch, results):
        worker.items.append((call_id, ok, value))
        if method == RELAY:
            shared = (RELAYED, True, args[0] if args else None)
        elif ok and method not in reads:
            events = events_of(value)
            shared = (EVENTS, True, events) if events else None
        else:
            shared = None
        if shared is not None:
            for other in workers.values():
                if other is not worker and not other.eof:
                    other.items.append(shared)
    # The others hear of a change before its caller is answered: a client told
    # "done" that tells another to look, finds it there.
    senders = sorted(workers.values(), key=lambda w: any(i[0] >= 0 for i in w.items))
    for worker in senders:
        items, worker.items = worker.items, []
        if not items or worker.eof:
            continue
        try:
            frame = _frame(items)
        except Exception:
            frame = _frame([_portable(i) for i in items])
        try:
            worker.sock.settimeout(SEND_TIMEOUT)
            worker.sock.sendall(frame)
            if wake is not None and any(i[0] < 0 for i in items):
                wake.bump(worker.number)        # after the send: the frame is there to read
        except OSError as e:
            log.error("worker %d does not take its replies (%s): dropping it", worker.number, e)
            worker.eof = True
            worker.buf.clear()
        finally:
            try:
                worker.sock.setblocking(False)
            except OSError:
                pass
    if wake is not None:
        # Every worker has this batch's changes in its socket now: sessions
        # waiting for these write-behind STOREs (failed ones too) and this
        # mail (filed; a failed filing is tried again, and counted then) may go on.
        for (worker, (_i, method, args, _d)), (ok, _value) in zip(batch, results):
            try:
                if method == WRITE_BEHIND:
                    wake.finished(BEHIND, worker.number, int(args[0]))
                elif method == FILE_ARRIVALS and ok:
                    for user_id in args[0]:
                        wake.finished(ARRIVALS, worker.number, int(user_id))
            except (IndexError, TypeError, ValueError):
                pass


def _noop():
    return None


def _store_call(method: str, args: tuple) -> tuple[str, tuple]:
    """The store call a request names (the counted kinds are plain calls to the store)."""
    if method == WRITE_BEHIND:
        return "store_flags", args
    if method == FILE_ARRIVALS:
        return "file_arrivals", tuple(args[1:])
    return method, args
