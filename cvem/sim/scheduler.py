"""The admission run: OpenNebula's scheduler deploys VMs from a held-back pool whenever a
host shows room, while cloudvamp resizes, lends and migrates.

The workload is split once: the *fleet* (every other VM) is placed first-fit on nominal
memory, the status quo; the *pool* (the others) is never seen before it arrives. From
``warmup_s`` on, one pool VM arrives every ``interval_s`` (the pool is cycled, each reuse
rotated in time so it is no clone), up to ``max_ratio`` × the fleet; the arrival schedule is
the same for every strategy and policy. Arrivals wait in OpenNebula's pending queue; every
period the scheduler walks it in order and deploys each VM that fits somewhere (oned's test,
``MAX_MEM − MEM_USAGE ≥ MEMORY``, with ``MAX_MEM = usable + lent``), on the first host that
fits (``first-fit``) or, as the stock rank scheduler's default striping policy does, on the
fitting host with the fewest VMs (``striping``). A deployed VM starts at its nominal size and
replays its own trace from that moment; it never leaves.

``extra_vms_pct`` = VMs deployed from the pool ÷ fleet VMs: what lending bought over static
placement (which deploys none, the hosts being full on nominal memory).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from ..core.policy import Policy  # noqa: F401  (documentation: the run drives any policy)
from ..lending.base import Strategy
from ..lending.target import LendParams
from .admission import Admitted
from .lending import SimLending
from .placement import Placement
from .workloads import Workload

PLACEMENTS = ("striping", "first-fit")


@dataclass(frozen=True)
class AdmissionParams:
    warmup_s: float = 86400.0       # history before the first arrival
    interval_s: float = 600.0       # one arrival per interval
    max_ratio: float = 3.0          # at most this many arrivals per fleet VM
    placement: str = "striping"     # or first-fit


def split_fleet_pool(workload: Workload):
    """(fleet, pool): every other VM, so both halves look alike and the pool stays unseen."""
    idx = np.arange(workload.vms)
    fleet, pool = idx[idx % 2 == 0], idx[idx % 2 == 1]

    def part(rows, tag):
        return Workload(f"{workload.name}:{tag}", workload.step_s, workload.demand_kib[rows],
                        workload.nominal_kib[rows], [list(workload.vm_names)[i] for i in rows]
                        if len(workload.vm_names) else [], workload.start_s,
                        {k: v for k, v in workload.info.items() if k != "first_report_step"})
    return part(fleet, "fleet"), part(pool, "pool")


class Admission:
    """One arm's pending queue, lending and deployments (mutable; one per run)."""

    def __init__(self, fleet: Workload, pool: Workload, placement: Placement,
                 strategy: Strategy, lend: LendParams, params: AdmissionParams):
        if params.placement not in PLACEMENTS:
            raise ValueError(f"placement {params.placement!r}: choose from {PLACEMENTS}")
        self.params = params
        self.fleet_vms = fleet.vms
        steps = fleet.steps
        first = int(np.ceil(params.warmup_s / fleet.step_s))
        every = max(1, int(round(params.interval_s / fleet.step_s)))
        count = int(min(params.max_ratio * fleet.vms, max(0, (steps - first + every - 1) // every)))
        self.arrival_step = first + every * np.arange(count)
        self.source = np.arange(count) % max(pool.vms, 1)
        self.shift = (np.arange(count) // max(pool.vms, 1)) * max(1, steps // 7)
        self.pool = pool
        n_rows = fleet.vms + count
        demand = np.zeros((n_rows, steps), dtype=np.float32)
        nominal = np.zeros((n_rows, steps), dtype=np.float32)
        demand[:fleet.vms] = fleet.demand_kib
        nominal[:fleet.vms] = fleet.nominal_kib
        self.workload = Workload(fleet.name.replace(":fleet", ""), fleet.step_s, demand, nominal,
                                 list(fleet.vm_names) + [f"pool{i}" for i in range(count)],
                                 fleet.start_s, dict(fleet.info))
        host_of = np.r_[placement.host_of_vm, np.zeros(count, np.int64)].astype(np.int64)
        self.placement = Placement(host_of, placement.capacity_kib, placement.physical_kib,
                                   placement.reserve_kib)
        deploy = np.r_[np.zeros(fleet.vms, np.int64), np.full(count, steps, np.int64)]
        self.admitted = Admitted(self.workload, self.placement, deploy, np.zeros(placement.hosts),
                                 {"fleet_vms": fleet.vms, "pool_vms": pool.vms,
                                  "arrivals": count})
        self.lending = SimLending(strategy, lend, placement.hosts, n_rows,
                                  placement.capacity_kib)
        self.pending: List[int] = []
        self.next_arrival = 0
        self.deployed = 0
        self.last_host_of: Optional[np.ndarray] = None

    # ---------------------------------------------------------------- engine hooks
    def before_period(self, run, t: int) -> None:
        """Arrivals join the queue; the scheduler deploys what fits (before the period's
        provisioned sizes are read, so a deployed VM starts this period)."""
        self._note_landings(run)
        while self.next_arrival < self.arrival_step.size and \
                self.arrival_step[self.next_arrival] <= t:
            self.pending.append(self.next_arrival)
            self.next_arrival += 1
        if not self.pending:
            return
        n = int(run.live_at[t])
        free = self._free_kib(run, n)
        vms_on = np.bincount(run.host_of[:n], minlength=free.size)
        left: List[int] = []
        for c in self.pending:
            demand, nominal = self._trace(c)
            size = float(np.ceil(nominal[t]))
            fits = np.flatnonzero(free >= size)
            if size <= 0 or fits.size == 0:
                left.append(c)
                continue
            h = int(fits[0] if self.params.placement == "first-fit"
                    else fits[np.argmin(vms_on[fits])])
            row = self.fleet_vms + self.deployed
            self.workload.demand_kib[row, t:] = demand[t:]
            self.workload.nominal_kib[row, t:] = nominal[t:]
            run.deploy_step[row] = t
            run.present_from[row] = t      # scored from its deployment, like a traced VM
            run.host_of[row] = h
            run.live_at[t:] += 1
            free[h] -= size
            vms_on[h] += 1
            self.lending.arrived(h, size)
            self.deployed += 1
        self.pending = left
        self.last_host_of = run.host_of.copy()

    def after_observe(self, run, obs, nominal_t: np.ndarray) -> None:
        self.lending.observe(obs.now_s, run.host_of, np.asarray(obs.used_kib, np.float64),
                             run.alloc.astype(np.float64), nominal_t.astype(np.float64))

    def after_balloons(self, run, n: int, nominal_t: np.ndarray) -> None:
        self.lending.update_lent(run.host_of[:n], run.alloc[:n].astype(np.float64),
                                 nominal_t[:n].astype(np.float64))

    # ------------------------------------------------------------------- pieces
    def _trace(self, c: int):
        src, shift = int(self.source[c]), int(self.shift[c])
        return (np.roll(self.pool.demand_kib[src], shift),
                np.roll(self.pool.nominal_kib[src], shift))

    def _free_kib(self, run, n: int) -> np.ndarray:
        """oned's MAX_MEM − MEM_USAGE per host; an in-flight VM counts on both ends."""
        n_host = self.lending.usable.size
        usage = np.bincount(run.host_of[:n], weights=run.alloc[:n], minlength=n_host)
        if run.flying_any:
            f = run.dest[:n] >= 0
            usage += np.bincount(run.dest[:n][f], weights=run.alloc[:n][f], minlength=n_host)
        return self.lending.usable + self.lending.lent - usage

    def _note_landings(self, run) -> None:
        if self.last_host_of is None:
            self.last_host_of = run.host_of.copy()
            return
        moved = np.flatnonzero(run.host_of != self.last_host_of)
        for v in moved:
            self.lending.arrived(int(run.host_of[v]), float(self.workload.nominal_kib[v].max()))
        self.last_host_of = run.host_of.copy()

    def summary(self) -> Dict[str, float]:
        return {"extra_vms": self.deployed,
                "extra_vms_pct": 100.0 * self.deployed / max(self.fleet_vms, 1),
                "pending_at_end": len(self.pending) + int(self.arrival_step.size - self.next_arrival),
                "reserved_writes": self.lending.writes}
