"""Invariants of the decision core over random fleets (hypothesis).

Whatever a policy proposes, the guards promise every guest:

* with a fresh report, ``min(nominal, used + floor) <= target <= nominal``;
* without one (missing, malformed, stale: ``report_ok`` False), ``target >= allocated``;
* under pressure, ``target > allocated`` unless the VM is already at nominal;

and the planner never grants a host more grows than its room plus what its shrinks release.
"""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cvem.core.decide import Decider
from cvem.core.fleet import FleetHistory
from cvem.core.guards import GuardParams, apply_guards
from cvem.core.planner import (PHASE_GROW_AFTER_SHRINK, PHASE_GROW_NOW, PHASE_NONE,
                               PHASE_SHRINK, plan_columns)
from cvem.policies import available_policies, load_policy

from tests.core.builders import GIB, MIB, NOW, make_hosts, make_obs, property_settings


@st.composite
def fleets(draw, max_vms=10, max_hosts=3, unaligned=True):
    """Random VMs: nominal 256 MiB..64 GiB, 0 < allocated <= nominal, used anywhere in
    [0, 1.2 × nominal] or missing, random pressure and deficit."""
    n = draw(st.integers(1, max_vms))
    hosts = draw(st.integers(1, max_hosts))
    nominal = np.array(draw(st.lists(st.integers(256 * MIB, 64 * GIB), min_size=n, max_size=n)))
    if not unaligned:
        nominal = nominal // MIB * MIB
    frac = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n)))
    alloc = np.maximum((nominal * frac).astype(np.int64), 1)
    if draw(st.booleans()):  # allocations are whole MiB after a first resize
        alloc = np.maximum(alloc // MIB * MIB, MIB)
    used_frac = draw(st.lists(st.one_of(st.none(), st.floats(0.0, 1.2)), min_size=n, max_size=n))
    used = np.array([np.nan if u is None else u * nom for u, nom in zip(used_frac, nominal)])
    pressure = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    deficit_frac = draw(st.lists(st.sampled_from([0.0, 0.0, 0.01, 0.2, 1.0]),
                                 min_size=n, max_size=n))
    deficit = np.where(pressure, np.array(deficit_frac) * nominal, 0.0)
    host = np.array(draw(st.lists(st.integers(0, hosts - 1), min_size=n, max_size=n)))
    future = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))) * nominal
    return dict(nominal=nominal, alloc=alloc, used=used, pressure=pressure, deficit=deficit,
                host=host, future=future, hosts=hosts)


def obs_of(f, now=NOW, alloc=None, with_future=True):
    return make_obs(nominal=f["nominal"], alloc=f["alloc"] if alloc is None else alloc,
                    used=f["used"], pressure=f["pressure"], deficit=f["deficit"],
                    host=f["host"], now=now, future=f["future"] if with_future else None)


def floor_of(obs, p: GuardParams):
    need = obs.used_kib + obs.deficit_kib
    floor = np.maximum(need * (1 + p.floor_ratio) + p.floor_kib, p.min_size_kib)
    return np.minimum(floor, obs.nominal_kib)


def check_guard_invariants(obs, target, p: GuardParams):
    nominal, alloc = obs.nominal_kib, obs.allocated_kib
    ok = obs.report_ok
    assert np.all(target <= nominal)
    # fresh report: never below used + floor (the spec's form, and the full floor)
    spec_floor = np.minimum(nominal, obs.used_kib + p.floor_kib)
    assert np.all(target[ok] >= np.floor(spec_floor[ok]))
    assert np.all(target[ok] >= np.floor(floor_of(obs, p)[ok]))
    # no usable report: never shrunk, grown back to nominal
    assert np.all(target[~ok] >= alloc[~ok])
    assert np.all(target[~ok] == nominal[~ok])
    # a starving guest always gets a grow, unless it is at nominal already
    starving = obs.pressure & ok
    assert np.all((target > alloc)[starving & (alloc < nominal)])
    assert np.all(target[starving & (alloc >= nominal)] == nominal[starving & (alloc >= nominal)])


def _edgy(lo, hi, *edges):
    """Mostly the edges (0, defaults, limits), sometimes anything in between."""
    kind = st.integers if isinstance(lo, int) else st.floats
    return st.one_of(st.sampled_from(edges), kind(lo, hi))


guard_params = st.builds(
    GuardParams,
    floor_kib=_edgy(0, 2 * GIB, 0, 64 * MIB), floor_ratio=_edgy(0.0, 1.0, 0.0, 0.1),
    min_size_kib=_edgy(0, 4 * GIB, 0, 256 * MIB), min_step_kib=_edgy(0, GIB, 0, 32 * MIB),
    min_step_ratio=_edgy(0.0, 0.5, 0.0, 0.02), cooldown_s=st.sampled_from([0.0, 10.0, 60.0, 1e9]),
    max_shrink_ratio=_edgy(0.0, 1.0, 0.0, 0.25, 1.0),
    pressure_grow_ratio=_edgy(0.0, 1.0, 0.0, 0.1))


@property_settings(200)
@given(f=fleets(), params=guard_params,
       proposed_frac=st.lists(st.one_of(st.floats(-1.0, 3.0), st.just(float("nan"))),
                              min_size=10, max_size=10),
       since_change=st.lists(st.sampled_from([0.0, 5.0, 100.0, np.inf]), min_size=10,
                             max_size=10))
