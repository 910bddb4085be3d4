"""The publish loop with a fake clock: heartbeat, change detection, back-off, never exiting."""

import random

import pytest


class FakeClock(object):
    def __init__(self):
        self.now_s = 1000.0
        self.sleeps_s = []

    def monotonic(self):
        return self.now_s

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps_s.append(seconds)
        self.now_s += seconds


class Transport(object):
    """send() for the Publisher: fails while `failing` holds a status (None = unreachable)."""

    def __init__(self, publisher_module):
        self.module = publisher_module
        self.sent = []
        self.failures_left = 0
        self.failure_status = None

    def send(self, attributes):
        if self.failures_left:
            self.failures_left -= 1
            raise self.module.PublishError("down", status=self.failure_status)
        self.sent.append(dict(attributes))


@pytest.fixture
def loop(publisher, fake_proc):
    clock = FakeClock()
    transport = Transport(publisher)

    def make(**settings):
        merged = publisher.DEFAULT_SETTINGS._replace(**settings)
        return publisher.Publisher(
            merged, lambda: publisher.take_sample(fake_proc.root, wall_clock=lambda: clock.now_s,
                                                  monotonic_clock=clock.monotonic),
            transport.send, 4.0, monotonic_clock=clock.monotonic, sleep=clock.sleep,
            rng=random.Random(7))
    return make, clock, transport


def test_unchanged_figures_are_sent_only_at_each_heartbeat(loop):
    make, clock, transport = loop
    publisher = make(interval_s=10.0, heartbeat_s=60.0)
    publisher.run(max_cycles=37)  # ~370 s of a quiet guest
    assert 6 <= len(transport.sent) <= 8  # the first one plus one per ~60 s
    seqs = [int(sent["CLOUDVAMP_SEQ"]) for sent in transport.sent]
    assert seqs == list(range(1, len(seqs) + 1))
    times = [int(sent["CLOUDVAMP_TIME"]) for sent in transport.sent]
    gaps_s = [later - earlier for earlier, later in zip(times, times[1:])]
    assert all(55 <= gap <= 80 for gap in gaps_s), gaps_s


def test_heartbeat_zero_sends_every_interval(loop):
    make, clock, transport = loop
    make(heartbeat_s=0).run(max_cycles=12)
    assert len(transport.sent) == 12
    assert all(9.0 <= gap <= 11.0 for gap in clock.sleeps_s[1:])  # 10 s +- 10 % jitter


def test_first_sleep_spreads_guests_over_an_interval(loop):
    make, clock, transport = loop
    make(interval_s=10.0).run(max_cycles=1)
    assert 0 <= clock.sleeps_s[0] <= 10.0


def test_a_change_is_sent_at_the_next_sample(loop, fake_proc):
    make, clock, transport = loop
    publisher = make(heartbeat_s=600.0)
    publisher.run(max_cycles=3)
    assert len(transport.sent) == 1
    fake_proc.write(mem_available_kib=1048576 - 65536)  # the guest used 64 MiB more
    publisher.run(max_cycles=1)
    assert len(transport.sent) == 2
    assert transport.sent[-1]["CLOUDVAMP_MEM_USED_KIB"] == str(2097152 - 1048576 + 65536)


def test_pressure_goes_out_at_once_while_it_rises_and_when_it_ends(loop, fake_proc):
    make, clock, transport = loop
    publisher = make(heartbeat_s=600.0)

    def sample_after_10_s(**pages):
        if pages:
            fake_proc.write(**pages)
        clock.now_s += 10.0
        publisher.cycle()
        return len(transport.sent)
    assert sample_after_10_s() == 1                              # the first one
    assert sample_after_10_s() == 2                              # the swap rates appear
    assert sample_after_10_s() == 2                              # quiet
    assert sample_after_10_s(swapped_in_pages=1000) == 3         # 400 KiB/s > 64: at once
    assert float(transport.sent[-1]["CLOUDVAMP_SWAP_IN_KIB_S"]) == 400.0
    assert sample_after_10_s(swapped_in_pages=1000) == 3         # the same pressure
    assert sample_after_10_s(swapped_in_pages=4000) == 4         # rising: at once
    assert sample_after_10_s() == 5                              # over: at once
    assert float(transport.sent[-1]["CLOUDVAMP_SWAP_IN_KIB_S"]) == 0.0


def test_onegate_down_backs_off_exponentially_with_cap_and_never_exits(loop):
    make, clock, transport = loop
    publisher = make(interval_s=10.0, backoff_cap_s=300.0, heartbeat_s=0)
    transport.failures_left = 40  # ~hours of outage
    cycles = publisher.run(max_cycles=45)
    assert cycles == 45
    backoffs_s = clock.sleeps_s[1:41]
    # equal jitter: each wait lies in [ceiling/2, ceiling], ceiling = min(300, 10 * 2^n)
    for attempt, wait_s in enumerate(backoffs_s, start=1):
        ceiling_s = min(300.0, 10.0 * 2 ** attempt)
        assert ceiling_s / 2 <= wait_s <= ceiling_s, (attempt, wait_s)
    assert max(backoffs_s) <= 300.0
    assert backoffs_s[2] > backoffs_s[0]  # it does grow
    # and it recovers: publishes resume at the normal pace after the outage
    assert len(transport.sent) == 5
    assert publisher.consecutive_failures == 0
    assert all(9.0 <= wait_s <= 11.0 for wait_s in clock.sleeps_s[42:])


def test_seq_counts_attempts_so_gaps_reveal_failures(loop):
    make, clock, transport = loop
    publisher = make(heartbeat_s=0)
    publisher.run(max_cycles=1)
    transport.failures_left = 2
    publisher.run(max_cycles=3)
    assert [sent["CLOUDVAMP_SEQ"] for sent in transport.sent] == ["1", "4"]


def test_auth_failure_reloads_credentials(publisher, fake_proc):
    reloads = []
    clock = FakeClock()

    def send(attributes):
        raise publisher.PublishError("HTTP 401: Not authorized", status=401)

    def reload_credentials():
        reloads.append(1)
        raise publisher.ConfigError("one_env vanished")  # logged, not raised

    looping = publisher.Publisher(publisher.DEFAULT_SETTINGS,
                                  lambda: publisher.take_sample(fake_proc.root), send, 4.0,
                                  monotonic_clock=clock.monotonic, sleep=clock.sleep,
                                  reload_credentials=reload_credentials)
    assert looping.run(max_cycles=3) == 3
    assert len(reloads) == 3


def test_an_unexpected_exception_in_a_cycle_does_not_stop_the_loop(publisher):
    clock = FakeClock()
    calls = []

    def read_sample():
        calls.append(1)
        raise RuntimeError("odd kernel")

    looping = publisher.Publisher(publisher.DEFAULT_SETTINGS, read_sample, lambda a: None, 4.0,
                                  monotonic_clock=clock.monotonic, sleep=clock.sleep)
    assert looping.run(max_cycles=4) == 4
    assert len(calls) == 5  # the baseline sample, then one per cycle


def test_every_publish_carries_every_key(loop, fake_proc, publisher):
    make, clock, transport = loop
    fake_proc.write(psi=None)
    make(heartbeat_s=0).run(max_cycles=2)
    for sent in transport.sent:
        assert tuple(sent) == publisher.GUEST_KEYS
    # a baseline sample is taken at start, so even the first publish has rates
    assert transport.sent[0]["CLOUDVAMP_SWAP_IN_KIB_S"] == "0.0"
    assert transport.sent[1]["CLOUDVAMP_PSI_SOME_AVG10"] == ""    # kernel without PSI
