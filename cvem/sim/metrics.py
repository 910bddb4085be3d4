"""Benchmark metrics of one simulated run (definitions: shared/reference/peers.md §8.2).

* ``reclaimed_pct``: 1 − Σ allocation / Σ nominal over all VM-periods.
* ``shortfall_interval_pct``: VM-periods whose demand exceeded the allocation (> 1 MiB).
* ``shortfall_gib_min``: the missing memory integrated over time.
* ``severe_events``: maximal runs of consecutive short periods of one VM in which the
  shortfall exceeded 10 % of demand or 256 MiB at least once (an OOM/swap-storm proxy).
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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

SHORT_TOLERANCE_KIB = 1024.0
SEVERE_RATIO = 0.10
SEVERE_KIB = 256 * 1024.0

METRIC_NAMES = ("reclaimed_pct", "oracle_efficiency_pct", "shortfall_interval_pct",
                "shortfall_gib_min", "severe_events", "host_overload_pct",
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
    deploy_step: Optional[np.ndarray] = None       # [vm] first period it exists (admission)

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


def compute_metrics(s: RunSeries) -> Dict[str, float]:
    demand = s.demand_kib.astype(np.float64)
    alloc = s.alloc_kib.astype(np.float64)
    nominal = s.nominal_kib.astype(np.float64)
    n_vm, n_t = demand.shape
    hours = n_t * s.step_s / 3600.0
    gap = demand - alloc
    live = np.ones_like(gap, dtype=bool)
    if s.deploy_step is not None:   # a VM not deployed yet is neither short nor counted
        live = np.arange(n_t)[None, :] >= s.deploy_step[:, None]
    short = (gap > SHORT_TOLERANCE_KIB) & live
    severe_cell = short & ((gap > SEVERE_RATIO * demand) | (gap > SEVERE_KIB))
    labels, n_runs = _runs(short)
    severe_runs = np.unique(labels[severe_cell]).size

    n_host = s.capacity_kib.shape[0]
    if s.host_demand_kib is not None:
        host_demand = s.host_demand_kib
    else:
        host_demand = np.zeros((n_host, n_t))
        np.add.at(host_demand, s.host_of_vm, demand)
    overload = host_demand > s.capacity_kib[:, None] + SHORT_TOLERANCE_KIB

    if s.host_alloc_kib is not None:
        host_alloc = s.host_alloc_kib
    else:
        host_alloc = np.zeros((n_host, n_t))
        np.add.at(host_alloc, s.host_of_vm, alloc)
    overcommit = host_alloc > s.capacity_kib[:, None] + SHORT_TOLERANCE_KIB
    changes = int(np.count_nonzero(np.diff(alloc, axis=1)))
    vm_hours = live.sum() * s.step_s / 3600.0
    return {
        "reclaimed_pct": 100.0 * (1.0 - alloc.sum() / nominal.sum()),
        "oracle_efficiency_pct": float("nan"),
        "shortfall_interval_pct": 100.0 * short.sum() / max(live.sum(), 1),
        "shortfall_gib_min": float(np.clip(gap, 0, None)[short].sum() / 2**20 * s.step_s / 60.0),
        "severe_events": int(severe_runs),
        "host_overload_pct": 100.0 * overload.sum() / max(overload.size, 1),
        "resizes_per_vm_hour": changes / max(vm_hours, 1e-9),
        "extra_vms_pct": float("nan"),
        "migrations_per_host_hour": s.migrations / max(n_host * hours, 1e-9),
        "ping_pong": int(s.ping_pong),
        "reaction_p95_s": _reaction_p95_s(short, labels, n_runs, s),
        # extra figures, useful in plots and the bench table
        "shortfall_events": n_runs,
        "peak_alloc_pct": float(100.0 * (alloc.sum(axis=0) / nominal.sum(axis=0)).max()),
        "slack_pct": float(100.0 * (1.0 - demand.sum() / max(alloc.sum(), 1.0))),
        # host-time whose VMs hold more than the host has (Σ alloc > physical − reserve):
        # what admitted VMs cost a policy that cannot shrink (peers.md §8.2 item 5)
        "host_overcommit_pct": 100.0 * overcommit.sum() / max(overcommit.size, 1),
        "migrated_gib": float(s.migrated_kib / 2**20),
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
