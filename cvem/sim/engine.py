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
policy runs, so every policy faces the same VMs. The admission *run*
(:mod:`cvem.sim.scheduler`, ``admission=``) instead lets OpenNebula's scheduler deploy pool
VMs online wherever the lending strategy shows room; it hooks in before each period, after
the observation and after the balloons moved.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from ..core.decide import Decider
from ..core.fleet import FleetHistory, FleetObs, HostColumns
from ..core.guest_signals import read_guest_figures
from ..core.migration import (MIGRATION_REASONS, MigrationState, load_migration_config,
                              plan_migrations, settle)
from ..core.planner import PHASE_NONE, PlanColumns
from ..core.policy import Policy
from .admission import Admitted, admit
from .guests import GuestFigures, guest_figures
from .metrics import RunSeries, compute_metrics
from .placement import Placement, first_fit
from .workloads import GIB, Workload, default_host_kib

LOG = logging.getLogger(__name__)

PING_PONG_WINDOW_S = 3600.0


@dataclass(frozen=True)
class CloudConfig:
    host_physical_kib: Optional[float] = None   # None: sized from the workload
    host_reserve_kib: float = 2 * GIB            # host OS + qemu overhead kept out of MAX_MEM
    balloon_kib_s: float = 1 * GIB               # virtio-balloon speed (peers.md §6.2)
    guest_swap: bool = True                      # guests have swap (see sim/guests.py)
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


@dataclass
class _Replay:
    """Everything one replay carries from period to period (arrays indexed by VM or host)."""

    workload: Workload
    placement: Placement
    cloud: CloudConfig
    decider: Decider
    deploy_step: np.ndarray        # [vm] period the VM is deployed (0: from the start)
    live_at: np.ndarray            # [t] how many VMs (a prefix) exist in period t
    present_from: np.ndarray       # [vm] first period the VM exists (its trace starts, or deployed)
    oracle_need: Optional[np.ndarray]   # [vm, t] for the oracle only
    usable_kib: np.ndarray         # [host] physical minus reserve
    max_mem_kib: np.ndarray        # [host] MAX_MEM, with what admission lent
    mig_cfg: object                # None: overload protection off
    max_move_kib: float            # the balloon moves at most this far per period
    host_of: np.ndarray            # [vm] current host
    alloc: np.ndarray              # [vm] current allocation
    alloc_series: np.ndarray       # [vm, t]
    host_demand: np.ndarray        # [host, t]
    host_alloc: np.ndarray         # [host, t]
    history: FleetHistory = field(default_factory=FleetHistory)
    mig_state: MigrationState = field(default_factory=MigrationState)
    dest: Optional[np.ndarray] = None       # [vm] target host of an in-flight VM, else -1
    done_step: Optional[np.ndarray] = None  # [vm] period its migration lands
    last_move_step: Optional[np.ndarray] = None
    flying_any: bool = False
    migrations: int = 0
    ping_pong: int = 0
    migrated_kib: float = 0.0
    reports: Optional[GuestFigures] = None   # what each guest published last period
    admission: Optional[object] = None        # cvem.sim.scheduler.Admission, or None

    @property
    def hosts(self) -> int:
        return self.placement.hosts


