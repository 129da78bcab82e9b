"""The login throttle (auth/throttle.py) with a clock of our own."""
from __future__ import annotations

from posthouse.auth.throttle import Throttle, client_address


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make(**kw) -> tuple[Throttle, Clock]:
    clock = Clock()
    return Throttle(base_delay=1.0, max_delay=60.0, forget_after=3600.0, clock=clock, **kw), clock


def test_a_clean_address_is_never_held_back_and_failures_double_the_wait():
    t, clock = make()
    assert t.admit("10.0.0.1", "alice") == 0
    t.done("10.0.0.1", "alice", False, t.last_slotted)
    # One failure: the next check a second after it.
    assert t.admit("10.0.0.1", "alice") == 1.0
    clock.now += 1.0
    t.done("10.0.0.1", "alice", False, t.last_slotted)
    assert t.admit("10.0.0.1", "alice") == 2.0       # two failures: two seconds
    assert [t.delay_after(n) for n in (1, 2, 3, 7, 8, 50)] == [1, 2, 4, 60, 60, 60]


def test_parallel_attempts_from_one_address_get_one_slot_each():
    t, clock = make()
    for _ in range(6):                   # six failures: 32 s between checks from here
        clock.now += 100
        t.admit("10.0.0.1", "alice")
        t.done("10.0.0.1", "alice", False, t.last_slotted)
    clock.now += 100                     # past the wait
    waits = [t.admit("10.0.0.1", "alice") for _ in range(50)]       # fifty connections at once
    checked = [w for w in waits if w is not None]
    # However many connections ask, checks come one slot apart, and those
    # beyond max_delay are refused unchecked: the rate does not grow with them.
    assert checked == [0.0, 32.0] and waits.count(None) == 48 and t.refused == 48


def test_an_accounts_failures_slow_other_failing_addresses_not_clean_ones():
    t, clock = make()
    for i in range(8):                   # eight addresses, one failure each, at alice
        t.admit(f"10.0.0.{i}", "alice")
        t.done(f"10.0.0.{i}", "alice", False, t.last_slotted)
    clock.now += 10
    # An address that has failed once waits as long as alice's eight failures say.
    assert t.admit("10.0.0.1", "alice") == t.delay_after(8) - 10
    # The real user from a clean address: at once.
    assert t.admit("192.0.2.7", "alice") == 0
    t.done("192.0.2.7", "alice", True, t.last_slotted)
    assert "alice" not in t.accounts


def test_a_user_where_they_logged_in_before_is_not_held_back_by_the_address():
    t, clock = make()
    t.admit("10.0.0.1", "bob")
    t.done("10.0.0.1", "bob", True)        # bob logs in from the office
    for _ in range(5):                      # someone there keeps failing as carol
        clock.now += 100
        t.admit("10.0.0.1", "carol")
        t.done("10.0.0.1", "carol", False, t.last_slotted)
    assert t.admit("10.0.0.1", "bob") == 0
    assert t.admit("10.0.0.1", "dave") > 0


def test_failures_are_forgotten_and_the_tables_are_bounded():
    t, clock = make(size=3)
    for i in range(5):
        t.admit(f"10.0.0.{i}", f"u{i}")
        t.done(f"10.0.0.{i}", f"u{i}", False, t.last_slotted)
    assert len(t.addresses) == 3 and len(t.accounts) == 3
    assert t.failures("10.0.0.4") == 1
    clock.now += 3601
    assert t.failures("10.0.0.4") == 0 and t.admit("10.0.0.4", "u4") == 0
    t.trim()
    assert not t.addresses and not t.accounts


def test_off():
    t, clock = make()
    t.max_delay = 0
    t.done("10.0.0.1", "alice", False, t.last_slotted)
    assert t.admit("10.0.0.1", "alice") == 0


def test_client_address():
    assert client_address("127.0.0.1:5555") == "127.0.0.1"
    assert client_address("127.0.0.2") == "127.0.0.2"
    assert client_address(("192.0.2.1", 25)) == "192.0.2.1"
    assert client_address("2001:db8::1:2:3:4:1234") == "2001:db8:0:1::/64"
    assert client_address("::1") == "::/64"
    assert client_address("local") == "local"


def test_client_address_of_a_v6_peer_with_its_port():
    assert client_address("[2001:db8::1:2:3:4]:443") == "2001:db8::/64"


def test_checks_under_way_count_as_failures_to_come():
    t, clock = make()
    t.admit("10.0.0.1", "alice")
    t.done("10.0.0.1", "alice", False, t.last_slotted)
    clock.now += 100
    # A burst, none of it done yet: each slot further off than the one before.
    waits = [t.admit("10.0.0.1", "alice") for _ in range(8)]
    assert waits == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, None, None]
