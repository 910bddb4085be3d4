"""Planning rules of overload protection (cvem.core.migration), one test per rule."""
import numpy as np
import pytest

from cvem.core.migration import (InFlight, MigrationState, drop_rejected, load_migration_config,
                                 plan_migrations, settle)
from cvem.errors import ConfigError

from tests.overload.conftest import GIB, NOW, columns  # "conftest" alone may be tests/core's


def cfg(**values):
    return load_migration_config({k: str(v) for k, v in values.items()})


def moves_of(obs, hosts, cols):
    return [(int(obs.vm_ids[v]), int(hosts.host_ids[t]))
            for v, t in zip(cols.vm_index, cols.to_host_index)]


def surge_case(extra_vms=(), target_usable=64, **kw):
    """Host 10 is full; VM 100 owes a 3 GiB grow; VMs 101..103 could move."""
    vms = [dict(id=100, host=0, alloc_gib=8, missing_gib=3, urgent=True),
           dict(id=101, host=0, alloc_gib=1),
           dict(id=102, host=0, alloc_gib=2),
           dict(id=103, host=0, alloc_gib=5),
           dict(id=104, host=0, alloc_gib=16),
           dict(id=200, host=1, alloc_gib=4)] + list(extra_vms)
    hosts = [dict(usable_gib=32), dict(usable_gib=target_usable, **kw)]
    return columns(hosts, vms)


def run(case, state=None, **params):
    obs, hosts, plan, urgent = case
    return plan_migrations(obs, hosts, plan, urgent, state or MigrationState(), cfg(**params))


def test_no_owed_grow_and_no_forecast_means_no_migration():
    obs, hosts, plan, urgent = columns([dict(usable_gib=32), dict(usable_gib=32)],
                                       [dict(host=0, alloc_gib=8), dict(host=1, alloc_gib=8)])
    cols, state, _ = plan_migrations(obs, hosts, plan, urgent, MigrationState(), cfg())
    assert cols.size == 0 and state.in_flight == ()


def test_least_memory_moves_the_smallest_vms_until_the_grow_fits():
    case = surge_case()
    cols, state, _ = run(case, selection="least-memory")
    # 3 GiB owed: 1 GiB then 2 GiB (smallest first), and not more
    assert moves_of(case[0], case[1], cols) == [(101, 11), (102, 11)]
    assert sum(cols.size_kib) >= 3 * GIB


def test_fewest_moves_the_smallest_vm_that_clears_it_alone():
    case = surge_case()
    cols, _, _ = run(case, selection="fewest")
    assert moves_of(case[0], case[1], cols) == [(103, 11)]   # 5 GiB ≥ 3 GiB, not the 16 GiB


def test_fewest_takes_the_largest_first_when_no_single_vm_clears_it():
    obs, hosts, plan, urgent = columns(
        [dict(usable_gib=16), dict(usable_gib=64)],
        [dict(id=1, host=0, alloc_gib=8, missing_gib=6, urgent=True),
         dict(id=2, host=0, alloc_gib=1), dict(id=3, host=0, alloc_gib=3),
         dict(id=4, host=0, alloc_gib=4)])
    cols, _, _ = plan_migrations(obs, hosts, plan, urgent, MigrationState(),
                                 cfg(selection="fewest"))
    assert [int(obs.vm_ids[v]) for v in cols.vm_index] == [4, 3]


def test_the_starving_grower_moves_last():
    obs, hosts, plan, urgent = columns(
        [dict(usable_gib=16), dict(usable_gib=64)],
        [dict(id=1, host=0, alloc_gib=1, missing_gib=2, urgent=True),
         dict(id=2, host=0, alloc_gib=4)])
    cols, _, _ = plan_migrations(obs, hosts, plan, urgent, MigrationState(), cfg())
    assert [int(obs.vm_ids[v]) for v in cols.vm_index] == [2]


def test_target_is_never_the_source_even_when_only_the_source_has_room():
    obs, hosts, plan, urgent = columns(
        [dict(usable_gib=64), dict(usable_gib=4)],
        [dict(id=1, host=0, alloc_gib=8, missing_gib=3, urgent=True),
         dict(id=2, host=0, alloc_gib=2), dict(id=3, host=1, alloc_gib=3)])
    # host 10 owes 3 GiB although it shows room (MAX_MEM refused, say); host 11 is full
    cols, _, _ = plan_migrations(obs, hosts, plan, urgent, MigrationState(), cfg())
    assert cols.size == 0


