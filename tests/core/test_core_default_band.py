"""``default``'s hysteresis band and its memory of starved levels."""
from dataclasses import replace

import numpy as np
import pytest

from cvem.policies import load_policy
from tests.core.builders import GIB, NOW, make_obs


def _state(policy, n):
    return {k: np.repeat(v, n, axis=0) for k, v in policy.initial_state().items()}


def test_the_band_holds_an_allocation_a_little_above_the_target():
    p = load_policy("default", {"starved_half_life_s": 0})
    free = load_policy("default", {"starved_half_life_s": 0, "shrink_band_ratio": 0,
                                   "grow_headroom_ratio": 0})
    obs = make_obs(1, nominal=16 * GIB, alloc=int(1.2 * GIB), used=1 * GIB)
    follow, _ = free.propose(obs, _state(free, 1))
    held, _ = p.propose(replace(obs, allocated_kib=np.array([int(follow[0] * 1.3)])),
                        _state(p, 1))
    assert held[0] == int(follow[0] * 1.3)                     # inside the band: no resize
    far, _ = p.propose(replace(obs, allocated_kib=np.array([8 * GIB])), _state(p, 1))
    assert far[0] == pytest.approx(follow[0] * 1.1)            # outside: target + headroom
    low, _ = p.propose(replace(obs, allocated_kib=np.array([GIB])), _state(p, 1))
    assert low[0] == pytest.approx(follow[0] * 1.1)            # short of the target: grow


def test_a_level_the_guest_starved_at_stays_held_and_decays():
    p = load_policy("default", {"shrink_band_ratio": 0, "grow_headroom_ratio": 0})
    state = _state(p, 1)
    # the guest needed 6 GiB and had 4: pressure, 2 GiB swapped
    starving = make_obs(1, nominal=16 * GIB, alloc=4 * GIB, used=4 * GIB, pressure=True,
                        deficit=2 * GIB)
    _, state = p.propose(starving, state)
    assert state["starved_kib"][0] == 6 * GIB
    # a week later it is quiet at 1 GiB: still half the starved level is held, with margin
    quiet = make_obs(1, nominal=16 * GIB, alloc=6 * GIB, used=1 * GIB, now=NOW + 7 * 86400)
    target, state = p.propose(quiet, state)
    assert target[0] >= 3 * GIB * 1.1 * 0.999


def test_a_small_shortfall_is_not_remembered():
    p = load_policy("default")
    small = make_obs(1, nominal=16 * GIB, alloc=4 * GIB, used=4 * GIB, pressure=True,
                     deficit=100 * 1024)   # 100 MiB of 4.1 GiB: under 10 % and 256 MiB
    _, state = p.propose(small, _state(p, 1))
    assert state["starved_kib"][0] == 0


def _daily_policy(**extra):
    return load_policy("default", {"shrink_band_ratio": 0, "grow_headroom_ratio": 0,
                                   "starved_half_life_s": 0,
                                   "starved_daily_half_life_s": 14 * 86400, **extra})


def _starve(p, state, now):
    starving = make_obs(1, nominal=32 * GIB, alloc=2 * GIB, used=2 * GIB, pressure=True,
                        deficit=8 * GIB, now=now)
    return p.propose(starving, state)[1]


def _quiet_target(p, state, now):
    quiet = make_obs(1, nominal=32 * GIB, alloc=2 * GIB, used=1 * GIB, now=now)
    return p.propose(quiet, state)[0][0]


def test_a_starved_level_is_held_around_the_same_time_of_day_the_next_day():
    p = _daily_policy()
    state = _starve(p, _state(p, 1), NOW)          # needed 10 GiB at this time of day
    quiet = _quiet_target(p, state, NOW + 6 * 3600)
    assert quiet < 4 * GIB                          # six hours later: not held
    # the next day, half an hour before that time: held again, ahead of the peak
    before = _quiet_target(p, state, NOW + 86400 - 1800)
    assert before >= 10 * GIB * 1.1 * 0.9          # 10 GiB (+10 %), decayed one day of 14


def test_a_starved_time_of_day_fades_when_the_peak_stops_recurring():
    p = _daily_policy(starved_daily_half_life_s=86400)
    state = _starve(p, _state(p, 1), NOW)
    weeks_later = _quiet_target(p, state, NOW + 14 * 86400)
    assert weeks_later < 4 * GIB


def test_a_recurring_peak_refreshes_its_time_of_day():
    p = _daily_policy(starved_daily_half_life_s=86400)
    state = _state(p, 1)
    for day in range(5):
        state = _starve(p, state, NOW + day * 86400)
    assert _quiet_target(p, state, NOW + 5 * 86400 - 600) >= 10 * GIB * 1.1 * 0.49


def test_the_time_of_day_slot_must_divide_a_day():
    from cvem.errors import ConfigError
    with pytest.raises(ConfigError):
        load_policy("default", {"starved_daily_slot_s": 7000})
