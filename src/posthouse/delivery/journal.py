"""The arrivals journal: accepted mail, durable on disk before "250".

A delivery is answered once its record is in this journal and fdatasync'd:
one small sequential write, where filing the message (parse, index rows, a
database commit) takes several times as long. The mail is filed after the
answer (delivery/arrivals.py) and each record's filing commits with its
sequence number, so a crash between the two files it on the next start,
once and only once.

On disk: segment files named by the first sequence number they hold, each
a run of records:

    b"PHJ1" | seq (8 bytes) | length (4) | crc32 of the payload (4) | payload

big-endian. A segment's space is reserved ahead (an overwrite of reserved
blocks costs the disk less than an append, which also grows the file), so
a segment ends at its first record that doesn't check out: zeros, a torn
write, or garbage. Nothing there was ever answered "250".
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct
import zlib
import queue
import threading
from dataclasses import dataclass

log = logging.getLogger("posthouse.delivery")

MAGIC = b"PHJ1"
_HEAD = struct.Struct(">4sQII")
HEAD_SIZE = _HEAD.size
MAX_RECORD = 1 << 30


@dataclass(slots=True)
class Record:
    seq: int
    payload: bytes


def encode_record(seq: int, payload: bytes) -> bytes:
    return _HEAD.pack(MAGIC, seq, len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes) -> tuple[list[Record], int]:
    """The records at the start of a segment's bytes, and where they end
    (the first place that is not a whole, intact record)."""
    records, pos = [], 0
    while pos + HEAD_SIZE <= len(data):
        magic, seq, length, crc = _HEAD.unpack_from(data, pos)
        end = pos + HEAD_SIZE + length
        if magic != MAGIC or length > MAX_RECORD or end > len(data):
            break
        payload = data[pos + HEAD_SIZE:end]
        if zlib.crc32(payload) != crc or (records and seq <= records[-1].seq):
            break
        records.append(Record(seq, payload))
        pos = end
    return records, pos


@dataclass
class Segment:
    path: str
    first: int          # the first sequence number it may hold
    last: int = 0       # the last one it holds (0: none yet)


class Journal:
    """Append-only, in segments; appends made together share one fdatasync."""

    SEGMENT_BYTES = 4 << 20     # a new segment once one is this big

    def __init__(self, directory: str, fsync: bool = True):
        self.directory = directory
        self.fsync = fsync
        os.makedirs(directory, exist_ok=True)
        self.segments: list[Segment] = []      # oldest first; the last is written to
        self._fd: int | None = None
        self._size = 0
        self._reserved = 0
        self.next_seq = 1
        self._waiting: list[tuple[bytes, int, asyncio.Future]] = []
        self._writing = False
        # One writer thread of its own, fed batches (lighter than an executor:
        # the hand-offs to it and back are on every delivery's critical path).
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    # -- opening --------------------------------------------------------------------
    def recover(self, known_seq: int = 0) -> list[Record]:
        """Read every segment: the records they hold, oldest first. Writing
        goes on in a new segment; sequence numbers go on past known_seq too."""
        records: list[Record] = []
        for name in sorted(os.listdir(self.directory)):
            first = _segment_first(name)
            if first is None:
                continue
            path = os.path.join(self.directory, name)
            if not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            found, end = decode_records(data)
            if data[end:].strip(b"\0"):
                log.warning("arrivals journal %s: %d bytes past its last whole record ignored "
                            "(a write cut short; never acknowledged)", name, len(data) - end)
            segment = Segment(path, first, found[-1].seq if found else 0)
            records += found
            self.segments.append(segment)
        last = max([known_seq] + [r.seq for r in records] + [s.first - 1 for s in self.segments])
        self.next_seq = last + 1
        return records

    def _open_segment(self, first: int) -> None:
        """A new segment, named by the first record it will hold."""
        if self._fd is not None:
            os.close(self._fd)
        path = os.path.join(self.directory, f"{first:016d}.journal")
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._size = self._reserved = 0
        self.segments.append(Segment(path, first))
        if self.fsync:
            _fsync_directory(self.directory)

    # -- appending ------------------------------------------------------------------
    def append(self, payload: bytes) -> tuple[int, asyncio.Future]:
        """Write a record: its sequence number, and a future done once it is on disk."""
        future = asyncio.get_running_loop().create_future()
        seq = self.next_seq
        self.next_seq += 1
        self._waiting.append((encode_record(seq, payload), seq, future))
        if not self._writing:
            self._writing = True
            self._flush()
        return seq, future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        if self._thread is None:
            self._thread = threading.Thread(target=self._writer_loop, name="posthouse-journal", daemon=True)
            self._thread.start()
        self._jobs.put((batch, asyncio.get_running_loop()))

    def _writer_loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            batch, loop = job
            try:
                self._write(batch)
                error = None
            except BaseException as e:      # handed to the waiters
                error = e
            try:
                loop.call_soon_threadsafe(self._written, batch, error)
            except RuntimeError:
                pass        # that loop is closed: nobody waits for this batch any more

    def _written(self, batch, error: BaseException | None) -> None:
        for _data, seq, future in batch:
            if future.cancelled():
                continue
            if error is None:
                future.set_result(seq)
            else:
                future.set_exception(error)
        if self._waiting:
            self._flush()
        else:
            self._writing = False

    def _write(self, batch) -> None:
        """On the writer thread: the records, one write, one fdatasync."""
        data = b"".join(d for d, _s, _f in batch)
        if self._fd is None or (self._size and self._size + len(data) > self.SEGMENT_BYTES):
            self._open_segment(batch[0][1])
        segment = self.segments[-1]
        if self._size + len(data) > self._reserved:
            self._reserved = max(self._size + len(data), self.SEGMENT_BYTES)
            try:
                os.posix_fallocate(self._fd, 0, self._reserved)
            except (AttributeError, OSError):
                pass    # a file system without it: appends then just grow the file
        try:
            written = os.pwrite(self._fd, data, self._size)
            if written != len(data):
                raise OSError(f"short write to the arrivals journal ({written} of {len(data)} bytes)")
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError:
            # What was half written must not sit before the next record: start a new segment.
            os.close(self._fd)
            self._fd = None
            if not segment.last:
                # Nothing in it was ever answered: no file is left for it (on a full
                # disk every refused message would otherwise leave one).
                self.remove(segment)
            raise
        self._size += len(data)
        segment.last = batch[-1][1]

    # -- retiring -------------------------------------------------------------------
    def retirable(self, unfiled_from: int, include_current: bool = False) -> list[Segment]:
        """The oldest segments all of whose records come before unfiled_from
        (the lowest sequence number not yet filed); the segment being written
        to only if include_current (when no more are written)."""
        segments = list(self.segments)
        if segments and self._fd is not None and not include_current:
            segments.pop()
        out = []
        for segment in segments:
            if segment.last >= unfiled_from:
                break
            out.append(segment)
        return out

    def remove(self, segment: Segment) -> None:
        os.unlink(segment.path)
        self.segments.remove(segment)

    @property
    def oldest_seq(self) -> int:
        """The first sequence number the journal may still hold."""
        return self.segments[0].first if self.segments else self.next_seq

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _segment_first(name: str) -> int | None:
    stem, dot, ext = name.partition(".")
    if ext != "journal" or not stem.isdigit():
        return None
    return int(stem)


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
