"""The shared guards, one rule at a time (every other rule switched off by ``guards()``)."""

import numpy as np
import pytest

from cvem.core.guards import REASONS, GuardParams, apply_guards

from tests.core.builders import GIB, MIB, NOW, guards, make_obs, never_changed


def run(obs, proposed, params, last_change=None):
    last = never_changed(obs.size) if last_change is None else np.asarray(last_change, float)
    target, reason = apply_guards(obs, np.asarray(proposed, dtype=float), last, params)
    return target, [REASONS[r] for r in reason]


# ------------------------------------------------------------------------------- floor

def test_floor_raises_a_target_below_used_plus_floor():
    obs = make_obs(nominal=8 * GIB, alloc=4 * GIB, used=2 * GIB)
    target, reason = run(obs, [1 * GIB], guards(floor_kib=256 * MIB))
    assert target.tolist() == [2 * GIB + 256 * MIB]
    assert reason == ["floor"]


def test_floor_counts_the_swapped_deficit_as_need():
    obs = make_obs(nominal=8 * GIB, alloc=4 * GIB, used=2 * GIB, deficit=512 * MIB)
    target, _ = run(obs, [0], guards(floor_kib=0))
    assert target.tolist() == [2 * GIB + 512 * MIB]


@pytest.mark.parametrize("params, expected", [
    (guards(floor_kib=64 * MIB, floor_ratio=0.5), 3 * GIB + 64 * MIB),
    (guards(min_size_kib=5 * GIB), 5 * GIB),
    (guards(floor_kib=10 * GIB), 8 * GIB),  # the floor itself stops at nominal
])
def test_floor_ratio_min_size_and_nominal_cap(params, expected):
    obs = make_obs(nominal=8 * GIB, alloc=4 * GIB, used=2 * GIB)
    target, _ = run(obs, [0], params)
    assert target.tolist() == [expected]


# ----------------------------------------------------------------------------- ceiling