def test_target_needs_oned_capacity_for_the_vms_current_memory():
    # physical room on host 11 is plenty, but MAX_MEM − MEM_USAGE (6 − 4 GiB) < 5 GiB
    case = surge_case(target_usable=64, max_mem_gib=6)
    cols, _, _ = run(case, selection="fewest")
    moved = moves_of(case[0], case[1], cols)
    assert (103, 11) not in moved
    assert all(size <= 2 * GIB for size in cols.size_kib)


def test_target_needs_physical_room_after_the_move():
    case = surge_case(target_usable=5.5)   # 4 GiB held: 1.5 GiB of room
    cols, _, _ = run(case)
    assert moves_of(case[0], case[1], cols) == [(101, 11)]   # only the 1 GiB VM fits


def test_each_accepted_move_is_charged_to_the_target_before_the_next():
    case = surge_case(target_usable=6.5)    # 2.5 GiB of room: 1 GiB fits, then not 2 GiB
    cols, _, _ = run(case)
    assert moves_of(case[0], case[1], cols) == [(101, 11)]


def test_other_clusters_are_never_targets():
    case = surge_case(cluster=1)
    cols, _, _ = run(case)
    assert cols.size == 0


def test_prefers_a_target_that_stays_below_its_own_limit():
    obs, hosts, plan, urgent = columns(
        [dict(usable_gib=16), dict(usable_gib=64), dict(usable_gib=20)],
        [dict(id=1, host=0, alloc_gib=8, missing_gib=2, urgent=True),
         dict(id=2, host=0, alloc_gib=3),
         # host 11 has most room but its guests need more than it has (forecast over)
         dict(id=3, host=1, alloc_gib=10, need_gib=70),
         dict(id=4, host=2, alloc_gib=4)])
    cols, _, _ = plan_migrations(obs, hosts, plan, urgent, MigrationState(), cfg())
    assert moves_of(obs, hosts, cols)[0] == (2, 12)


def test_per_host_cooldown_blocks_a_new_migration_from_a_host():
    case = surge_case(extra_vms=[dict(id=105, host=0, alloc_gib=1, need_gib=40)])
    obs, hosts, plan, urgent = case
    # No starving guest: only the forecast (demand over usable) asks for a move.
    plan = plan.__class__(granted_kib=plan.granted_kib, phase=plan.phase,
                          missing_kib=np.zeros_like(plan.missing_kib))
    urgent = np.zeros_like(urgent)
    first, _, _ = plan_migrations(obs, hosts, plan, urgent, MigrationState(), cfg())
    assert first.size > 0
    # a migration from host 10 finished at NOW (nothing in flight any more)
    state = MigrationState(host_ids=hosts.host_ids, demand_kib=np.full((2, 100), np.nan),
                           times_s=np.full(100, np.nan), host_last_s=np.array([NOW, -np.inf]))
    later = obs.__class__(**{**obs.__dict__, "now_s": NOW + 30})
    again, _, _ = plan_migrations(later, hosts, plan, urgent, state, cfg(host_cooldown_s=60))
    assert again.size == 0
    after = obs.__class__(**{**obs.__dict__, "now_s": NOW + 61})
    again, _, _ = plan_migrations(after, hosts, plan, urgent, state, cfg(host_cooldown_s=60))
    assert again.size > 0


def test_a_starving_guest_is_not_kept_waiting_by_the_cooldown_once_nothing_is_leaving():
    case = surge_case()
    obs, hosts, plan, urgent = case
    state = MigrationState(host_ids=hosts.host_ids, demand_kib=np.full((2, 100), np.nan),
                           times_s=np.full(100, np.nan), host_last_s=np.array([NOW - 5, -np.inf]))
    cols, _, _ = plan_migrations(obs, hosts, plan, urgent, state, cfg(host_cooldown_s=60))
    assert cols.size > 0


def test_no_vm_moved_twice_within_an_hour():
    case = surge_case()
    obs, hosts, plan, urgent = case
    state = MigrationState(moved_vm_ids=np.array([101, 102]), moved_at_s=np.array([NOW - 600] * 2))
    cols, _, _ = plan_migrations(obs, hosts, plan, urgent, state, cfg())
    moved = [vm for vm, _ in moves_of(obs, hosts, cols)]
    assert 101 not in moved and 102 not in moved
    old = MigrationState(moved_vm_ids=np.array([101, 102]),
                         moved_at_s=np.array([NOW - 3601] * 2))
    cols, _, _ = plan_migrations(obs, hosts, plan, urgent, old, cfg())
    assert [vm for vm, _ in moves_of(obs, hosts, cols)] == [101, 102]


