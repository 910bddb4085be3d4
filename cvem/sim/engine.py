"""Replay a workload through the decision core on a simulated OpenNebula cloud.

Each step is one control period. The controller decides the allocation of period ``t`` from
what the guests reported in period ``t-1`` (the oracle alone sees period ``t``); the planner
grants what fits on each host (MAX_MEM − MEM_USAGE, as oned's enforced resize would); the
balloon moves at most ``balloon_kib_s`` per second; then the guests' demand in period ``t`` is
charged against what they got.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

from ..core.decide import Decider
from ..core.fleet import FleetHistory, FleetObs, HostColumns
from ..policies.base import Policy
from .metrics import RunSeries, compute_metrics
from .placement import Placement, first_fit
from .workloads import GIB, Workload, default_host_kib

SHORT_TOLERANCE_KIB = 1024.0  # below 1 MiB a "shortfall" is rounding, not a starving guest


@dataclass(frozen=True)
class CloudConfig:
    host_physical_kib: Optional[float] = None   # None: sized from the workload
    host_reserve_kib: float = 2 * GIB            # host OS + qemu overhead kept out of MAX_MEM
    balloon_kib_s: float = 1 * GIB               # virtio-balloon speed (peers.md §6.2)


@dataclass
class RunResult:
    policy: str
    metrics: Dict[str, float]
    series: RunSeries = field(repr=False)


def place(workload: Workload, cloud: CloudConfig) -> Placement:
    peak_nominal = workload.nominal_kib.max(axis=1).astype(np.float64)
    physical = cloud.host_physical_kib or default_host_kib(peak_nominal) + cloud.host_reserve_kib
    return first_fit(peak_nominal, physical, cloud.host_reserve_kib)


def simulate(workload: Workload, policy: Policy, cloud: CloudConfig = CloudConfig(),
             placement: Optional[Placement] = None,
             progress: Optional[Callable[[int], None]] = None) -> RunResult:
    placement = placement or place(workload, cloud)
    decider = Decider(policy)
    n_vm, n_steps = workload.vms, workload.steps
    step_s = workload.step_s
    demand = workload.demand_kib
    nominal_all = workload.nominal_kib
    host_of = placement.host_of_vm
    n_host = placement.hosts
    capacity = placement.capacity_kib.astype(np.int64)
    vm_ids = np.arange(n_vm, dtype=np.int64)
    first_report = workload.info.get("first_report_step")
    first_report = np.asarray(first_report) if first_report is not None else None
    oracle = policy.simulation_only

    alloc = np.ceil(nominal_all[:, 0].astype(np.float64)).astype(np.int64)
    alloc_series = np.empty((n_vm, n_steps), dtype=np.float32)
    history = FleetHistory()
    max_move = workload.step_s * cloud.balloon_kib_s
    prev_demand = None
    for t in range(n_steps):
        nominal = np.ceil(nominal_all[:, t].astype(np.float64)).astype(np.int64)
        alloc = np.minimum(alloc, nominal)   # a smaller provisioned size caps the VM
        now = workload.start_s + t * step_s
        if oracle:
            seen = demand[:, t].astype(np.float64)
            used, deficit = seen, np.zeros(n_vm)
            report_ok = np.ones(n_vm, dtype=bool)
            future = seen
        elif prev_demand is None:
            used = np.full(n_vm, np.nan)
            deficit = np.zeros(n_vm)
            report_ok = np.zeros(n_vm, dtype=bool)
            future = None
        else:
            used = np.minimum(prev_demand, prev_alloc)
            deficit = np.maximum(prev_demand - prev_alloc, 0.0)
            report_ok = np.ones(n_vm, dtype=bool)
            future = None
        if first_report is not None:
            booted = t > first_report
            report_ok = report_ok & booted
            used = np.where(booted, used, np.nan)
        obs = FleetObs(now_s=now, vm_ids=vm_ids, host_index=host_of, nominal_kib=nominal,
                       allocated_kib=alloc, used_kib=used, report_ok=report_ok,
                       pressure=deficit > SHORT_TOLERANCE_KIB, deficit_kib=deficit,
                       future_need_kib=future)
        host_alloc = np.bincount(host_of, weights=alloc, minlength=n_host).astype(np.int64)
        hosts = HostColumns(host_ids=np.arange(n_host, dtype=np.int64), capacity_kib=capacity,
                            allocated_kib=host_alloc, physical_room_kib=capacity - host_alloc)
        cycle = decider.cycle(obs, hosts, history)
        history = cycle.history
        granted = cycle.plan.granted_kib
        moved = np.clip(granted - alloc, -max_move, max_move).astype(np.int64)
        prev_alloc = alloc.astype(np.float64)
        alloc = alloc + moved
        alloc_series[:, t] = alloc
        prev_demand = demand[:, t].astype(np.float64)
        prev_alloc = alloc.astype(np.float64)
        if progress is not None:
            progress(t)

    series = RunSeries(step_s=step_s, demand_kib=demand, nominal_kib=nominal_all,
                       alloc_kib=alloc_series, host_of_vm=host_of,
                       capacity_kib=placement.capacity_kib,
                       surge_starts=workload.surge_starts)
    return RunResult(policy=policy.name, metrics=compute_metrics(series), series=series)
