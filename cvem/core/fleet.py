"""Columnar views of the fleet, so one cycle over 10,000 VMs or a 30-day replay stays cheap.

The decision core works on numpy columns aligned by VM. A :class:`FleetObs` is what the
policies and guards read in one cycle; a :class:`FleetHistory` is what they carry between
cycles (cooldown times, per-policy histograms...). Both are frozen: each cycle returns a new
history instead of mutating the old one.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Mapping, Optional

import numpy as np

from .guest_signals import PressureThresholds, read_guest_figures
from .model import Snapshot


@dataclass(frozen=True)
class FleetObs:
    """One cycle's inputs, one entry per VM. Unknown figures are NaN (floats) or False."""

    now_s: float
    vm_ids: np.ndarray          # int64
    host_index: np.ndarray      # int64, index into the host columns
    nominal_kib: np.ndarray     # int64, never grow above
    allocated_kib: np.ndarray   # int64, current allocation
    used_kib: np.ndarray        # float64, guest used (NaN if no valid fresh report)
    report_ok: np.ndarray       # bool, a valid fresh guest report exists
    pressure: np.ndarray        # bool, guest swaps in / PSI full / was short last period
    deficit_kib: np.ndarray     # float64 >= 0, memory the guest lacked (swap growth estimate)
    future_need_kib: Optional[np.ndarray] = None  # simulation only: the oracle's knowledge
    # bool, False where the report may only grow the VM (an unchanged in-guest report the
    # host probe's statistics no longer agree with: never shrink on it). None: all may.
    shrink_ok: Optional[np.ndarray] = None
    # The hosts the VMs run on (``host_index`` points into them), for host-level rules such
    # as MoM's and Proxmox's; the decision cycle fills it in.
    hosts: Optional["HostColumns"] = None

    @property
    def size(self) -> int:
        return int(self.vm_ids.shape[0])

    def need_kib(self) -> np.ndarray:
        """Best estimate of what the guest wants now: used plus what it had to swap out."""
        return self.used_kib + self.deficit_kib


@dataclass(frozen=True)
class HostColumns:
    host_ids: np.ndarray          # int64
    capacity_kib: np.ndarray      # int64, MAX_MEM (what oned lets VMs allocate)
    allocated_kib: np.ndarray     # int64, MEM_USAGE (sum of VM allocations)
    physical_room_kib: np.ndarray  # int64, physical free minus reserve (large if unknown)
    # Overload protection needs the host's usable physical memory (physical minus reserve;
    # MAX_MEM may be larger once memory is lent to the scheduler) and its cluster, because
    # oned only migrates within a cluster. None: unknown (capacity / cluster 0 are assumed).
    usable_kib: Optional[np.ndarray] = None   # int64
    cluster_id: Optional[np.ndarray] = None   # int64
    # Whether a host's VM_MAD resizes live (oned.conf LIVE_RESIZE): a VM moved to one that
    # does not can never be resized again. None: all can.
    live_resize: Optional[np.ndarray] = None  # bool

    @property
    def size(self) -> int:
        return int(self.host_ids.shape[0])


def _empty_like_state(template: Mapping[str, np.ndarray], n: int) -> Dict[str, np.ndarray]:
    return {k: np.zeros((n,) + v.shape[1:], dtype=v.dtype) for k, v in template.items()}