def test_a_starving_guest_may_move_again_within_the_hour():
    obs, hosts, plan, urgent = columns(
        [dict(usable_gib=16), dict(usable_gib=64)],
        [dict(id=1, host=0, alloc_gib=4, missing_gib=8, urgent=True)])
    state = MigrationState(moved_vm_ids=np.array([1]), moved_at_s=np.array([NOW - 60.0]))
    cols, _, _ = plan_migrations(obs, hosts, plan, urgent, state, cfg())
    assert moves_of(obs, hosts, cols) == [(1, 11)]
    calm = np.zeros_like(urgent)
    cols, _, _ = plan_migrations(obs, hosts, plan, calm, state, cfg())
    assert cols.size == 0


def test_accepted_moves_are_tracked_in_flight_until_the_vm_runs_on_the_target():
    case = surge_case()
    obs, hosts, plan, urgent = case
    cols, state, _ = run(case)
    assert [(m.vm_id, m.from_host_id, m.to_host_id) for m in state.in_flight] == \
        [(101, 10, 11), (102, 10, 11)]
    # next cycle, still migrating: not selected again, and what they free is counted once
    later = obs.__class__(**{**obs.__dict__, "now_s": NOW + 10})
    again, state2, _ = plan_migrations(later, hosts, plan, urgent, state, cfg())
    assert again.size == 0
    assert len(state2.in_flight) == 2
    # the VM seen on its target: done; the other still on its source after the timeout: dropped
    where = hosts.host_ids[obs.host_index].copy()
    where[list(obs.vm_ids).index(101)] = 11
    state3, done, dropped = settle(state2, obs.vm_ids, where, NOW + 20, timeout_s=1800)
    assert [m.vm_id for m in done] == [101] and [m.vm_id for m in state3.in_flight] == [102]
    state4, done, dropped = settle(state3, obs.vm_ids, where, NOW + 4000, timeout_s=1800)
    assert [m.vm_id for m in dropped] == [102] and state4.in_flight == ()


def test_a_running_flag_keeps_a_migration_in_flight_until_oned_says_running():
    rec = InFlight(vm_id=7, from_host_id=1, to_host_id=2, size_kib=GIB, started_s=NOW,
                   reason="owed-grow")
    state = MigrationState(in_flight=(rec,))
    kept, done, _ = settle(state, np.array([7]), np.array([2]), NOW + 1, 1800,
                           running=np.array([False]))
    assert kept.in_flight == (rec,) and done == ()
    _, done, _ = settle(state, np.array([7]), np.array([2]), NOW + 2, 1800,
                        running=np.array([True]))
    assert done == (rec,)


def test_a_refused_migration_is_forgotten():
    rec = InFlight(7, 1, 2, GIB, NOW, "owed-grow")
    assert drop_rejected(MigrationState(in_flight=(rec,)), 7).in_flight == ()


def test_consolidation_is_off_by_default_and_drains_a_host_whose_vms_fit_elsewhere():
    hosts = [dict(usable_gib=64), dict(usable_gib=64), dict(usable_gib=64)]
    vms = [dict(id=1, host=0, alloc_gib=30), dict(id=2, host=1, alloc_gib=3),
           dict(id=3, host=1, alloc_gib=2), dict(id=4, host=2, alloc_gib=20)]
    obs, hc, plan, urgent = columns(hosts, vms)
    cols, _, _ = plan_migrations(obs, hc, plan, urgent, MigrationState(), cfg())
    assert cols.size == 0
    cols, _, _ = plan_migrations(obs, hc, plan, urgent, MigrationState(),
                                 cfg(consolidate="yes"))
    # host 11 (5 GiB of 64) is drained onto the fullest host that fits (best fit: host 10)
    assert sorted(moves_of(obs, hc, cols)) == [(2, 10), (3, 10)]


def test_consolidation_leaves_a_host_alone_when_one_vm_has_nowhere_to_go():
    hosts = [dict(usable_gib=64), dict(usable_gib=64)]
    vms = [dict(id=1, host=0, alloc_gib=60), dict(id=2, host=1, alloc_gib=3),
           dict(id=3, host=1, alloc_gib=8)]
    obs, hc, plan, urgent = columns(hosts, vms)
    cols, _, _ = plan_migrations(obs, hc, plan, urgent, MigrationState(),
                                 cfg(consolidate="yes", underload_ratio=0.5))
    assert cols.size == 0


def test_bad_migration_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="selection"):
        cfg(selection="random")
    with pytest.raises(ConfigError, match="unknown overload detector"):
        cfg(detector="mhod")
    with pytest.raises(ConfigError, match="bandwidth_kib_s"):
        cfg(bandwidth_kib_s=0)