@example(  # regression: pressure with pressure_grow_ratio=0 and no deficit did not grow
    f=dict(nominal=np.array([4 * GIB]), alloc=np.array([2 * GIB]), used=np.array([1.0 * GIB]),
           pressure=np.array([True]), deficit=np.array([0.0]), host=np.array([0]),
           future=np.array([0.0]), hosts=1),
    params=GuardParams(floor_kib=0, floor_ratio=0.0, min_size_kib=0, min_step_kib=0,
                       min_step_ratio=0.0, cooldown_s=0.0, max_shrink_ratio=0.0,
                       pressure_grow_ratio=0.0),
    proposed_frac=[0.0] * 10, since_change=[np.inf] * 10)
def test_guards_hold_their_promises_whatever_is_proposed(f, params, proposed_frac, since_change):
    obs = obs_of(f)
    n = obs.size
    proposed = np.array(proposed_frac[:n]) * obs.nominal_kib
    last = NOW - np.array(since_change[:n])
    target, _ = apply_guards(obs, proposed, last, params)
    assert target.dtype == np.int64
    check_guard_invariants(obs, target, params)
    # a shrink never happens inside the cooldown
    cooling = (NOW - last) < params.cooldown_s
    assert np.all(target[cooling] >= np.minimum(obs.allocated_kib, obs.nominal_kib)[cooling])
    # a shrink never takes more than the gradual bound
    shrunk = target < obs.allocated_kib
    bound = obs.allocated_kib * (1 - params.max_shrink_ratio)
    assert np.all(target[shrunk] >= np.minimum(np.floor(bound[shrunk]), obs.nominal_kib[shrunk]))


def every_policy():
    return [pytest.param(name, id=name) for name in available_policies()]


@pytest.mark.parametrize("policy_name", every_policy())
@property_settings(40)
@given(f=fleets(), later_s=st.lists(st.sampled_from([10.0, 300.0, 3600.0, 86400.0]),
                                    min_size=3, max_size=3),
       re_report=st.lists(st.booleans(), min_size=3, max_size=3))
def test_every_policy_through_the_guards_over_several_cycles(policy_name, f, later_s, re_report):
    """Each registered policy (the oracle with its future demand), three cycles in a row:
    the allocations granted are fed back, reports come and go."""
    policy = load_policy(policy_name)
    decider = Decider(policy)
    p = decider.guard_params
    hosts = make_hosts(capacity=[256 * GIB] * f["hosts"], allocated=0)
    history = FleetHistory()
    alloc = f["alloc"]
    now = NOW
    for cycle_no in range(3):
        obs = obs_of(f, now=now, alloc=alloc, with_future=policy.simulation_only)
        cycle = decider.cycle(obs, hosts, history)
        check_guard_invariants(obs, cycle.target_kib, p)
        plan = cycle.plan
        assert np.all(plan.granted_kib <= obs.nominal_kib)
        history, alloc = cycle.history, plan.granted_kib
        now += later_s[cycle_no]
        if not re_report[cycle_no]:
            f = dict(f, used=np.full(obs.size, np.nan))


def test_every_registered_policy_is_covered():
    assert {"none", "cloudvamp2015", "vpa", "max-window", "oracle", "default"} <= \
        set(available_policies())


# ------------------------------------------------------------------------------ planner

@st.composite
def plans(draw):
    n = draw(st.integers(1, 14))
    hosts = draw(st.integers(1, 3))
    host = np.array(draw(st.lists(st.integers(0, hosts - 1), min_size=n, max_size=n)))
    alloc = np.array(draw(st.lists(st.integers(0, 16 * GIB), min_size=n, max_size=n)))
    delta = np.array(draw(st.lists(st.integers(-8 * GIB, 8 * GIB), min_size=n, max_size=n)))
    target = np.maximum(alloc + delta, 0)
    urgent = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    room = np.array(draw(st.lists(st.integers(0, 12 * GIB), min_size=hosts, max_size=hosts)))
    return host, alloc.astype(np.int64), target.astype(np.int64), urgent, room.astype(np.int64)


@property_settings(300)
@given(case=plans())
def test_planner_never_overcommits_a_host_and_accounts_for_what_is_missing(case):
    host, alloc, target, urgent, room = case
    plan = plan_columns(host, alloc, target, urgent, room)
    granted, phase, missing = plan.granted_kib, plan.phase, plan.missing_kib
    grow = target > alloc
    shrink = target < alloc
    # shrinks are always granted, in the shrink phase; unchanged VMs do nothing
    assert np.array_equal(granted[shrink], target[shrink])
    assert np.all(phase[shrink] == PHASE_SHRINK)
    assert np.all(phase[~grow & ~shrink] == PHASE_NONE)
    assert np.all(missing[~grow] == 0)
    # grows: granted + missing == target, granted within [alloc, target]
    assert np.array_equal(granted[grow] + missing[grow], target[grow])
    assert np.all((granted[grow] >= alloc[grow]) & (granted[grow] <= target[grow]))
    assert set(np.unique(phase[grow])) <= {PHASE_GROW_NOW, PHASE_GROW_AFTER_SHRINK, PHASE_NONE}
    assert np.all((phase == PHASE_NONE)[grow] == (granted == alloc)[grow])
    for h in range(room.size):
        on = host == h
        released = (alloc - target)[on & shrink].sum()
        given_now = (granted - alloc)[on & grow & (phase == PHASE_GROW_NOW)].sum()
        given = (granted - alloc)[on & grow].sum()
        assert given_now <= room[h]            # phase 0 fits the room as it is now
        assert given <= room[h] + released     # never more than room + what shrinks free
        wanted = (target - alloc)[on & grow].sum()
        assert given == min(wanted, room[h] + released)  # ... and nothing is left unused
        # urgent first: a non-urgent grow gets nothing while an urgent one misses some
        if (missing[on & grow & urgent] > 0).any():
            assert np.all(granted[on & grow & ~urgent] == alloc[on & grow & ~urgent])
