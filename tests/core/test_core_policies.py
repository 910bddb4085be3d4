"""Each policy's own rule on hand-computed cases (``propose`` only: no guards)."""

import numpy as np
import pytest

from cvem.core.histogram import bucket_edges_kib, bucket_of
from cvem.errors import PolicyError
from cvem.policies import load_policy

from tests.core.builders import GIB, MIB, NOW, make_obs

MB = 1e6 / 1024.0  # KiB in a (decimal) megabyte, as VPA counts


def initial(policy, n=1):
    return {k: np.repeat(v, n, axis=0) for k, v in policy.initial_state().items()}


def step(policy, state, **obs):
    target, state = policy.propose(make_obs(**obs), state)
    return target, state


# --------------------------------------------------------------------------------- none

def test_none_proposes_nominal():
    policy = load_policy("none")
    target, _ = step(policy, {}, nominal=[2 * GIB, 8 * GIB], alloc=[1 * GIB, 8 * GIB], used=GIB)
    assert target.tolist() == [2 * GIB, 8 * GIB]


# ------------------------------------------------------------------------ cloudvamp2015

@pytest.mark.parametrize("used_gib, expected_gib", [
    (7.0, 10.0),          # 30 % free: in the band, keep
    (6.6, 10.0),          # 34 % free: still in the ±5 band
    (7.4, 10.0),          # 26 % free
    (5.0, 5.0 / 0.7),     # 50 % free: used / (1 − 0.3)
    (9.0, 9.0 / 0.7),     # 10 % free (1 GiB, no emergency): grow to used / 0.7
])
def test_cloudvamp2015_band_and_used_over_0_7(used_gib, expected_gib):
    policy = load_policy("cloudvamp2015")
    target, state = step(policy, initial(policy), nominal=16 * GIB, alloc=10 * GIB,
                         used=used_gib * GIB)
    assert target[0] == pytest.approx(expected_gib * GIB)
    assert state["hits"].tolist() == [0]


def test_cloudvamp2015_emergency_halfway_twice_then_nominal_then_counter_resets():
    policy = load_policy("cloudvamp2015")
    nominal, alloc = 16 * GIB, 4 * GIB
    used = alloc - 10_000          # free 10,000 KiB <= min_free 20,000
    halfway = used + (nominal - used) / 2
    state = initial(policy)
    seen = []
    for _ in range(4):
        target, state = step(policy, state, nominal=nominal, alloc=alloc, used=used)
        seen.append((target[0], int(state["hits"][0])))
    assert seen == [(halfway, 1), (halfway, 2), (nominal, 0), (halfway, 1)]


def test_cloudvamp2015_counter_resets_when_free_memory_recovers():
    policy = load_policy("cloudvamp2015")
    state = initial(policy)
    starving = dict(nominal=16 * GIB, alloc=4 * GIB, used=4 * GIB - 1000)
    _, state = step(policy, state, **starving)
    _, state = step(policy, state, **starving)
    assert state["hits"].tolist() == [2]
    _, state = step(policy, state, nominal=16 * GIB, alloc=4 * GIB, used=2 * GIB)  # recovered
    assert state["hits"].tolist() == [0]
    target, state = step(policy, state, **starving)
    assert target[0] < 16 * GIB and state["hits"].tolist() == [1]   # halfway again, not nominal


def test_cloudvamp2015_no_report_proposes_nothing_usable_and_no_emergency():
    policy = load_policy("cloudvamp2015")
    target, state = step(policy, initial(policy), nominal=8 * GIB, alloc=4 * GIB, used=None)
    assert not np.isfinite(target[0]) or target[0] >= 4 * GIB
    assert state["hits"].tolist() == [0]


# ---------------------------------------------------------------------------------- vpa

def test_vpa_first_sample_is_its_bucket_upper_edge_times_1_15():
    policy = load_policy("vpa")
    need = 3 * GIB
    target, _ = step(policy, initial(policy), nominal=16 * GIB, used=need)
    edges = bucket_edges_kib(10 * MB, 1.05, 2.0 ** 30)
    assert target[0] == pytest.approx(edges[bucket_of(np.array([need]), edges)[0] + 1] * 1.15)
    assert need * 1.15 <= target[0] <= need * 1.05 * 1.15 + 10 * MB


def test_vpa_p90_of_daily_peaks():
    # With (almost) no decay, eleven daily peaks 1..11 GiB: 0.9 × 11 = 9.9, so p90 is the
    # 10th peak's bucket (upper edge), × 1.15.
    policy = load_policy("vpa", {"half_life_s": "1e12"})
    state = initial(policy)
    for day in range(11):
        for minute in (0, 1):   # the day's peak is the larger sample
            target, state = step(policy, state, nominal=64 * GIB,
                                 now=NOW + day * 86400 + 60 * minute, used=(day + 1) * GIB * (1.0 if minute else 0.5))
    edges = policy.edges_kib
    expected = edges[bucket_of(np.array([10.0 * GIB]), edges)[0] + 1] * 1.15
    assert target[0] == pytest.approx(expected)


