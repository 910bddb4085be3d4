"""Builders for the overload-protection tests: hand-made host and VM columns."""
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from cvem.core.fleet import FleetObs, HostColumns  # noqa: E402
from cvem.core.planner import PHASE_NONE, PlanColumns  # noqa: E402

GIB = 1024 * 1024
NOW = 1_700_000_000.0


def columns(hosts, vms, now=NOW):
    """``hosts``: list of dicts (usable_gib, max_mem_gib=usable, cluster=0).
    ``vms``: list of dicts (host, alloc_gib, need_gib=alloc, missing_gib=0, urgent=False,
    nominal_gib=2×alloc, granted_gib=alloc). Returns (obs, host columns, plan, urgent)."""
    n = len(vms)
    host_index = np.array([v["host"] for v in vms], dtype=np.int64)
    alloc = np.array([int(v["alloc_gib"] * GIB) for v in vms], dtype=np.int64)
    granted = np.array([int(v.get("granted_gib", v["alloc_gib"]) * GIB) for v in vms],
                       dtype=np.int64)
    missing = np.array([int(v.get("missing_gib", 0) * GIB) for v in vms], dtype=np.int64)
    need = np.array([v.get("need_gib", v["alloc_gib"]) * GIB for v in vms], dtype=np.float64)
    nominal = np.array([int(v.get("nominal_gib", 2 * v["alloc_gib"]) * GIB) for v in vms],
                       dtype=np.int64)
    urgent = np.array([bool(v.get("urgent", False)) for v in vms])
    obs = FleetObs(now_s=now, vm_ids=np.array([v.get("id", 100 + i) for i, v in enumerate(vms)],
                                              dtype=np.int64),
                   host_index=host_index, nominal_kib=nominal, allocated_kib=alloc,
                   used_kib=need, report_ok=np.ones(n, bool), pressure=urgent,
                   deficit_kib=np.zeros(n))
    usable = np.array([int(h["usable_gib"] * GIB) for h in hosts], dtype=np.int64)
    max_mem = np.array([int(h.get("max_mem_gib", h["usable_gib"]) * GIB) for h in hosts],
                       dtype=np.int64)
    held = np.bincount(host_index, weights=granted, minlength=len(hosts)).astype(np.int64)
    hc = HostColumns(host_ids=np.array([h.get("id", 10 + i) for i, h in enumerate(hosts)],
                                       dtype=np.int64),
                     capacity_kib=max_mem, allocated_kib=held,
                     physical_room_kib=usable - held, usable_kib=usable,
                     cluster_id=np.array([h.get("cluster", 0) for h in hosts], dtype=np.int64))
    plan = PlanColumns(granted_kib=granted, phase=np.full(n, PHASE_NONE, dtype=np.int8),
                       missing_kib=missing)
    return obs, hc, plan, urgent


@pytest.fixture
def build():
    return columns