def _start(admitted: Admitted, policy: Policy, cloud: CloudConfig) -> _Replay:
    workload, placement = admitted.workload, admitted.placement
    n_vm, n_steps, n_host = workload.vms, workload.steps, placement.hosts
    mig_cfg = None
    if cloud.migrations:
        mig_cfg = load_migration_config(
            dict(cloud.migration, bandwidth_kib_s=cloud.migration_bandwidth_kib_s),
            dict(cloud.detector_params))
    oracle_need = None
    if policy.simulation_only:
        oracle_need = _need_ahead_kib(workload.demand_kib, workload.step_s * cloud.balloon_kib_s)
    return _Replay(
        workload=workload, placement=placement, cloud=cloud, decider=Decider(policy),
        deploy_step=admitted.deploy_step,
        live_at=np.searchsorted(admitted.deploy_step, np.arange(n_steps), side="right"),
        present_from=_present_from(workload, admitted.deploy_step),
        oracle_need=oracle_need,
        usable_kib=placement.capacity_kib.astype(np.int64),
        max_mem_kib=(placement.capacity_kib + admitted.lent_kib).astype(np.int64),
        mig_cfg=mig_cfg, max_move_kib=workload.step_s * cloud.balloon_kib_s,
        host_of=placement.host_of_vm.astype(np.int64).copy(),
        alloc=np.ceil(workload.nominal_kib[:, 0].astype(np.float64)).astype(np.int64),
        alloc_series=np.empty((n_vm, n_steps), dtype=np.float32),
        host_demand=np.empty((n_host, n_steps), dtype=np.float64),
        host_alloc=np.empty((n_host, n_steps), dtype=np.float64),
        dest=np.full(n_vm, -1, dtype=np.int64), done_step=np.zeros(n_vm, dtype=np.int64),
        last_move_step=np.full(n_vm, -10**9, dtype=np.int64))


def _present_from(workload: Workload, deploy_step: np.ndarray) -> np.ndarray:
    """[vm] the first period each VM exists: a trace VM from its first sample, an admitted
    one from its deployment."""
    present = np.array(deploy_step, dtype=np.int64)
    traced = workload.info.get("present_from_step")
    if traced is not None:
        traced = np.asarray(traced, dtype=np.int64)[:present.size]
        present[:traced.size] = np.maximum(present[:traced.size], traced)
    return present


def _begin_period(run: _Replay, t: int) -> np.ndarray:
    """Provisioned sizes of period ``t``; caps allocations to them and deploys new VMs."""
    nominal_t = np.ceil(run.workload.nominal_kib[:, t].astype(np.float64)).astype(np.int64)
    np.minimum(run.alloc, nominal_t, out=run.alloc)  # a smaller provisioned size caps the VM
    new = run.deploy_step == t
    if t and new.any():
        run.alloc[new] = nominal_t[new]              # oned deploys at the template MEMORY
    return nominal_t


def _land_migrations(run: _Replay, t: int, now_s: float) -> None:
    """VMs whose copy is done now run on their target host."""
    if not run.flying_any:
        return
    landing = (run.dest >= 0) & (run.done_step <= t)
    if landing.any():
        run.host_of[landing] = run.dest[landing]
        run.dest[landing] = -1
    run.mig_state, _, _ = settle(run.mig_state, np.arange(run.workload.vms, dtype=np.int64),
                                 run.host_of, now_s, run.mig_cfg.params.timeout_s)
    run.flying_any = bool((run.dest >= 0).any())


def _observe(run: _Replay, t: int, n: int, now_s: float, nominal_t: np.ndarray) -> FleetObs:
    """What the controller sees of the ``n`` live VMs: last period's guest reports, read as
    the service reads them (the oracle alone sees this period's need)."""
    reported = run.present_from[:n] < t   # a guest that just appeared has not reported yet
    future = None
    pressure, deficit = np.zeros(n, dtype=bool), np.zeros(n)
    if run.oracle_need is not None:
        future = run.oracle_need[:n, t]
        used, report_ok = np.where(reported, future, np.nan), reported
    elif run.reports is None:
        used, report_ok = np.full(n, np.nan), np.zeros(n, dtype=bool)
    else:
        g = run.reports
        used, report_ok, pressure, deficit = read_guest_figures(
            reported, g.used_kib[:n], g.swap_used_kib[:n], g.swap_in_kib_s[:n],
            g.psi_full_avg10[:n])
    return FleetObs(now_s=now_s, vm_ids=np.arange(n, dtype=np.int64),
                    host_index=run.host_of[:n].copy(), nominal_kib=nominal_t[:n],
                    allocated_kib=run.alloc[:n].copy(), used_kib=used, report_ok=report_ok,
                    pressure=pressure, deficit_kib=deficit, future_need_kib=future)