def test_vpa_only_the_window_peak_counts():
    policy = load_policy("vpa")
    state = initial(policy)
    for i, need in enumerate([1 * GIB, 5 * GIB, 2 * GIB]):   # same 24 h window
        target, state = step(policy, state, nominal=64 * GIB, now=NOW + 10 * i, used=need)
    assert np.count_nonzero(state["hist"][0]) == 1
    assert target[0] >= 5 * GIB * 1.15


def test_vpa_bumps_after_a_shortfall():
    policy = load_policy("vpa")
    state = initial(policy)
    _, state = step(policy, state, nominal=64 * GIB, alloc=GIB + 200 * MIB, used=GIB)
    # The guest swapped: need = used + deficit = 1.5 GiB; bump = max(1.2 × 1.5, 1.5 GiB + 100 MB)
    target, state = step(policy, state, nominal=64 * GIB, alloc=GIB + 200 * MIB, now=NOW + 10,
                         used=GIB + 200 * MIB, deficit=300 * MIB, pressure=True)
    bumped = max(1.2 * 1.5 * GIB, 1.5 * GIB + 100 * MB)
    edges = policy.edges_kib
    assert target[0] == pytest.approx(edges[bucket_of(np.array([bumped]), edges)[0] + 1] * 1.15)


def test_vpa_small_bump_uses_the_100_mb_minimum():
    policy = load_policy("vpa")
    state = initial(policy)
    alloc = 200 * MIB  # 1.2 × 200 MiB = +40 MiB < +100 MB
    target, _ = step(policy, state, nominal=4 * GIB, alloc=alloc, used=alloc - MIB,
                     deficit=MIB, pressure=True)
    edges = policy.edges_kib
    expected_bucket = bucket_of(np.array([alloc + 100 * MB]), edges)[0]
    assert target[0] == pytest.approx(edges[expected_bucket + 1] * 1.15)


def test_vpa_without_samples_proposes_nominal():
    policy = load_policy("vpa")
    target, _ = step(policy, initial(policy), nominal=8 * GIB, used=None)
    assert target.tolist() == [8 * GIB]


# --------------------------------------------------------------------------- max-window

def test_max_window_keeps_a_peak_exactly_24_hours():
    policy = load_policy("max-window")
    slot_s = 86400 / 288
    t0 = 5_000_000 * slot_s  # on a slot boundary
    state = initial(policy)
    target, state = step(policy, state, nominal=64 * GIB, now=t0, used=10 * GIB)
    assert target[0] == pytest.approx(11 * GIB)
    for k in range(1, 289):
        target, state = step(policy, state, nominal=64 * GIB, now=t0 + k * slot_s, used=2 * GIB)
        if k == 287:
            assert target[0] == pytest.approx(11 * GIB)   # still inside the window
    assert target[0] == pytest.approx(2.2 * GIB)           # 24 h later the peak has expired


def test_max_window_forgets_after_a_long_silence():
    policy = load_policy("max-window")
    state = initial(policy)
    _, state = step(policy, state, nominal=64 * GIB, used=10 * GIB)
    _, state = step(policy, state, nominal=64 * GIB, now=NOW + 3600, used=None)  # no report
    target, state = step(policy, state, nominal=64 * GIB, now=NOW + 7200, used=1 * GIB)
    assert target[0] == pytest.approx(11 * GIB)       # silence within the window: kept
    target, _ = step(policy, state, nominal=64 * GIB, now=NOW + 2 * 86400, used=1 * GIB)
    assert target[0] == pytest.approx(1.1 * GIB)


def test_max_window_without_samples_proposes_nominal():
    policy = load_policy("max-window")
    target, _ = step(policy, initial(policy), nominal=8 * GIB, used=None)
    assert target.tolist() == [8 * GIB]


# ------------------------------------------------------------------------------- oracle

def test_oracle_refuses_without_future_demand():
    with pytest.raises(PolicyError, match="future demand"):
        step(load_policy("oracle"), {}, used=GIB)


def test_oracle_sizes_to_future_demand_plus_5_pct():
    target, _ = step(load_policy("oracle"), {}, used=GIB, future=[2 * GIB])
    assert target[0] == pytest.approx(2.1 * GIB)


# ------------------------------------------------------------------------------ default

def test_default_follows_a_rise_at_once_and_decays_slowly():
    policy = load_policy("default")
    state = initial(policy)
    now = NOW
    for _ in range(30):
        target, state = step(policy, state, nominal=32 * GIB, now=now, used=2 * GIB)
        now += 10
    calm = target[0]
    target, state = step(policy, state, nominal=32 * GIB, now=now, used=6 * GIB)
    assert target[0] >= 6 * GIB                      # the rise is followed at once
    peak = target[0]
    now += 10
    target, state = step(policy, state, nominal=32 * GIB, now=now, used=2 * GIB)
    assert target[0] >= 0.95 * 6 * GIB               # ... not dropped at the first quiet sample
    for _ in range(6 * 360):                         # six quiet hours later
        now += 10
        target, state = step(policy, state, nominal=32 * GIB, now=now, used=2 * GIB)
    assert target[0] < peak                          # it did decay
    assert target[0] >= calm                         # and remembers the surge at least a little


def test_default_without_samples_proposes_nominal():
    policy = load_policy("default")
    target, _ = step(policy, initial(policy), nominal=8 * GIB, used=None)
    assert target.tolist() == [8 * GIB]
