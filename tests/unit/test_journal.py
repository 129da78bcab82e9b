"""The arrivals journal's format and files: what is written is read back,
and whatever else is in a segment (a torn write, zeros, garbage) ends it
without an error and without costing an earlier record."""
from __future__ import annotations

import asyncio
import os
import random

import pytest

from posthouse.delivery.arrivals import decode_arrival, encode_arrival
from posthouse.delivery.journal import HEAD_SIZE, Journal, decode_records, encode_record
from posthouse.delivery.recipients import Recipient
from posthouse.store.api import User


def test_records_round_trip_and_a_torn_tail_ends_them():
    data = b"".join(encode_record(seq, f"payload {seq}".encode() * seq) for seq in range(1, 6))
    records, end = decode_records(data)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5] and end == len(data)
    assert records[2].payload == b"payload 3" * 3
    for cut in range(len(data)):
        records, end = decode_records(data[:cut])
        assert end <= cut
        assert all(r.payload == f"payload {r.seq}".encode() * r.seq for r in records)
        assert decode_records(data[:end])[0] == records


@pytest.mark.parametrize("damage", ["crc", "magic", "length", "seq order"])
def test_a_damaged_record_ends_the_segment_there(damage):
    first, second, third = (encode_record(n, b"x" * 50) for n in (1, 2, 3))
    bad = bytearray(second)
    if damage == "crc":
        bad[-1] ^= 1
    elif damage == "magic":
        bad[0:4] = b"JUNK"
    elif damage == "length":
        bad[12:16] = (10 ** 9).to_bytes(4, "big")
    else:
        bad = bytearray(encode_record(1, b"x" * 50))
    records, end = decode_records(first + bytes(bad) + third)
    assert [r.seq for r in records] == [1] and end == len(first)


def test_garbage_never_raises():
    rng = random.Random(7)
    good = encode_record(1, b"good")
    for _ in range(2000):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        if rng.random() < 0.3:
            junk = b"PHJ1" + junk
        records, end = decode_records(good + junk)
        assert records[0].payload == b"good" and end >= len(good)


def test_arrival_payload_round_trip_and_garbage():
    user = User(7, "alice", "hash")
    payload = encode_arrival(b"Subject: x\r\n\r\nbody\r\n", "s@example.org",
                             [Recipient("alice+tag@example.com", user, "tag")], 1234.5)
    meta, raw = decode_arrival(payload)
    assert raw == b"Subject: x\r\n\r\nbody\r\n"
    assert meta == {"from": "s@example.org", "time": 1234.5, "rcpt": [["alice+tag@example.com", 7, "tag"]]}
    for junk in (b"", b"\x00\x00", b"\x00\x00\x00\x05[1,2]rest", b"\x00\x00\x00\x02{}", b"\xff\xff\xff\xff{"):
        with pytest.raises(ValueError):
            decode_arrival(junk)


def _append_all(journal: Journal, payloads) -> list[int]:
    async def run():
        pairs = [journal.append(p) for p in payloads]
        return [await done for _seq, done in pairs]
    return asyncio.run(run())


def test_appends_are_read_back_after_a_restart_and_numbers_go_on(tmp_path):
    journal = Journal(str(tmp_path))
    assert journal.recover() == []
    seqs = _append_all(journal, [b"one", b"two", b"three"])
    assert seqs == [1, 2, 3]
    journal.close()

    again = Journal(str(tmp_path))
    records = again.recover()
    assert [(r.seq, r.payload) for r in records] == [(1, b"one"), (2, b"two"), (3, b"three")]
    assert again.next_seq == 4
    assert _append_all(again, [b"four"]) == [4]
    assert len(again.segments) == 2     # a restart writes on in a segment of its own
    again.close()

    # Numbers never go back, even with the journal emptied: past what the store has filed.
    for name in os.listdir(tmp_path):
        os.unlink(tmp_path / name)
    third = Journal(str(tmp_path))
    assert third.recover(known_seq=4) == [] and third.next_seq == 5
    third.close()


def test_a_torn_write_costs_no_earlier_record_and_writing_goes_on(tmp_path):
    journal = Journal(str(tmp_path))
    journal.recover()
    _append_all(journal, [b"kept 1", b"kept 2"])
    path = journal.segments[-1].path
    journal.close()
    with open(path, "r+b") as f:                # a write cut short after the last record
        f.seek(0, os.SEEK_END)
        end = f.tell()
        records, used = decode_records(open(path, "rb").read())
        f.seek(used)
        f.write(encode_record(3, b"never acknowledged")[:HEAD_SIZE + 4])
    assert end >= used

    again = Journal(str(tmp_path))
    assert [r.payload for r in again.recover()] == [b"kept 1", b"kept 2"]
    assert _append_all(again, [b"after"]) == [3]
    again.close()
    assert [r.payload for r in Journal(str(tmp_path)).recover()] == [b"kept 1", b"kept 2", b"after"]


def test_segments_roll_over_and_only_wholly_filed_ones_retire(tmp_path, monkeypatch):
    monkeypatch.setattr(Journal, "SEGMENT_BYTES", 200)
    journal = Journal(str(tmp_path))
    journal.recover()
    seqs = []
    for n in range(6):      # one at a time: each write its own
        seqs += _append_all(journal, [bytes(100)])
    assert seqs == [1, 2, 3, 4, 5, 6]
    firsts = [s.first for s in journal.segments]
    assert len(firsts) >= 3 and firsts[0] == 1
    # Nothing filed: nothing retires. Up to 3 filed: the segments holding only 1..3.
    assert journal.retirable(1) == []
    retired = journal.retirable(4)
    assert retired and all(s.last < 4 for s in retired)
    assert journal.segments[-1] not in journal.retirable(7)         # being written to
    assert journal.segments[-1] in journal.retirable(7, include_current=True)
    for segment in retired:
        journal.remove(segment)
    journal.close()
    left = [r.seq for r in Journal(str(tmp_path)).recover()]
    assert left == [4, 5, 6]        # one record per segment here


def test_a_failed_write_is_an_error_to_its_waiters_and_the_next_goes_to_a_new_segment(tmp_path, monkeypatch):
    journal = Journal(str(tmp_path))
    journal.recover()
    _append_all(journal, [b"first"])
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, pos: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError):
        _append_all(journal, [b"lost"])
    monkeypatch.setattr(os, "pwrite", real)
    assert _append_all(journal, [b"third"]) == [3]
    journal.close()
    assert [r.payload for r in Journal(str(tmp_path)).recover()] == [b"first", b"third"]
