"""Execute and track overload protection's live migrations against oned.

``one.vm.migrate(id, host, live=True, enforce=True, ds_id=-1, type=0)`` only *starts* a
migration: oned answers at once, the VM goes to LCM MIGRATE and reaches RUNNING on the target
later (recorded from a real oned 7.4, ``shared/opennebula-xsd/real-7.4/calls.jsonl``). So:

* :func:`execute_migration` re-checks the VM against fresh state (still RUNNING, still on the
  planned source: the planner's view may be a cycle old), calls migrate once and classifies
  oned's refusals as recorded: ``Migrate action is not available for state MIGRATE`` (already
  moving: skipped), ``VM is already running on host [N]`` (nothing to do: skipped),
  ``does not fit in host [M]. Not enough memory`` (enforce fit test on the VM's MEMORY:
  failed, the target had no room), ``Error getting host [N].`` (unknown host: failed);
* the core's :class:`~cvem.core.migration.InFlight` record (made when the move was planned)
  is dropped when oned refuses (:func:`~cvem.core.migration.drop_rejected`), and otherwise
  cleared by :func:`~cvem.core.migration.settle` once the VM is seen RUNNING on its target;
  :func:`poll_migration` answers the same question for one VM from ``one.vm.info``;
* the service (:mod:`cvem.service.runner`) runs :func:`reconcile_migrations` at the start of
  every cycle — also the first one after a restart, the records live in the state DB —
  against the VM pool it just read: RUNNING on the target → done; still migrating → keep
  waiting; RUNNING on the source again (after a grace for oned's asynchronous start) →
  failed, and :func:`forget_move` frees the VM to be planned again after the host cooldown.

One INFO line per action, as everywhere in the front-end.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Iterable, List, Sequence, Tuple

import numpy as np

from ..core.migration import InFlight, MigrationState, drop_rejected
from ..core.model import Migrate, Plan
from ..errors import ActionSkipped
from ..ports import AuthFailed, OneCallFailed, Unreachable


def fresh_vm(cloud, vm_id: int):
    """The VM as oned shows it now, from a call that carries only its last history record
    (``vm_brief``; ``one.vm.info`` returns all of them, ~480 bytes per resize ever made)."""
    brief = getattr(cloud, "vm_brief", None)
    return brief(vm_id) if brief is not None else cloud.vm_info(vm_id)

LOG = logging.getLogger(__name__)

ACTIVE, RUNNING = 3, 3
MIGRATING_LCM = (4, 5, 7, 8, 9, 10, 59, 60)  # MIGRATE, SAVE_*, PROLOG_MIGRATE, BOOT_MIGRATE...


@dataclass(frozen=True)
class MigrationOutcome:
    action: Migrate
    status: str        # "issued", "skipped" or "failed"
    message: str = ""


def check_migration(cloud, action: Migrate) -> None:
    """Raise ActionSkipped unless the VM still runs on the planned source host."""
    if action.to_host_id == action.from_host_id:
        raise ActionSkipped("target is the source host")  # the planner never does this
    try:
        vm = fresh_vm(cloud, action.vm_id)
    except OneCallFailed as error:
        if error.kind == "missing":
            raise ActionSkipped(f"VM gone: {error.message}") from None
        raise
    if vm.state != ACTIVE or vm.lcm_state != RUNNING:
        raise ActionSkipped(f"VM now in state {vm.state}/LCM {vm.lcm_state}")
    if vm.host_id != action.from_host_id:
        raise ActionSkipped(f"VM moved from host {action.from_host_id} to {vm.host_id}")


def execute_migration(cloud, action: Migrate) -> MigrationOutcome:
    """Start one live, enforced migration; never raises for oned's refusals."""
    where = (f"vm={action.vm_id} host={action.from_host_id} action=migrate "
             f"to_host={action.to_host_id} reason={action.reason}")
    try:
        check_migration(cloud, action)
    except ActionSkipped as skip:
        LOG.info("%s skipped: %s", where, skip)
        return MigrationOutcome(action, "skipped", str(skip))
    try:
        cloud.migrate(action.vm_id, action.to_host_id, live=True, enforce=True)
    except (AuthFailed, Unreachable):
        raise   # the cycle stops; an unknown outcome is settled from oned's state later
    except OneCallFailed as error:
        if error.kind == "busy" or "already running on host" in error.message:
            LOG.info("%s skipped: %s", where, error.message)
            return MigrationOutcome(action, "skipped", error.message)
        LOG.warning("%s failed (%s): %s", where, error.kind, error.message)
        return MigrationOutcome(action, "failed", error.message)
    LOG.info("%s issued", where)
    return MigrationOutcome(action, "issued")


def apply_migrations(cloud, plan: Plan, state: MigrationState
                     ) -> Tuple[MigrationState, List[MigrationOutcome]]:
    """Run the plan's Migrate actions in order; the core state forgets every move oned did
    not accept (its VM is free to be planned again next cycle)."""
    outcomes = []
    for action in plan.actions:
        if isinstance(action, Migrate):
            outcome = execute_migration(cloud, action)
            outcomes.append(outcome)
            if outcome.status != "issued":
                state = drop_rejected(state, action.vm_id)
    return state, outcomes