def _in_flight(run: _Replay, n: int) -> Optional[np.ndarray]:
    """[n] True for a live VM being migrated; None when none is."""
    return run.dest[:n] >= 0 if run.flying_any else None


def _host_columns(run: _Replay, obs: FleetObs, flying: Optional[np.ndarray]) -> HostColumns:
    """oned's view of the hosts: an in-flight VM is charged on its source and its target."""
    n_host = run.hosts
    a = obs.allocated_kib
    h_alloc = np.bincount(obs.host_index, weights=a, minlength=n_host)
    if flying is not None:
        h_alloc += np.bincount(run.dest[:obs.size][flying], weights=a[flying], minlength=n_host)
    h_alloc = h_alloc.astype(np.int64)
    return HostColumns(host_ids=np.arange(n_host, dtype=np.int64), capacity_kib=run.max_mem_kib,
                       allocated_kib=h_alloc, physical_room_kib=run.usable_kib - h_alloc,
                       usable_kib=run.usable_kib, cluster_id=np.zeros(n_host, dtype=np.int64))


def _decide(run: _Replay, obs: FleetObs, hosts: HostColumns,
            flying: Optional[np.ndarray]):
    """One decision cycle (policy, guards, planner); a migrating VM keeps its size."""
    cycle = run.decider.cycle(obs, hosts, run.history)
    run.history = cycle.history
    plan = cycle.plan
    if flying is not None:
        # oned refuses a resize while the VM migrates; its grow waits for the target.
        a = obs.allocated_kib
        plan = PlanColumns(granted_kib=np.where(flying, a, plan.granted_kib),
                           phase=np.where(flying, PHASE_NONE, plan.phase).astype(np.int8),
                           missing_kib=np.where(flying, 0, plan.missing_kib))
    return cycle, plan


def _plan_moves(run: _Replay, obs: FleetObs, hosts: HostColumns, plan: PlanColumns,
                urgent: np.ndarray, flying: Optional[np.ndarray]):
    """Overload protection's live migrations for this period (None when it is off)."""
    if run.mig_cfg is None:
        return None
    extra = None
    if flying is not None:
        need = obs.need_kib()
        need = np.where(np.isfinite(need), need, obs.allocated_kib.astype(np.float64))
        extra = np.bincount(run.dest[:obs.size][flying], weights=need[flying],
                            minlength=run.hosts)
    moves, run.mig_state, _load = plan_migrations(obs, hosts, plan, urgent, run.mig_state,
                                                  run.mig_cfg, extra)
    return moves


def _move_balloons(run: _Replay, n: int, granted_kib: np.ndarray) -> None:
    """Each balloon moves toward its granted size, at most ``max_move_kib`` per period."""
    a = run.alloc[:n]
    moved = np.clip(granted_kib - a, -run.max_move_kib, run.max_move_kib).astype(np.int64)
    run.alloc[:n] = a + moved


def _start_migrations(run: _Replay, t: int, moves) -> None:
    if moves is None or not moves.size:
        return
    step_s = run.workload.step_s
    pp_steps = int(math.ceil(PING_PONG_WINDOW_S / step_s))
    for v, to, size, why in zip(moves.vm_index, moves.to_host_index, moves.size_kib,
                                moves.reason):
        dur_s = float(run.alloc[v]) / run.cloud.migration_bandwidth_kib_s
        run.dest[v] = to
        run.done_step[v] = t + max(1, int(math.ceil(dur_s / step_s)))
        run.migrations += 1
        run.migrated_kib += float(run.alloc[v])
        if t - run.last_move_step[v] < pp_steps:
            run.ping_pong += 1
        run.last_move_step[v] = t
        LOG.debug("t=%d vm=%d host=%d action=migrate to_host=%d size_kib=%d reason=%s",
                  t, v, run.host_of[v], to, size, MIGRATION_REASONS[why])
    run.flying_any = True


