"""Benchmark metrics of one simulated run (definitions: shared/reference/peers.md §8.2).

* ``reclaimed_pct``: 1 − Σ allocation / Σ nominal over all VM-periods.
* ``shortfall_interval_pct``: VM-periods whose demand exceeded the allocation (> 1 MiB).
* ``shortfall_gib_min``: the missing memory integrated over time.
* ``severe_events``: maximal runs of consecutive short periods of one VM in which the
  shortfall exceeded 10 % of demand or 256 MiB at least once (an OOM/swap-storm proxy).
* ``avoidable_severe``: the severe events in which the VM was severely short at a demand no
  higher than the largest it had shown before the event began — a level a controller could
  have known (the rest are at a new all-time maximum of the VM).
* ``host_overload_pct``: host-periods whose VMs' total demand exceeded the host's physical
  memory minus its reserve.
* ``resizes_per_vm_hour``: allocation changes per VM-hour (control churn).
* ``extra_vms_pct``: VMs OpenNebula's scheduler deployed from the held-back pool during an
  admission run (:mod:`cvem.sim.scheduler`), per 100 VMs of the statically placed fleet;
  NaN (n/a) in a run without admission — it is measured, never estimated.
* ``reaction_p95_s``: p95 over surges of the time from surge start until allocation ≥ demand
  (scenario surges from the generator; on traces, each shortfall run is a surge).
* ``oracle_efficiency_pct``: reclaimed ÷ the oracle's reclaimed (filled in by the suite).
* ``migrations_per_host_hour``, ``ping_pong``: live migrations and VMs moved again within an
  hour (from the engine's migration model, :mod:`cvem.core.migration`).
* ``host_overcommit_pct`` (extra): host-time with Σ allocation above physical − reserve
  (in-flight VMs count on both hosts); ``migrated_gib`` (extra): memory moved.

**What is scored.** A VM-period counts from the VM's first trace sample (``present_from``:
before it the VM did not exist yet) plus ``warmup_steps`` (each VM's first day on traces: it
starts at its nominal size and every policy is still learning). Host figures count from
``warmup_steps``. The warm-up periods are reported separately as ``warmup_*`` figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

SHORT_TOLERANCE_KIB = 1024.0
SEVERE_RATIO = 0.10
SEVERE_KIB = 256 * 1024.0

METRIC_NAMES = ("reclaimed_pct", "oracle_efficiency_pct", "shortfall_interval_pct",
                "shortfall_gib_min", "severe_events", "avoidable_severe", "host_overload_pct",
                "resizes_per_vm_hour", "extra_vms_pct", "migrations_per_host_hour",
                "ping_pong", "reaction_p95_s")


@dataclass
class RunSeries:
    step_s: float
    demand_kib: np.ndarray       # [vm, t]
    nominal_kib: np.ndarray      # [vm, t]
    alloc_kib: np.ndarray        # [vm, t]
    host_of_vm: np.ndarray       # [vm]
    capacity_kib: np.ndarray     # [host]
    surge_starts: Optional[np.ndarray] = None
    migrations: int = 0
    ping_pong: int = 0
    host_demand_kib: Optional[np.ndarray] = None  # [host, t] when VMs move between hosts
    host_alloc_kib: Optional[np.ndarray] = None   # [host, t] idem (in-flight VMs on both ends)
    migrated_kib: float = 0.0                      # memory moved by live migrations
    present_from: Optional[np.ndarray] = None      # [vm] first period the VM exists (0: all)
    warmup_steps: int = 0                           # periods of each VM not scored (day 1)

    def cluster(self) -> Dict[str, np.ndarray]:
        return {"demand_kib": self.demand_kib.sum(axis=0, dtype=np.float64),
                "alloc_kib": self.alloc_kib.sum(axis=0, dtype=np.float64),
                "nominal_kib": self.nominal_kib.sum(axis=0, dtype=np.float64)}


def _runs(mask: np.ndarray):
    """Label maximal runs of True along each row: (labels [vm, t] (0 = none), run count)."""
    n_vm, n_t = mask.shape
    padded = np.zeros((n_vm, n_t + 1), dtype=bool)
    padded[:, :n_t] = mask
    flat = padded.ravel()
    starts = flat & ~np.r_[False, flat[:-1]]
    labels = np.cumsum(starts) * flat
    return labels.reshape(n_vm, n_t + 1)[:, :n_t], int(starts.sum())


def _scored_cells(s: RunSeries):
    """(scored [vm, t], warm-up [vm, t], first scored host period)."""
    n_vm, n_t = s.demand_kib.shape
    start = (np.zeros(n_vm, dtype=np.int64) if s.present_from is None
             else np.asarray(s.present_from, dtype=np.int64))
    t = np.arange(n_t)[None, :]
    present = t >= start[:, None]
    scored = t >= (start + s.warmup_steps)[:, None]
    return scored, present & ~scored, min(s.warmup_steps, n_t - 1)


def _severe_events(demand, gap, short, mask):
    """(short runs, their labels, severe runs, avoidable severe runs) within ``mask``."""
    short = short & mask
    severe_cell = short & ((gap > SEVERE_RATIO * demand) | (gap > SEVERE_KIB))
    labels, n_runs = _runs(short)
    severe_labels = np.unique(labels[severe_cell])
    if not severe_labels.size:
        return n_runs, labels, 0, 0
    # The largest demand each VM showed before each period (cells before it exists are 0).
    before = np.maximum.accumulate(demand, axis=1)
    before = np.concatenate([np.zeros((demand.shape[0], 1)), before[:, :-1]], axis=1)
    flat_labels = labels.ravel()
    run_start = np.zeros(n_runs + 1, dtype=np.int64)
    first = np.flatnonzero(short.ravel() & ~np.r_[False, short.ravel()[:-1]])
    run_start[flat_labels[first]] = first
    known_level = before.ravel()[run_start]            # per run: the peak shown before it
    lowest = np.full(n_runs + 1, np.inf)
    np.minimum.at(lowest, flat_labels[severe_cell.ravel()], demand.ravel()[severe_cell.ravel()])
    avoidable = int(np.count_nonzero(lowest[severe_labels] <= known_level[severe_labels]))
    return n_runs, labels, int(severe_labels.size), avoidable


def _vm_figures(s: RunSeries, mask: np.ndarray, prefix: str = "") -> Dict[str, float]:
    """Reclaim, shortfall, severity and churn over the VM-periods in ``mask``."""
    demand = s.demand_kib.astype(np.float64)
    alloc = s.alloc_kib.astype(np.float64)
    nominal = s.nominal_kib.astype(np.float64)
    gap = demand - alloc
    short_all = gap > SHORT_TOLERANCE_KIB
    n_runs, labels, severe, avoidable = _severe_events(demand, gap, short_all, mask)
    short = short_all & mask
    cells = max(int(mask.sum()), 1)
    vm_hours = cells * s.step_s / 3600.0
    changed = (np.diff(alloc, axis=1) != 0) & mask[:, 1:] & mask[:, :-1]
    return {
        prefix + "reclaimed_pct": 100.0 * (1.0 - alloc[mask].sum() / max(nominal[mask].sum(), 1.0)),
        prefix + "shortfall_interval_pct": 100.0 * short.sum() / cells,
        prefix + "shortfall_gib_min": float(gap[short].sum() / 2**20 * s.step_s / 60.0),
        prefix + "severe_events": severe,
        prefix + "avoidable_severe": avoidable,
        prefix + "resizes_per_vm_hour": int(changed.sum()) / max(vm_hours, 1e-9),
        prefix + "shortfall_events": n_runs,
        prefix + "slack_pct": float(100.0 * (1.0 - demand[mask].sum() / max(alloc[mask].sum(), 1.0))),
        "_labels": labels, "_n_runs": n_runs, "_short": short,
    }


def compute_metrics(s: RunSeries) -> Dict[str, float]:
    scored, warm, t0 = _scored_cells(s)
    vm = _vm_figures(s, scored)
    labels, n_runs, short = vm.pop("_labels"), vm.pop("_n_runs"), vm.pop("_short")
    warm_figures = {}
    if warm.any():
        warm_figures = _vm_figures(s, warm, prefix="warmup_")
        for k in ("_labels", "_n_runs", "_short"):
            warm_figures.pop(k)
    demand = s.demand_kib.astype(np.float64)
    alloc = s.alloc_kib.astype(np.float64)
    nominal = s.nominal_kib.astype(np.float64)
    n_t = demand.shape[1]
    hours = (n_t - t0) * s.step_s / 3600.0

    n_host = s.capacity_kib.shape[0]
    if s.host_demand_kib is not None:
        host_demand = s.host_demand_kib
    else:
        host_demand = np.zeros((n_host, n_t))
        np.add.at(host_demand, s.host_of_vm, demand)
    host_demand = host_demand[:, t0:]
    overload = host_demand > s.capacity_kib[:, None] + SHORT_TOLERANCE_KIB

    if s.host_alloc_kib is not None:
        host_alloc = s.host_alloc_kib
    else:
        host_alloc = np.zeros((n_host, n_t))
        np.add.at(host_alloc, s.host_of_vm, alloc)
    host_alloc = host_alloc[:, t0:]
    overcommit = host_alloc > s.capacity_kib[:, None] + SHORT_TOLERANCE_KIB

    cluster_alloc = np.where(scored, alloc, 0.0).sum(axis=0)[t0:]
    cluster_nominal = np.where(scored, nominal, 0.0).sum(axis=0)[t0:]
    return {
        **vm,
        "oracle_efficiency_pct": float("nan"),
        "host_overload_pct": 100.0 * overload.sum() / max(overload.size, 1),
        "extra_vms_pct": float("nan"),   # measured by the admission run (sim/scheduler.py)
        "migrations_per_host_hour": s.migrations / max(n_host * hours, 1e-9),
        "ping_pong": int(s.ping_pong),
        "reaction_p95_s": _reaction_p95_s(short, labels, n_runs, s),
        "peak_alloc_pct": float(100.0 * (cluster_alloc / np.maximum(cluster_nominal, 1.0)).max()),
        # host-time whose VMs hold more than the host has (Σ alloc > physical − reserve):
        # what admitted VMs cost a policy that cannot shrink (peers.md §8.2 item 5)
        "host_overcommit_pct": 100.0 * overcommit.sum() / max(overcommit.size, 1),
        "migrated_gib": float(s.migrated_kib / 2**20),
        "warmup_steps": int(s.warmup_steps),
        **warm_figures,
    }


def _reaction_p95_s(short, labels, n_runs, s: RunSeries) -> float:
    if s.surge_starts is not None and len(s.surge_starts):
        waits = []
        for vm, start in s.surge_starts:
            row = short[vm, start:]
            ok = np.flatnonzero(~row)
            waits.append((ok[0] if ok.size else row.size) * s.step_s)
        return float(np.percentile(waits, 95))
    if n_runs == 0:
        return 0.0
    lengths = np.bincount(labels.ravel(), minlength=n_runs + 1)[1:]
    return float(np.percentile(lengths * s.step_s, 95))
