"""Builders for decision-core tests (VPA ``test_vpa.go`` style): give only what a test is
about, get a consistent object with sensible defaults for the rest.

Sizes are KiB; ``GIB``/``MIB`` help write them. The fixed clock is :data:`NOW`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from cvem.core.fleet import FleetHistory, FleetObs, HostColumns
from cvem.core.guards import GuardParams
from cvem.core.model import GuestReport, HostView, Snapshot, VmView

MIB = 1024
GIB = 1024 * 1024
NOW = 1_700_000_000.0


def _col(value, n, dtype):
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        arr = np.full(n, arr, dtype=dtype)
    assert arr.shape == (n,), f"column of length {arr.shape} for {n} VMs"
    return arr


def make_obs(n: Optional[int] = None, *, nominal=8 * GIB, alloc=None, used=2 * GIB,
             report_ok=None, pressure=False, deficit=0.0, host=0, now=NOW, vm_ids=None,
             future=None) -> FleetObs:
    """A :class:`FleetObs` for ``n`` VMs; each keyword is a scalar (all VMs) or a sequence.

    ``alloc`` defaults to ``nominal``; ``used=None`` (or NaN) means no report, and
    ``report_ok`` defaults to "used is known".
    """
    if n is None:
        for v in (nominal, alloc, used, report_ok, pressure, deficit, host, vm_ids, future):
            if v is not None and np.ndim(v) == 1:
                n = len(v)
                break
        else:
            n = 1
    nominal_c = _col(nominal, n, np.float64).astype(np.int64)
    alloc_c = nominal_c.copy() if alloc is None else _col(alloc, n, np.float64).astype(np.int64)
    used_c = _col(np.nan if used is None else used, n, np.float64)
    ok = np.isfinite(used_c) if report_ok is None else _col(report_ok, n, bool)
    used_c = np.where(ok, used_c, np.nan)
    return FleetObs(
        now_s=float(now),
        vm_ids=np.arange(n, dtype=np.int64) if vm_ids is None else _col(vm_ids, n, np.int64),
        host_index=_col(host, n, np.int64),
        nominal_kib=nominal_c, allocated_kib=alloc_c, used_kib=used_c, report_ok=ok,
        pressure=_col(pressure, n, bool), deficit_kib=_col(deficit, n, np.float64),
        future_need_kib=None if future is None else _col(future, n, np.float64))


def make_hosts(room=None, *, capacity=64 * GIB, allocated=0, physical_room=None,
               n: Optional[int] = None) -> HostColumns:
    """Host columns; ``room`` is shorthand for capacity − allocated with unlimited physical."""
    if n is None:
        n = next((len(v) for v in (room, capacity, allocated, physical_room)
                  if v is not None and np.ndim(v) == 1), 1)
    if room is not None:
        capacity = _col(room, n, np.int64)
        allocated = 0
    big = np.iinfo(np.int64).max // 4
    return HostColumns(
        host_ids=np.arange(n, dtype=np.int64),
        capacity_kib=_col(capacity, n, np.int64), allocated_kib=_col(allocated, n, np.int64),
        physical_room_kib=_col(big if physical_room is None else physical_room, n, np.int64))


def guards(**overrides) -> GuardParams:
    """Guard settings with every rule switched off except those given."""
    base = dict(floor_kib=0, floor_ratio=0.0, min_size_kib=0, min_step_kib=0,
                min_step_ratio=0.0, cooldown_s=0.0, max_shrink_ratio=1.0,
                pressure_grow_ratio=0.0)
    base.update(overrides)
    return GuardParams(**base)


def never_changed(n: int) -> np.ndarray:
    return np.full(n, -np.inf)


# ------------------------------------------------------------------ per-object snapshot

def make_guest(used=2 * GIB, *, total=None, age_s=10.0, now=NOW, swap_in=0.0, swap_used=0,
               psi_full=None, **extra) -> GuestReport:
    return GuestReport(used_kib=int(used), total_kib=int(total if total is not None else 8 * GIB),
                       sampled_at_s=now - age_s, swap_in_kib_s=swap_in,
                       swap_used_kib=int(swap_used), psi_full_avg10=psi_full, **extra)


def make_vm(vm_id: int, *, host=0, nominal=8 * GIB, alloc=None, guest="default",
            report_problem=None) -> VmView:
    if guest == "default":
        guest = make_guest()
    return VmView(vm_id=vm_id, host_id=host, nominal_kib=int(nominal),
                  allocated_kib=int(nominal if alloc is None else alloc), guest=guest,
                  report_problem=report_problem)


def make_host(host_id: int = 0, *, capacity=64 * GIB, usage=None, physical_free=None,
              reserve=0, vms: Sequence[VmView] = ()) -> HostView:
    """A host; ``usage`` defaults to the sum of the given VMs' allocations."""
    if usage is None:
        usage = sum(v.allocated_kib for v in vms if v.host_id == host_id)
    return HostView(host_id=host_id, name=f"host{host_id}", physical_kib=int(capacity),
                    max_mem_kib=int(capacity), mem_usage_kib=int(usage),
                    physical_free_kib=physical_free, reserve_kib=int(reserve))


def make_snapshot(vms: Sequence[VmView], hosts: Optional[Sequence[HostView]] = None,
                  now=NOW) -> Snapshot:
    if hosts is None:
        ids = sorted({v.host_id for v in vms})
        hosts = [make_host(h, vms=vms) for h in ids]
    return Snapshot(now_s=now, hosts=tuple(hosts), vms=tuple(vms))


def empty_history() -> FleetHistory:
    return FleetHistory()


# Property tests stay fast and reproducible in CI (settings per test, never a global profile,
# so other test folders keep theirs). CVEM_HYPOTHESIS_EXAMPLES=2000 for a deeper local run.
def property_settings(max_examples: int = 60):
    import os

    from hypothesis import HealthCheck, settings
    return settings(max_examples=int(os.environ.get("CVEM_HYPOTHESIS_EXAMPLES", max_examples)),
                    deadline=None, derandomize=os.environ.get("CVEM_HYPOTHESIS_RANDOM") is None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