def _charge_demand(run: _Replay, t: int) -> None:
    """The guests' demand of period ``t`` meets what they got; hosts carry both; each guest
    publishes what it saw (:mod:`cvem.sim.guests`)."""
    n_host = run.hosts
    alloc = run.alloc
    run.alloc_series[:, t] = alloc
    d_t = run.workload.demand_kib[:, t]
    hd = np.bincount(run.host_of, weights=d_t, minlength=n_host)
    ha = np.bincount(run.host_of, weights=alloc, minlength=n_host)
    if run.flying_any:
        f = run.dest >= 0
        # pages on both ends while the copy runs: the target holds what has arrived
        hd += np.bincount(run.dest[f], weights=np.minimum(d_t[f], alloc[f]), minlength=n_host)
        ha += np.bincount(run.dest[f], weights=alloc[f], minlength=n_host)
    run.host_demand[:, t] = hd
    run.host_alloc[:, t] = ha
    before = run.reports.swap_used_kib if run.reports is not None else np.zeros(alloc.size)
    run.reports = guest_figures(d_t, alloc, before, run.workload.step_s, run.cloud.guest_swap)


def _result(run: _Replay, policy: Policy) -> RunResult:
    w, placement = run.workload, run.placement
    series = RunSeries(step_s=w.step_s, demand_kib=w.demand_kib, nominal_kib=w.nominal_kib,
                       alloc_kib=run.alloc_series, host_of_vm=run.host_of,
                       capacity_kib=placement.capacity_kib,
                       surge_starts=w.surge_starts, migrations=run.migrations,
                       ping_pong=run.ping_pong, host_demand_kib=run.host_demand,
                       host_alloc_kib=run.host_alloc, migrated_kib=run.migrated_kib,
                       present_from=run.present_from,
                       warmup_steps=int(math.ceil(w.info.get("warmup_s", 0.0) / w.step_s)))
    metrics = compute_metrics(series)
    if run.admission is not None:
        metrics.update(run.admission.summary())
    return RunResult(policy=policy.name, metrics=metrics, series=series)


def simulate(workload: Workload, policy: Policy, cloud: CloudConfig = CloudConfig(),
             placement: Optional[Placement] = None,
             progress: Optional[Callable[[int], None]] = None,
             admitted: Optional[Admitted] = None, admission=None) -> RunResult:
    """Replay ``workload`` under ``policy``: one control period per step, phase by phase.
    ``admission`` (:class:`cvem.sim.scheduler.Admission`) runs the online admission."""
    if admission is not None:
        admitted = admission.admitted
    if admitted is None:
        if placement is not None:
            admitted = Admitted(workload, placement, np.zeros(workload.vms, np.int64),
                                np.zeros(placement.hosts), {"admitted_vms": 0})
        else:
            admitted = prepare(workload, cloud)
    run = _start(admitted, policy, cloud)
    run.admission = admission
    w = run.workload
    for t in range(w.steps):
        now_s = w.start_s + t * w.step_s
        if admission is not None:
            admission.before_period(run, t)
        n = int(run.live_at[t])
        nominal_t = _begin_period(run, t)
        _land_migrations(run, t, now_s)
        obs = _observe(run, t, n, now_s, nominal_t)
        if admission is not None:
            admission.after_observe(run, obs, nominal_t)
        flying = _in_flight(run, n)
        hosts = _host_columns(run, obs, flying)
        cycle, plan = _decide(run, obs, hosts, flying)
        moves = _plan_moves(run, obs, hosts, plan, cycle.urgent, flying)
        _move_balloons(run, n, plan.granted_kib)
        if admission is not None:
            admission.after_balloons(run, n, nominal_t)
        _start_migrations(run, t, moves)
        _charge_demand(run, t)
        if progress is not None:
            progress(t)
    return _result(run, policy)