def poll_migration(cloud, record: InFlight, now_s: float, timeout_s: float) -> str:
    """``"done"`` (RUNNING on the target), ``"moving"``, or ``"failed"`` (back RUNNING on the
    source, gone, another state, or not done after ``timeout_s``)."""
    try:
        vm = cloud.vm_info(record.vm_id)
    except OneCallFailed as error:
        if error.kind == "missing":
            return "failed"
        raise
    if vm.state == ACTIVE and vm.lcm_state == RUNNING:
        return "done" if vm.host_id == record.to_host_id else "failed"
    if vm.state == ACTIVE and vm.lcm_state in MIGRATING_LCM \
            and now_s - record.started_s <= timeout_s:
        return "moving"
    return "failed"


def in_flight_vm_ids(state: MigrationState) -> Sequence[int]:
    """VMs the applier must not resize this cycle (oned refuses a resize in MIGRATE)."""
    return [m.vm_id for m in state.in_flight]


def forget_move(state: MigrationState, vm_id: int, now_s: float) -> MigrationState:
    """A move that did not happen (oned refused it, or the VM is back RUNNING on its source):
    drop its in-flight record and its entry in the one-hour move log (the VM did not move,
    so it may be planned again), and restart the source's cooldown so it is retried *later*,
    not in a tight loop."""
    flight = [m for m in state.in_flight if m.vm_id == vm_id]
    state = drop_rejected(state, vm_id)
    if not flight:
        return state
    m = flight[0]
    keep = ~((state.moved_vm_ids == vm_id) & (state.moved_at_s == m.started_s))
    last = state.host_last_s.copy()
    last[state.host_ids == m.from_host_id] = now_s
    return replace(state, moved_vm_ids=state.moved_vm_ids[keep],
                   moved_at_s=state.moved_at_s[keep], host_last_s=last)


@dataclass(frozen=True)
class Reconciled:
    state: MigrationState
    done: Tuple[InFlight, ...] = ()
    failed: Tuple[Tuple[InFlight, str], ...] = ()
    waiting: Tuple[InFlight, ...] = ()


def reconcile_migrations(state: MigrationState, vms: Iterable, now_s: float, timeout_s: float,
                         grace_s: float) -> Reconciled:
    """Settle every in-flight migration against the VMs just read from oned (``RawVm``).

    * RUNNING on the target: done (the move stays in the one-hour log: no ping-pong);
    * in a migrating LCM state (MIGRATE, ...): still moving, unless older than ``timeout_s``
      (given up, logged);
    * RUNNING on the source: oned may not show MIGRATE at once after accepting the call, so
      within ``grace_s`` of the start this is still "waiting"; later it failed (oned rolled the
      live migration back, or the call never reached it) and :func:`forget_move` applies;
    * gone, or in any other state or host: dropped (not ours to follow any more).
    """
    by_id = {v.vm_id: v for v in vms}
    done, failed, waiting = [], [], []
    for m in state.in_flight:
        vm = by_id.get(m.vm_id)
        age = now_s - m.started_s
        if vm is None or vm.state == 6:
            failed.append((m, "VM gone"))
            state = drop_rejected(state, m.vm_id)
        elif vm.state == ACTIVE and vm.lcm_state == RUNNING and vm.host_id == m.to_host_id:
            done.append(m)
            state = drop_rejected(state, m.vm_id)
        elif vm.state == ACTIVE and vm.lcm_state == RUNNING and vm.host_id == m.from_host_id:
            if age < grace_s:
                waiting.append(m)
            else:
                failed.append((m, "back RUNNING on the source host"))
                state = forget_move(state, m.vm_id, now_s)
        elif vm.state == ACTIVE and vm.lcm_state in MIGRATING_LCM:
            if age <= timeout_s:
                waiting.append(m)
            else:
                failed.append((m, f"still migrating after {age:.0f} s; no longer followed"))
                state = drop_rejected(state, m.vm_id)
        else:
            failed.append((m, f"now in state {vm.state}/LCM {vm.lcm_state} on host "
                              f"{vm.host_id}; no longer followed"))
            state = drop_rejected(state, m.vm_id)
    return Reconciled(state, tuple(done), tuple(failed), tuple(waiting))


def vm_locations(vms: Sequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vm_ids, host_ids, running) of every VM read (host -1 when it has none), for
    :func:`cvem.core.decide.decide_with_migrations`."""
    ids = np.array([v.vm_id for v in vms], dtype=np.int64)
    hosts = np.array([-1 if v.host_id is None else v.host_id for v in vms], dtype=np.int64)
    running = np.array([v.state == ACTIVE and v.lcm_state == RUNNING for v in vms], dtype=bool)
    return ids, hosts, running
