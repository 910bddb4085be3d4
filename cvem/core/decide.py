"""One decision cycle: policy → shared guards → planner, over columns; and the same cycle
over a per-object :class:`~cvem.core.model.Snapshot` for the front-end.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from .policy import Policy
from .fleet import FleetHistory, FleetObs, HostColumns, obs_from_snapshot
from .guards import LAST_CHANGE_COLUMN, REASONS, GuardParams, apply_guards, guard_initial_state
from .model import Migrate, NeedsRoom, Plan, Resize, Snapshot
from .planner import PHASE_NONE, PlanColumns, host_room_kib, plan_columns


@dataclass(frozen=True)
class CycleColumns:
    target_kib: np.ndarray   # after the guards
    reason: np.ndarray       # index into guards.REASONS
    plan: PlanColumns
    urgent: np.ndarray
    history: FleetHistory


class Decider:
    """A policy with its guard settings, ready to run cycles."""

    def __init__(self, policy: Policy, guard_params: Optional[GuardParams] = None):
        self.policy = policy
        self.guard_params = guard_params or policy.guard_params()
        initial = {f"policy.{k}": v for k, v in policy.initial_state().items()}
        initial.update(guard_initial_state())
        self._initial = initial

    @property
    def initial_history(self):
        """The history columns a VM seen for the first time starts with."""
        return self._initial

    def cycle(self, obs: FleetObs, hosts: HostColumns, history: FleetHistory) -> CycleColumns:
        if obs.hosts is None:
            obs = replace(obs, hosts=hosts)
        history = history.aligned(obs.vm_ids, self._initial)
        state = history.select("policy")
        proposed, new_state = self.policy.propose(obs, state)
        last_change = history.columns[LAST_CHANGE_COLUMN]
        target, reason = apply_guards(obs, proposed, last_change, self.guard_params)
        known = obs.report_ok & np.isfinite(obs.used_kib)
        below_floor = known & (obs.allocated_kib < obs.used_kib + obs.deficit_kib)
        urgent = (obs.pressure & known) | below_floor
        plan = plan_columns(obs.host_index, obs.allocated_kib, target, urgent,
                            host_room_kib(hosts))
        changed = plan.granted_kib != obs.allocated_kib
        new_last = np.where(changed, obs.now_s, last_change)
        cols = {f"policy.{k}": v for k, v in new_state.items()}
        cols[LAST_CHANGE_COLUMN] = new_last
        return CycleColumns(target_kib=target, reason=reason, plan=plan, urgent=urgent,
                            history=history.with_columns(**cols))


def plan_from_columns(obs: FleetObs, hosts: HostColumns, cycle: CycleColumns,
                      migrations=None) -> Plan:
    """Per-object actions in execution order: phase 0 grows, shrinks, phase 2 grows, then
    the live migrations overload protection chose (phase 3, :mod:`cvem.core.migration`)."""
    plan = cycle.plan
    idx = np.flatnonzero(plan.phase != PHASE_NONE)
    idx = idx[np.lexsort((obs.vm_ids[idx], plan.phase[idx]))]
    host_ids = hosts.host_ids
    actions = tuple(
        Resize(vm_id=int(obs.vm_ids[i]), host_id=int(host_ids[obs.host_index[i]]),
               from_kib=int(obs.allocated_kib[i]), to_kib=int(plan.granted_kib[i]),
               reason=REASONS[cycle.reason[i]], phase=int(plan.phase[i]))
        for i in idx)
    if migrations is not None and migrations.size:
        from .migration import MIGRATION_REASONS
        actions = actions + tuple(
            Migrate(vm_id=int(obs.vm_ids[v]), from_host_id=int(host_ids[obs.host_index[v]]),
                    to_host_id=int(host_ids[t]), reason=MIGRATION_REASONS[r])
            for v, t, r in zip(migrations.vm_index, migrations.to_host_index, migrations.reason))
    short = np.flatnonzero(plan.missing_kib > 0)
    needs = tuple(
        NeedsRoom(vm_id=int(obs.vm_ids[i]), host_id=int(host_ids[obs.host_index[i]]),
                  missing_kib=int(plan.missing_kib[i]), urgent=bool(cycle.urgent[i]),
                  reason=REASONS[cycle.reason[i]])
        for i in short)
    return Plan(actions=actions, needs_room=needs)


def decide(snapshot: Snapshot, history: FleetHistory, decider: Decider, **obs_options):
    """The front-end's entry point: (Plan, new history) for one snapshot.

    ``obs_options`` go to :func:`~cvem.core.fleet.obs_from_snapshot` (pressure thresholds,
    ``max_report_age_s``).
    """
    obs, hosts = obs_from_snapshot(snapshot, **obs_options)
    cycle = decider.cycle(obs, hosts, history)
    return plan_from_columns(obs, hosts, cycle), cycle.history


def decide_with_migrations(snapshot: Snapshot, history: FleetHistory, decider: Decider,
                           migration_state, migration_config, vm_locations=None,
                           **obs_options):
    """:func:`decide` plus overload protection: (Plan, new history, new migration state).

    Migrations seen finished are settled first; a VM still migrating is not resized (oned
    refuses a resize in MIGRATE) and its grows wait for its target. The Plan's Migrate
    actions come after its resizes; the applier re-checks each against fresh state and calls
    :func:`cvem.core.migration.drop_rejected` when oned refuses one.

    ``vm_locations`` = (vm_ids, host_ids, running) of *every* VM oned shows, managed or not.
    The front-end leaves a VM in LCM MIGRATE out of the snapshot; settling against the
    snapshot alone would read such a VM as gone and forget its migration.
    """
    from .migration import plan_migrations, settle
    obs, hosts = obs_from_snapshot(snapshot, **obs_options)
    if vm_locations is None:
        vm_host_ids = hosts.host_ids[obs.host_index] if obs.size else np.zeros(0, np.int64)
        vm_locations = (obs.vm_ids, vm_host_ids, None)
    loc_ids, loc_hosts, loc_running = vm_locations
    migration_state, _done, _dropped = settle(migration_state, loc_ids, loc_hosts,
                                              snapshot.now_s, migration_config.params.timeout_s,
                                              running=loc_running)
    cycle = decider.cycle(obs, hosts, history)
    flying = migration_state.in_flight_vm_ids()
    if flying.size:
        frozen = np.isin(obs.vm_ids, flying)
        plan = cycle.plan
        plan = PlanColumns(granted_kib=np.where(frozen, obs.allocated_kib, plan.granted_kib),
                           phase=np.where(frozen, PHASE_NONE, plan.phase).astype(np.int8),
                           missing_kib=np.where(frozen, 0, plan.missing_kib))
        cycle = CycleColumns(target_kib=cycle.target_kib, reason=cycle.reason, plan=plan,
                             urgent=cycle.urgent, history=cycle.history)
    moves, migration_state, _load = plan_migrations(obs, hosts, cycle.plan, cycle.urgent,
                                                    migration_state, migration_config)
    return plan_from_columns(obs, hosts, cycle, moves), cycle.history, migration_state
