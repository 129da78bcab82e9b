"""store/wake_counters.py: the store process's count of frames sent to each
worker, read by the worker without a system call."""
import asyncio
import os
import subprocess
import sys

import pytest

from posthouse.store.wake_counters import ARRIVALS, BEHIND, SLOTS, WakeCounters, WakeWatch


@pytest.fixture
def counters():
    made = WakeCounters.create()
    if made is None:
        pytest.skip("no memfd_create here")
    yield made
    os.close(made.fd)


def test_a_watch_sees_each_bump_once(counters):
    watch = WakeWatch(counters, 3)
    assert watch.changed() is True          # at first: nothing is known yet, so look
    assert watch.changed() is False
    counters.bump(3)
    counters.bump(3)
    assert watch.changed() is True and watch.changed() is False
    counters.bump(4)                        # another worker's counter
    assert watch.changed() is False
    assert counters.value(4) == 1 and counters.value(3) == 2


def test_worker_numbers_wrap_around_the_slots(counters):
    counters.bump(SLOTS + 1)
    assert counters.value(1) == 1


def test_another_process_mapping_the_descriptor_shares_the_counters(counters):
    """As the store process, started with exec and given the descriptor."""
    code = ("import sys; from posthouse.store.wake_counters import WakeCounters; "
            "c = WakeCounters(int(sys.argv[1])); c.bump(7); c.bump(7); print(c.value(2))")
    counters.bump(2)
    out = subprocess.run([sys.executable, "-c", code, str(counters.fd)], pass_fds=(counters.fd,),
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "1"
    assert counters.value(7) == 2


def test_pending_counts_are_waited_for_by_the_other_workers_only(counters):
    mine, other = WakeWatch(counters, 0, workers=2), WakeWatch(counters, 1, workers=2)
    assert other.others_waiting(BEHIND, 5) == []
    mine.started(BEHIND, 5)                          # worker 0 answered a STORE in mailbox 5
    assert other.others_waiting(BEHIND, 5) == [(0, 1)]
    assert other.others_waiting(BEHIND, 6) == []     # another mailbox
    assert other.others_waiting(ARRIVALS, 5) == []   # another kind
    assert mine.others_waiting(BEHIND, 5) == []      # its own sessions wait in-process
    counters.finished(BEHIND, 0, 5)                  # the store process sent it everywhere
    assert other.others_waiting(BEHIND, 5) == [] and counters.reached(BEHIND, 0, 5, 1)
    mine.started(BEHIND, 5)
    mine.started(BEHIND, 5)
    assert other.others_waiting(BEHIND, 5) == [(0, 3)]
    counters.forget(BEHIND, 0)                       # worker 0's connection ended
    assert other.others_waiting(BEHIND, 5) == []


def test_waiting_ends_when_the_count_is_reached_or_given_up(counters):
    mine, other = WakeWatch(counters, 0, workers=2), WakeWatch(counters, 1, workers=2)

    async def run():
        mine.started(ARRIVALS, 7)
        waiting = other.others_waiting(ARRIVALS, 7)
        asyncio.get_running_loop().call_later(0.05, mine.finished, ARRIVALS, 7)
        await other.wait_for_others(ARRIVALS, 7, waiting, 5.0, "mail for user")
        assert counters.reached(ARRIVALS, 0, 7, 1)
        mine.started(ARRIVALS, 7)                    # never finished: its worker died
        await other.wait_for_others(ARRIVALS, 7, other.others_waiting(ARRIVALS, 7), 0.05, "mail for user")
        assert other.others_waiting(ARRIVALS, 7) == []     # not waited for again
        mine.started(ARRIVALS, 7)                    # a later one is
        assert other.others_waiting(ARRIVALS, 7) == [(0, 3)]
        mine.finished(ARRIVALS, 7)                   # and once it is finished, nothing waits
        assert other.others_waiting(ARRIVALS, 7) == []
        await other.wait_for_others(ARRIVALS, 7, [(0, 3)], 5.0, "mail for user")   # at once
    asyncio.run(run())
