"""Lending strategies: pure estimates over per-host usage windows, the Mann–Kendall test,
the target guards, the tracker's windowing, and their configuration errors."""
import numpy as np
import pytest

from cvem.config import parse_config
from cvem.core.trend import mann_kendall
from cvem.errors import ConfigError
from cvem.lending import HostNow, Window, available_strategies, load_strategy
from cvem.lending.scroogevm import ScroogeState
from cvem.lending.target import LendParams, newcomer_kib, reserved_target_kib, scheduler_used_kib
from cvem.lending.tracker import LendTracker

GIB = 1024 * 1024
HOST = HostNow(booked_kib=60 * GIB, allocated_kib=30 * GIB, capacity_kib=64 * GIB,
               vm_nominal_kib={1: 30 * GIB, 2: 30 * GIB})


def windows(values, n=4, per=6):
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        s = np.full(per, float(values[i] if np.ndim(values) else values)) + rng.normal(0, 0.1 * GIB, per)
        out.append(Window(s, {1: s.max() / 2, 2: s.max() / 2}))
    return tuple(out)


def test_every_issue_strategy_is_registered():
    assert set(available_strategies()) >= {"none", "fixed", "percentile", "doa", "scroogevm",
                                           "nsigma", "borg", "rclike", "maxpeak"}


def test_bookkeeping_strategies():
    assert load_strategy("none").estimate((), HOST, None, 4).used_kib == 30 * GIB
    fixed = load_strategy("fixed", {"lend_ratio": "0.25"}).estimate((), HOST, None, 4)
    assert fixed.used_kib == pytest.approx(30 * GIB + 0.75 * 30 * GIB)
    assert load_strategy("borg").estimate((), HOST, None, 4).used_kib == pytest.approx(60 * GIB / 1.1)


def test_sample_strategies_order_as_expected():
    w = windows(10 * GIB)
    p90 = load_strategy("percentile").estimate(w, HOST, None, 4).used_kib
    n5 = load_strategy("nsigma").estimate(w, HOST, None, 4).used_kib
    assert 10 * GIB < p90 < n5 < 12 * GIB
    rc = load_strategy("rclike")
    assert rc.estimate(w[:2], HOST, None, 4).used_kib == HOST.booked_kib   # history not full
    peaks = rc.estimate(w, HOST, None, 4).used_kib
    assert peaks == pytest.approx(max(x.samples_kib.max() for x in w), rel=1e-6)
    assert load_strategy("maxpeak").estimate(w, HOST, None, 4).used_kib == max(n5, peaks)


def test_doa_lends_step_by_step_and_jumps_back_after_a_hot_window():
    doa = load_strategy("doa")
    est = doa.estimate(windows(10 * GIB), HOST, None, 4)
    assert est.used_kib == pytest.approx(60 * GIB - 0.05 * 64 * GIB)
    for _ in range(100):
        est = doa.estimate(windows(10 * GIB), HOST, est.state, 4)
    assert est.used_kib == pytest.approx(20 * GIB)                 # booked ÷ 3
    hot = windows([63 * GIB] * 4)
    assert doa.estimate(hot, HOST, est.state, 4).used_kib == pytest.approx(52 * GIB)


def test_scroogevm_k_walks_down_when_stable_and_up_when_rising():
    s = load_strategy("scroogevm")
    est = s.estimate(windows(10 * GIB), HOST, None, 4)
    assert isinstance(est.state, ScroogeState) and est.state.stable
    assert est.state.k == pytest.approx(3.4)
    state = est.state
    for _ in range(30):
        state = s.estimate(windows(10 * GIB), HOST, state, 4).state
    assert state.k == 2.0                                           # bounded below
    rising = windows([8 * GIB, 10 * GIB, 12 * GIB, 14 * GIB])
    up = s.estimate(rising, HOST, state, 4).state
    assert not up.stable and up.k == pytest.approx(2.2)
    assert not s.estimate(windows(10 * GIB)[:2], HOST, None, 4).state.stable  # never before full


