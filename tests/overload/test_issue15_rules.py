"""Issue 15's planning rules, pure (the same defects are shown on a real oned in tests/real)."""
from dataclasses import replace

import numpy as np

from cvem.core.migration import (MigrationState, back_off_move, clear_backoff, in_backoff,
                                 load_migration_config, plan_migrations)
from cvem.core.planner import PHASE_GROW_NOW, PlanColumns

from tests.overload.conftest import GIB, NOW, columns


def cfg(**values):
    return load_migration_config({k: str(v) for k, v in values.items()})


def case(target_live=(True,), grow_on_target_gib=0):
    """Host 10 (full) owes VM 100 a 3 GiB grow; VM 101 (2 GiB) could move. Targets 11.. have
    4 GiB of room each; VM 200 on host 11 may grow into it this cycle."""
    vms = [dict(id=100, host=0, alloc_gib=8, missing_gib=3, urgent=True),
           dict(id=101, host=0, alloc_gib=2),
           dict(id=200, host=1, alloc_gib=12)]
    hosts = [dict(usable_gib=10)] + [dict(usable_gib=16) for _ in target_live]
    obs, hc, plan, urgent = columns(hosts, vms)
    hc = replace(hc, live_resize=np.array([True] + list(target_live)))
    if grow_on_target_gib:
        granted = plan.granted_kib.copy()
        granted[2] += grow_on_target_gib * GIB
        phase = plan.phase.copy()
        phase[2] = PHASE_GROW_NOW
        plan = PlanColumns(granted_kib=granted, phase=phase, missing_kib=plan.missing_kib)
    return obs, hc, plan, urgent


def moves(obs, hosts, cols):
    return [(int(obs.vm_ids[v]), int(hosts.host_ids[t]))
            for v, t in zip(cols.vm_index, cols.to_host_index)]


def test_target_room_taken_by_a_grow_in_the_same_cycle_is_not_counted():   # defect 1
    obs, hc, plan, urgent = case(grow_on_target_gib=4)
    cols, state, _ = plan_migrations(obs, hc, plan, urgent, MigrationState(), cfg())
    assert cols.size == 0
    assert "host 11: oned room 0 KiB" in dict(state.notes)[10]                  # defect 7
    obs, hc, plan, urgent = case(grow_on_target_gib=1)
    cols, _, _ = plan_migrations(obs, hc, plan, urgent, MigrationState(), cfg())
    assert moves(obs, hc, cols) == [(101, 11)]


def test_never_a_target_without_live_resize():                                  # defect 2
    obs, hc, plan, urgent = case(target_live=(False, True))
    cols, _, _ = plan_migrations(obs, hc, plan, urgent, MigrationState(), cfg())
    assert moves(obs, hc, cols) and {t for _, t in moves(obs, hc, cols)} == {12}
    obs, hc, plan, urgent = case(target_live=(False,))
    cols, state, _ = plan_migrations(obs, hc, plan, urgent, MigrationState(), cfg())
    assert cols.size == 0 and "host 11: no live resize" in dict(state.notes)[10]


def test_failed_migrations_back_off_doubling_per_vm():                          # defect 5
    state = MigrationState()
    state = back_off_move(state, 101, NOW, 60, 3600)
    assert in_backoff(state, np.array([101, 100]), NOW + 59).tolist() == [True, False]
    assert not in_backoff(state, np.array([101]), NOW + 61).any()
    state = back_off_move(state, 101, NOW + 61, 60, 3600)      # second failure: 120 s
    assert in_backoff(state, np.array([101]), NOW + 61 + 119).all()
    assert state.backoff_failures.tolist() == [2]
    for _ in range(10):
        state = back_off_move(state, 101, NOW, 60, 3600)
    assert state.backoff_until_s.max() == NOW + 3600           # capped
    assert clear_backoff(state, 101).backoff_vm_ids.size == 0
    obs, hc, plan, urgent = case()
    cols, _, _ = plan_migrations(obs, hc, plan, urgent,
                                 back_off_move(MigrationState(), 101, NOW, 60, 3600), cfg())
    assert 101 not in [m[0] for m in moves(obs, hc, cols)]