@dataclass(frozen=True)
class FleetHistory:
    """Per-VM memory of past cycles, aligned with ``vm_ids``.

    ``columns`` holds the guards' and the policy's state arrays; every array's first axis is
    the VM axis. ``initial`` gives the value a VM seen for the first time starts with.
    """

    vm_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)

    def aligned(self, vm_ids: np.ndarray, initial: Mapping[str, np.ndarray]) -> "FleetHistory":
        """The history re-indexed to ``vm_ids``: known VMs keep their state, new VMs get
        ``initial`` (arrays of shape (1, ...)), VMs that left are dropped."""
        if self.vm_ids.shape == vm_ids.shape and np.array_equal(self.vm_ids, vm_ids) \
                and set(self.columns) >= set(initial) \
                and all(self.columns[k].shape[1:] == v.shape[1:] for k, v in initial.items()):
            return self   # (a column of another shape: a policy setting changed, restart it)
        n = vm_ids.shape[0]
        cols = {k: np.repeat(v, n, axis=0) if v.shape[0] == 1 else np.array(v)
                for k, v in initial.items()}
        if self.vm_ids.size and n:
            order = np.argsort(self.vm_ids, kind="stable")
            sorted_old = self.vm_ids[order]
            pos = np.searchsorted(sorted_old, vm_ids)
            pos_clipped = np.minimum(pos, sorted_old.size - 1)
            known = sorted_old[pos_clipped] == vm_ids
            src = order[pos_clipped[known]]
            for k, old in self.columns.items():
                if k in cols and old.shape[1:] == cols[k].shape[1:]:
                    cols[k][known] = old[src]
        return FleetHistory(vm_ids=np.array(vm_ids, dtype=np.int64), columns=cols)

    def carried_over(self, previous: "FleetHistory", keep_vm_ids) -> "FleetHistory":
        """This history plus the rows of ``previous`` for VMs in ``keep_vm_ids`` that this one
        lacks: a VM left out of one cycle (its resize or migration in flight, its host
        briefly unusable) keeps its cooldown clock and policy state instead of coming back
        as new."""
        keep = np.asarray(sorted(set(int(v) for v in keep_vm_ids)), dtype=np.int64)
        missing = np.setdiff1d(np.intersect1d(previous.vm_ids, keep), self.vm_ids)
        if missing.size == 0 or not previous.columns:
            return self
        rows = np.flatnonzero(np.isin(previous.vm_ids, missing))
        columns = {}
        for name, col in self.columns.items():
            old = previous.columns.get(name)
            if old is None or old.shape[1:] != col.shape[1:]:
                return self   # another policy's state: nothing sound to carry over
            columns[name] = np.concatenate([col, old[rows].astype(col.dtype)])
        if not self.columns:
            columns = {name: np.array(col[rows]) for name, col in previous.columns.items()}
        return FleetHistory(vm_ids=np.concatenate([self.vm_ids, previous.vm_ids[rows]]),
                            columns=columns)

    def with_columns(self, **updates: np.ndarray) -> "FleetHistory":
        merged = dict(self.columns)
        merged.update(updates)
        return replace(self, columns=merged)

    def select(self, prefix: str) -> Dict[str, np.ndarray]:
        """The columns under ``prefix`` (e.g. a policy's), without the prefix."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.columns.items() if k.startswith(p)}


# Default for callers without a service config (the service passes its stale_after_s; a report
# the probe keeps current carries the probe's time, see cvem.service.observe).
DEFAULT_MAX_REPORT_AGE_S = 180.0


def obs_from_snapshot(snapshot: Snapshot,
                      pressure_psi_full_avg10: float = PressureThresholds.psi_full_avg10,
                      pressure_swap_in_kib_s: float = PressureThresholds.swap_in_kib_s,
                      max_report_age_s: float = DEFAULT_MAX_REPORT_AGE_S):
    """Columns from a per-object snapshot, plus the host columns.

    Guest figures are read by :func:`~cvem.core.guest_signals.read_guest_figures`, the same
    reading the simulator's guests go through: a guest is under pressure when it swaps in
    faster than ``pressure_swap_in_kib_s`` or its PSI full avg10 exceeds
    ``pressure_psi_full_avg10`` percent, and then its swap in use is its deficit. So is a guest
    that deflated its balloon on its own (``self_deflated_kib``, deflate-on-OOM): what it took
    back is its deficit.

    A report is not used (``report_ok`` False, so the guards never shrink the VM) when the
    adapter rejected it (``report_problem``), when it is older than ``max_report_age_s`` on
    cvem's clock, or when its used figure is not a finite non-negative number.
    """
    hosts = snapshot.hosts
    host_pos = {h.host_id: i for i, h in enumerate(hosts)}
    big = np.iinfo(np.int64).max // 4
    host_cols = HostColumns(
        host_ids=np.array([h.host_id for h in hosts], dtype=np.int64),
        capacity_kib=np.array([h.max_mem_kib if h.enabled else 0 for h in hosts], dtype=np.int64),
        allocated_kib=np.array([h.mem_usage_kib for h in hosts], dtype=np.int64),
        physical_room_kib=np.array(
            [big if h.physical_free_kib is None else h.physical_free_kib - h.reserve_kib
             for h in hosts], dtype=np.int64),
        usable_kib=np.array([max(h.physical_kib - h.reserve_kib, 0) if h.enabled else 0
                             for h in hosts], dtype=np.int64),
        cluster_id=np.array([h.cluster_id for h in hosts], dtype=np.int64),
        live_resize=np.array([h.live_resize for h in hosts], dtype=bool),
    )
    vms = [v for v in snapshot.vms if v.host_id in host_pos]
    n = len(vms)
    valid = np.zeros(n, dtype=bool)
    used_in = np.full(n, np.nan)
    swap_used = np.zeros(n)
    swap_in = np.zeros(n)
    psi_full = np.full(n, np.nan)
    self_deflated = np.zeros(n)
    shrink_ok = np.ones(n, dtype=bool)
    for i, v in enumerate(vms):
        g = v.guest
        if g is None or v.report_problem is not None:
            continue
        if not (snapshot.now_s - g.sampled_at_s <= max_report_age_s):
            continue  # stale: the guest stopped publishing (or the time is unknown)
        valid[i] = True
        shrink_ok[i] = g.shrink_ok
        used_in[i] = g.used_kib
        swap_used[i] = g.swap_used_kib
        swap_in[i] = g.swap_in_kib_s
        if g.psi_full_avg10 is not None:
            psi_full[i] = g.psi_full_avg10
        self_deflated[i] = max(float(v.self_deflated_kib), 0.0)
    thresholds = PressureThresholds(psi_full_avg10=pressure_psi_full_avg10,
                                    swap_in_kib_s=pressure_swap_in_kib_s)
    used, ok, pressure, deficit = read_guest_figures(valid, used_in, swap_used, swap_in,
                                                     psi_full, thresholds)
    # It took memory back from its balloon rather than OOM-kill: it lacks at least that.
    took_back = ok & (self_deflated > 0)
    pressure = pressure | took_back
    deficit = np.where(took_back, np.maximum(deficit, self_deflated), deficit)
    obs = FleetObs(
        now_s=snapshot.now_s,
        vm_ids=np.array([v.vm_id for v in vms], dtype=np.int64),
        host_index=np.array([host_pos[v.host_id] for v in vms], dtype=np.int64),
        nominal_kib=np.array([v.nominal_kib for v in vms], dtype=np.int64),
        allocated_kib=np.array([v.allocated_kib for v in vms], dtype=np.int64),
        used_kib=used, report_ok=ok, pressure=pressure, deficit_kib=deficit,
        shrink_ok=None if shrink_ok.all() else shrink_ok,
    )
    return obs, host_cols
