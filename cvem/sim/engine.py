"""Replay a workload through the decision core on a simulated OpenNebula cloud.

Each step is one control period. The controller decides the allocation of period ``t`` from
what the guests reported in period ``t-1`` (the oracle alone sees period ``t``); the planner
grants what fits on each host (MAX_MEM − MEM_USAGE, as oned's enforced resize would, and
physical memory minus the reserve); the balloon moves at most ``balloon_kib_s`` per second;
then the guests' demand in period ``t`` is charged against what they got.

Overload protection (:mod:`cvem.core.migration`) runs after the planner, the same for every
policy. A live migration takes allocation ÷ ``migration_bandwidth_kib_s`` (rounded up to whole
periods, at least one); while it runs the VM is charged on its source *and* its target (the
source until the copy is done, the target as pages arrive), it is not resized (oned refuses a
resize in MIGRATE), and its demand stays on the source. When it is done the VM runs on the
target.

Admission (:mod:`cvem.sim.admission`, off by default) deploys extra VMs after a warm-up so
that hosts hold more nominal memory than they have; the admitted set is fixed before any
policy runs, so every policy faces the same VMs.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from ..core.decide import Decider
from ..core.fleet import FleetHistory, FleetObs, HostColumns
from ..core.migration import (MIGRATION_REASONS, MigrationState, load_migration_config,
                              plan_migrations, settle)
from ..core.planner import PHASE_NONE, PlanColumns
from ..policies.base import Policy
from .admission import Admitted, admit
from .metrics import RunSeries, compute_metrics
from .placement import Placement, first_fit
from .workloads import GIB, Workload, default_host_kib

LOG = logging.getLogger(__name__)

SHORT_TOLERANCE_KIB = 1024.0  # below 1 MiB a "shortfall" is rounding, not a starving guest
PING_PONG_WINDOW_S = 3600.0


@dataclass(frozen=True)
class CloudConfig:
    host_physical_kib: Optional[float] = None   # None: sized from the workload
    host_reserve_kib: float = 2 * GIB            # host OS + qemu overhead kept out of MAX_MEM
    balloon_kib_s: float = 1 * GIB               # virtio-balloon speed (peers.md §6.2)
    # Overload protection: live migration when a host owes grows or is forecast over.
    migrations: bool = True
    migration_bandwidth_kib_s: float = 1 * GIB   # peers.md §8.1; Neat worst case 10 MB/s
    migration: Tuple[Tuple[str, str], ...] = ()  # extra [migration] parameters
    detector_params: Tuple[Tuple[str, str], ...] = ()
    # Admission: the scheduler deploys more VMs into reclaimed memory (sim/admission.py).
    admit: bool = False
    lend_factor: float = 1.0                     # see sim/admission.py
    admit_after_s: Optional[float] = None        # None: a quarter of the run
    admit_interval_s: float = 600.0


@dataclass
class RunResult:
    policy: str
    metrics: Dict[str, float]
    series: RunSeries = field(repr=False)


def place(workload: Workload, cloud: CloudConfig) -> Placement:
    peak_nominal = workload.nominal_kib.max(axis=1).astype(np.float64)
    physical = cloud.host_physical_kib or default_host_kib(peak_nominal) + cloud.host_reserve_kib
    return first_fit(peak_nominal, physical, cloud.host_reserve_kib)


def prepare(workload: Workload, cloud: CloudConfig) -> Admitted:
    """Placement plus (if enabled) the fixed admission schedule: computed once per suite."""
    placement = place(workload, cloud)
    if not cloud.admit:
        return Admitted(workload, placement, np.zeros(workload.vms, np.int64),
                        np.zeros(placement.hosts), {"admitted_vms": 0})
    return admit(workload, placement, lend_factor=cloud.lend_factor,
                 after_s=cloud.admit_after_s, interval_s=cloud.admit_interval_s)


def _need_ahead_kib(demand: np.ndarray, max_move_kib: float) -> np.ndarray:
    """What the oracle must hold at each period so the balloon, moving at most
    ``max_move_kib`` per period, meets every later demand in time:
    need[t] = max(demand[t], need[t+1] − max_move)."""
    need = demand.astype(np.float64)
    for t in range(need.shape[1] - 2, -1, -1):
        np.maximum(need[:, t], need[:, t + 1] - max_move_kib, out=need[:, t])
    return need


def simulate(workload: Workload, policy: Policy, cloud: CloudConfig = CloudConfig(),
             placement: Optional[Placement] = None,
             progress: Optional[Callable[[int], None]] = None,
             admitted: Optional[Admitted] = None) -> RunResult:
    if admitted is None:
        if placement is not None:
            admitted = Admitted(workload, placement, np.zeros(workload.vms, np.int64),
                                np.zeros(placement.hosts), {"admitted_vms": 0})
        else:
            admitted = prepare(workload, cloud)
    workload, placement = admitted.workload, admitted.placement
    decider = Decider(policy)
    n_vm, n_steps = workload.vms, workload.steps
    step_s = workload.step_s
    demand = workload.demand_kib
    nominal_all = workload.nominal_kib
    host_of = placement.host_of_vm.astype(np.int64).copy()
    n_host = placement.hosts
    usable = placement.capacity_kib.astype(np.int64)
    max_mem = (placement.capacity_kib + admitted.lent_kib).astype(np.int64)
    host_ids = np.arange(n_host, dtype=np.int64)
    cluster = np.zeros(n_host, dtype=np.int64)
    vm_ids_all = np.arange(n_vm, dtype=np.int64)
    deploy_step = admitted.deploy_step
    live_at = np.searchsorted(deploy_step, np.arange(n_steps), side="right")
    first_report = workload.info.get("first_report_step")
    first_report = np.asarray(first_report) if first_report is not None else None
    oracle = policy.simulation_only
    if oracle:
        oracle_need = _need_ahead_kib(demand, workload.step_s * cloud.balloon_kib_s)

    mig_cfg = None
    if cloud.migrations:
        mig_cfg = load_migration_config(
            dict(cloud.migration, bandwidth_kib_s=cloud.migration_bandwidth_kib_s),
            dict(cloud.detector_params))
    mig_state = MigrationState()
    dest = np.full(n_vm, -1, dtype=np.int64)         # target host of an in-flight VM
    done_step = np.zeros(n_vm, dtype=np.int64)
    last_move_step = np.full(n_vm, -10**9, dtype=np.int64)
    pp_steps = int(math.ceil(PING_PONG_WINDOW_S / step_s))
    migrations = ping_pong = 0
    migrated_kib = 0.0
    flying_any = False

    alloc = np.ceil(nominal_all[:, 0].astype(np.float64)).astype(np.int64)
    alloc_series = np.empty((n_vm, n_steps), dtype=np.float32)
    host_demand = np.empty((n_host, n_steps), dtype=np.float64)
    host_alloc_series = np.empty((n_host, n_steps), dtype=np.float64)
    history = FleetHistory()
    max_move = workload.step_s * cloud.balloon_kib_s
    prev_demand = prev_alloc = None
    for t in range(n_steps):
        n = int(live_at[t])
        nominal_t = np.ceil(nominal_all[:, t].astype(np.float64)).astype(np.int64)
        alloc = np.minimum(alloc, nominal_t)   # a smaller provisioned size caps the VM
        new = deploy_step == t
        if t and new.any():
            alloc[new] = nominal_t[new]        # oned deploys at the template MEMORY
        now = workload.start_s + t * step_s

        if flying_any:
            landing = (dest >= 0) & (done_step <= t)
            if landing.any():
                host_of[landing] = dest[landing]
                dest[landing] = -1
            mig_state, _, dropped = settle(mig_state, vm_ids_all, host_of, now,
                                           mig_cfg.params.timeout_s)
            flying_any = bool((dest >= 0).any())

        sl = slice(0, n)
        if oracle:
            seen = oracle_need[sl, t]
            used, deficit = seen, np.zeros(n)
            report_ok = np.ones(n, dtype=bool)
            future = seen
        elif prev_demand is None:
            used = np.full(n, np.nan)
            deficit = np.zeros(n)
            report_ok = np.zeros(n, dtype=bool)
            future = None
        else:
            used = np.minimum(prev_demand[sl], prev_alloc[sl])
            deficit = np.maximum(prev_demand[sl] - prev_alloc[sl], 0.0)
            report_ok = np.ones(n, dtype=bool)
            future = None
        booted = deploy_step[sl] < t   # a freshly deployed guest has not reported yet
        if first_report is not None:
            booted = booted & (t > first_report[sl])
        if not booted.all():
            report_ok = report_ok & booted
            used = np.where(booted, used, np.nan)
        a = alloc[sl]
        obs = FleetObs(now_s=now, vm_ids=vm_ids_all[sl], host_index=host_of[sl],
                       nominal_kib=nominal_t[sl], allocated_kib=a, used_kib=used,
                       report_ok=report_ok, pressure=deficit > SHORT_TOLERANCE_KIB,
                       deficit_kib=deficit, future_need_kib=future)
        flying = dest[sl] >= 0 if flying_any else None
        h_alloc = np.bincount(host_of[sl], weights=a, minlength=n_host)
        if flying is not None:
            h_alloc += np.bincount(dest[sl][flying], weights=a[flying], minlength=n_host)
        h_alloc = h_alloc.astype(np.int64)
        hosts = HostColumns(host_ids=host_ids, capacity_kib=max_mem, allocated_kib=h_alloc,
                            physical_room_kib=usable - h_alloc, usable_kib=usable,
                            cluster_id=cluster)
        cycle = decider.cycle(obs, hosts, history)
        history = cycle.history
        plan = cycle.plan
        if flying is not None:
            # oned refuses a resize while the VM migrates; its grow waits for the target.
            plan = PlanColumns(granted_kib=np.where(flying, a, plan.granted_kib),
                               phase=np.where(flying, PHASE_NONE, plan.phase).astype(np.int8),
                               missing_kib=np.where(flying, 0, plan.missing_kib))
        granted = plan.granted_kib

        moves = None
        if mig_cfg is not None:
            extra = None
            if flying is not None:
                need = obs.need_kib()
                need = np.where(np.isfinite(need), need, a.astype(np.float64))
                extra = np.bincount(dest[sl][flying], weights=need[flying], minlength=n_host)
            moves, mig_state, _load = plan_migrations(obs, hosts, plan, cycle.urgent,
                                                      mig_state, mig_cfg, extra)

        moved = np.clip(granted - a, -max_move, max_move).astype(np.int64)
        alloc[sl] = a + moved
        if moves is not None and moves.size:
            for v, to, size, why in zip(moves.vm_index, moves.to_host_index, moves.size_kib,
                                        moves.reason):
                dur_s = float(alloc[v]) / cloud.migration_bandwidth_kib_s
                dest[v] = to
                done_step[v] = t + max(1, int(math.ceil(dur_s / step_s)))
                migrations += 1
                migrated_kib += float(alloc[v])
                if t - last_move_step[v] < pp_steps:
                    ping_pong += 1
                last_move_step[v] = t
                LOG.debug("t=%d vm=%d host=%d action=migrate to_host=%d size_kib=%d reason=%s",
                          t, v, host_of[v], to, size, MIGRATION_REASONS[why])
            flying_any = True

        alloc_series[:, t] = alloc
        d_t = demand[:, t]
        hd = np.bincount(host_of, weights=d_t, minlength=n_host)
        ha = np.bincount(host_of, weights=alloc, minlength=n_host)
        if flying_any:
            f = dest >= 0
            # pages on both ends while the copy runs: the target holds what has arrived
            hd += np.bincount(dest[f], weights=np.minimum(d_t[f], alloc[f]), minlength=n_host)
            ha += np.bincount(dest[f], weights=alloc[f], minlength=n_host)
        host_demand[:, t] = hd
        host_alloc_series[:, t] = ha
        prev_demand = d_t.astype(np.float64)
        prev_alloc = alloc.astype(np.float64)
        if progress is not None:
            progress(t)

    series = RunSeries(step_s=step_s, demand_kib=demand, nominal_kib=nominal_all,
                       alloc_kib=alloc_series, host_of_vm=placement.host_of_vm,
                       capacity_kib=placement.capacity_kib,
                       surge_starts=workload.surge_starts, migrations=migrations,
                       ping_pong=ping_pong, host_demand_kib=host_demand,
                       host_alloc_kib=host_alloc_series, migrated_kib=migrated_kib)
    return RunResult(policy=policy.name, metrics=compute_metrics(series), series=series)