def test_ceiling_caps_a_target_above_nominal():
    obs = make_obs(nominal=4 * GIB, alloc=2 * GIB, used=1 * GIB)
    target, reason = run(obs, [9 * GIB], guards())
    assert target.tolist() == [4 * GIB]
    assert reason == ["ceiling"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_proposal_means_nominal(bad):
    obs = make_obs(nominal=4 * GIB, alloc=2 * GIB, used=1 * GIB)
    target, _ = run(obs, [bad], guards())
    assert target.tolist() == [4 * GIB]


# ---------------------------------------------------------------------------- pressure

def test_pressure_grows_at_least_the_ratio_of_nominal():
    obs = make_obs(nominal=8 * GIB, alloc=3 * GIB, used=3 * GIB, pressure=True)
    target, reason = run(obs, [2 * GIB], guards(pressure_grow_ratio=0.1))
    assert target[0] >= 3 * GIB + 0.1 * 8 * GIB
    assert reason == ["pressure"]


def test_pressure_grows_at_least_the_deficit():
    obs = make_obs(nominal=8 * GIB, alloc=3 * GIB, used=3 * GIB, pressure=True,
                   deficit=2 * GIB)
    target, _ = run(obs, [0], guards(pressure_grow_ratio=0.1))
    assert target[0] >= 5 * GIB


def test_pressure_grows_even_with_a_zero_grow_ratio_and_no_deficit():
    # PSI says the guest stalls, the policy proposes a shrink: it must still grow.
    obs = make_obs(nominal=8 * GIB, alloc=3 * GIB, used=1 * GIB, pressure=True)
    target, reason = run(obs, [2 * GIB], guards(pressure_grow_ratio=0.0, max_shrink_ratio=0.5))
    assert target[0] > 3 * GIB
    assert reason == ["pressure"]


def test_pressure_ignores_cooldown_and_min_step():
    obs = make_obs(nominal=8 * GIB, alloc=3 * GIB, used=3 * GIB, pressure=True)
    target, _ = run(obs, [0], guards(pressure_grow_ratio=0.01, min_step_kib=1 * GIB,
                                     cooldown_s=3600), last_change=[NOW - 1])
    assert target[0] > 3 * GIB


def test_pressure_at_nominal_stays_at_nominal():
    obs = make_obs(nominal=8 * GIB, alloc=8 * GIB, used=7 * GIB, pressure=True, deficit=GIB)
    target, _ = run(obs, [0], guards(pressure_grow_ratio=0.1))
    assert target.tolist() == [8 * GIB]


# ---------------------------------------------------------------------------- no report

@pytest.mark.parametrize("proposed", [0.0, 1 * GIB, 100 * GIB, np.nan])
def test_no_report_goes_back_to_nominal(proposed):
    obs = make_obs(nominal=8 * GIB, alloc=3 * GIB, used=None)
    target, reason = run(obs, [proposed], guards())
    assert target.tolist() == [8 * GIB]
    assert reason == ["no-report"]


def test_no_report_is_never_shrunk_and_ignores_min_step_and_cooldown():
    obs = make_obs(nominal=8 * GIB, alloc=8 * GIB - 4 * MIB, used=None)
    params = guards(min_step_kib=512 * MIB, cooldown_s=3600)
    target, _ = run(obs, [1 * GIB], params, last_change=[NOW - 1])
    assert target.tolist() == [8 * GIB]


def test_report_ok_false_wins_over_a_used_figure():
    obs = make_obs(nominal=8 * GIB, alloc=3 * GIB, used=1 * GIB, report_ok=False)
    target, reason = run(obs, [1 * GIB], guards())
    assert target.tolist() == [8 * GIB] and reason == ["no-report"]


# ------------------------------------------------------------------------ gradual shrink

def test_shrink_is_bounded_per_cycle():
    obs = make_obs(nominal=8 * GIB, alloc=8 * GIB, used=1 * GIB)
    target, reason = run(obs, [1 * GIB], guards(max_shrink_ratio=0.25))
    assert target.tolist() == [6 * GIB]
    assert reason == ["gradual-shrink"]


def test_gradual_shrink_never_goes_below_the_floor():
    obs = make_obs(nominal=8 * GIB, alloc=4 * GIB, used=3 * GIB + 512 * MIB)
    target, _ = run(obs, [0], guards(max_shrink_ratio=0.5, floor_kib=256 * MIB))
    assert target.tolist() == [3 * GIB + 768 * MIB]


def test_a_small_shrink_within_the_bound_is_untouched():
    obs = make_obs(nominal=8 * GIB, alloc=8 * GIB, used=1 * GIB)
    target, reason = run(obs, [7 * GIB], guards(max_shrink_ratio=0.25))
    assert target.tolist() == [7 * GIB] and reason == ["policy"]


# ------------------------------------------------------------------------------ cooldown

def test_cooldown_blocks_a_shrink():
    obs = make_obs(nominal=8 * GIB, alloc=6 * GIB, used=1 * GIB)
    target, reason = run(obs, [4 * GIB], guards(cooldown_s=60), last_change=[NOW - 30])
    assert target.tolist() == [6 * GIB]
    assert reason == ["cooldown"]


def test_cooldown_over_allows_the_shrink():
    obs = make_obs(nominal=8 * GIB, alloc=6 * GIB, used=1 * GIB)
    target, _ = run(obs, [4 * GIB], guards(cooldown_s=60), last_change=[NOW - 60])
    assert target.tolist() == [4 * GIB]


def test_cooldown_never_blocks_a_grow():
    obs = make_obs(nominal=8 * GIB, alloc=4 * GIB, used=1 * GIB)
    target, reason = run(obs, [6 * GIB], guards(cooldown_s=600), last_change=[NOW - 1])
    assert target.tolist() == [6 * GIB] and reason == ["policy"]


# ------------------------------------------------------------------------------ min step

def test_a_change_below_the_min_step_is_skipped():
    obs = make_obs(nominal=8 * GIB, alloc=4 * GIB, used=1 * GIB)
    target, reason = run(obs, [4 * GIB + 16 * MIB], guards(min_step_kib=32 * MIB))
    assert target.tolist() == [4 * GIB]
    assert reason == ["min-step"]


def test_min_step_ratio_of_nominal():
    obs = make_obs(nominal=8 * GIB, alloc=4 * GIB, used=1 * GIB)
    target, _ = run(obs, [4 * GIB - 100 * MIB], guards(min_step_ratio=0.02))  # step 163.84 MiB
    assert target.tolist() == [4 * GIB]
    target, _ = run(obs, [4 * GIB - 200 * MIB], guards(min_step_ratio=0.02))
    assert target.tolist() == [4 * GIB - 200 * MIB]


def test_min_step_does_not_hold_a_guest_below_its_floor():
    obs = make_obs(nominal=8 * GIB, alloc=2 * GIB, used=2 * GIB)
    target, reason = run(obs, [0], guards(floor_kib=8 * MIB, min_step_kib=64 * MIB))
    assert target.tolist() == [2 * GIB + 8 * MIB]
    assert reason == ["floor"]


def test_min_step_does_not_hold_a_pressured_guest():
    obs = make_obs(nominal=8 * GIB, alloc=2 * GIB, used=1 * GIB, pressure=True)
    target, _ = run(obs, [0], guards(pressure_grow_ratio=0.001, min_step_kib=512 * MIB))
    assert target[0] > 2 * GIB


# ------------------------------------------------------------------------------ rounding

def test_targets_are_whole_mib_rounded_up_so_never_below_the_floor():
    obs = make_obs(nominal=8 * GIB, alloc=6 * GIB, used=2 * GIB + 1)
    target, _ = run(obs, [0], guards(floor_kib=100))
    assert target[0] % MIB == 0
    assert target[0] >= 2 * GIB + 1 + 100
    assert target[0] - (2 * GIB + 101) < MIB


def test_rounding_up_stops_at_an_unaligned_nominal():
    nominal = 4 * GIB + 100
    obs = make_obs(nominal=nominal, alloc=2 * GIB, used=1 * GIB)
    target, _ = run(obs, [nominal - 50], guards())
    assert target.tolist() == [nominal]


def test_a_hold_on_an_unaligned_allocation_is_not_turned_into_a_tiny_grow():
    alloc = 4 * GIB + 300  # e.g. a provisioned size in KB from a trace
    obs = make_obs(nominal=8 * GIB, alloc=alloc, used=1 * GIB)
    target, reason = run(obs, [alloc + 5], guards(min_step_kib=32 * MIB))
    assert target.tolist() == [alloc]
    target, _ = run(obs, [alloc - 5], guards())  # a sub-MiB shrink is not made a grow either
    assert target[0] <= alloc


def test_the_defaults_are_valid_params():
    GuardParams().validate()