def test_mann_kendall_finds_trends_and_not_noise():
    rng = np.random.default_rng(3)
    assert mann_kendall(np.arange(40) + rng.normal(0, 3, 40)).trend(0.05) == 1
    assert mann_kendall(-np.arange(40.0)).trend(0.05) == -1
    assert mann_kendall(rng.normal(0, 1, 40)).trend(0.01) == 0
    assert mann_kendall([5.0, 5.0, 5.0, 5.0]).p_value == 1.0


def test_target_guards_newcomers_takeback_and_ceiling():
    params = LendParams()
    p90 = load_strategy("percentile")
    w = windows(10 * GIB)
    new_host = HostNow(HOST.booked_kib + 8 * GIB, HOST.allocated_kib + 8 * GIB, HOST.capacity_kib,
                       {**HOST.vm_nominal_kib, 3: 8 * GIB})
    assert newcomer_kib(w, new_host) == 8 * GIB                     # unseen: at nominal

    def used(estimate, host, open_peak=0.0):
        return scheduler_used_kib(estimate, newcomer_kib(w, host), open_peak, host.booked_kib,
                                  host.allocated_kib, host.capacity_kib, True, params)
    assert used(10 * GIB, new_host) == pytest.approx(18 * GIB)
    # the open window's peak (a rise) counts at once
    assert used(10 * GIB, HOST, 20 * GIB) == pytest.approx(22 * GIB)
    # never more than max_overcommit × capacity of nominal booked: lend nothing beyond resizing
    big = HostNow(200 * GIB, 40 * GIB, 64 * GIB, {1: 200 * GIB})
    assert scheduler_used_kib(1 * GIB, 0.0, 0.0, 200 * GIB, 40 * GIB, 64 * GIB, True,
                              params) == 40 * GIB
    # no opinion yet: lend nothing; arrays work the same way
    assert used(float("nan"), HOST) == HOST.allocated_kib
    arr = scheduler_used_kib(np.array([10 * GIB, np.nan]), 0.0, 0.0, np.full(2, 60 * GIB),
                             np.full(2, 30 * GIB), np.full(2, 64 * GIB), True, params)
    assert list(arr) == [10 * GIB, 30 * GIB]
    assert reserved_target_kib(1024, 10 * GIB, 30 * GIB) == 1024 - 20 * GIB


def test_tracker_changes_estimates_only_when_a_window_closes():
    tracker = LendTracker(load_strategy("percentile"), LendParams(window_s=60, history_windows=2))
    host = HostNow(8 * GIB, 6 * GIB, 16 * GIB, {1: 8 * GIB})
    seen = []
    for t in range(0, 300, 10):
        tracker.observe(float(t), {1: 0}, {1: 2.0 * GIB}, {0: host})
        seen.append(tracker.used_kib(0, host))
    assert seen[0] == host.allocated_kib           # nothing closed yet: no lending
    assert seen[-1] == pytest.approx(2.2 * GIB)    # open peak × 1.1 (takeback floor)
    changes = sum(1 for a, b in zip(seen, seen[1:]) if a != b)
    assert changes <= 3


@pytest.mark.parametrize("text, message", [
    ("[lend]\nstrategy = nope\n", "[lend] strategy: unknown lending strategy 'nope'"),
    ("[lend]\nhistory_windows = 0\n", "[lend] history_windows=0 is below its minimum 1"),
    ("[lend:scroogevm]\nk_init = 6\n", "[lend:scroogevm] k_init=6.0 must lie in"),
    ("[lend:percentile]\npercentile = x\n", "[lend:percentile] percentile: expected float"),
    ("[lend:fixed]\nlend_ratio = 2\n", "[lend:fixed] lend_ratio=2.0 is above its maximum"),
    ("[cvem]\nlend_ratio = 0.5\n[lend]\nstrategy = nsigma\n", "[cvem] lend_ratio=0.5 conflicts"),
])
def test_config_errors_name_the_key(text, message):
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(text)
    assert message in str(info.value)
