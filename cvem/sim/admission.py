"""Admission: OpenNebula's scheduler deploys more VMs into the memory cloudvamp frees.

Without it the simulated cloud never holds more nominal memory than it has (first-fit on
nominal), so no host can overload and overload protection is never tested. With it, after a
warm-up the scheduler deploys extra VMs from a queue onto hosts where
``MAX_MEM − MEM_USAGE ≥ nominal`` (it deploys at nominal; cvem then shrinks them).

**The admitted set is decided once, before any policy runs, and is the same for every policy.**
The scheduler's view of each host is a *reference* that does not depend on the policy under
test: every VM counted at its warm-up peak demand × (1 + ``margin``) — what a good reclaimer
frees. The front-end lends a fraction ``lend_factor`` of the reclaimed memory to the scheduler
and keeps the rest back for regrowth (the original's ``$O``; the real front-end sets it with
``RESERVED_MEM``), so a host accepts a VM while

    capacity − Σ nominal + lend_factor × Σ (nominal − reference) ≥ nominal of the new VM.

Why fixed rather than per policy: reclaim, shortfall and overload are then measured over the
same VMs and the same oversubscription for every arm, so ``none`` (which frees nothing and
could admit nothing) faces the same load as ``default``, and the question the benchmark asks —
does the policy plus overload protection keep a host that holds more nominal memory than it
has out of trouble? — is asked of all of them alike. ``none`` shows what that load costs
without reclaim (its ``host_overcommit_pct``). Per-policy admission (how many VMs each policy
would let in) is measured by the admission run of :mod:`cvem.sim.scheduler` (`cvem bench lend`).

The queued VMs are copies of the workload's VMs with their demand rotated in time (so they
are not clones of their originals), deployed one every ``interval_s`` after the warm-up,
packing (the fullest host that fits first, as OpenNebula's packing policy).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Optional

import numpy as np

from .placement import Placement
from .workloads import Workload


@dataclass(frozen=True)
class Admitted:
    workload: Workload          # originals first, then admitted VMs in deploy order
    placement: Placement        # host_of_vm covers every VM
    deploy_step: np.ndarray     # int64 [vm]: 0 for originals
    lent_kib: np.ndarray        # float64 [host]: what MAX_MEM exceeds usable memory by
    info: Dict[str, object]


def admit(workload: Workload, placement: Placement, lend_factor: float = 1.0,
          after_s: Optional[float] = None, interval_s: float = 600.0,
          margin_ratio: float = 0.10) -> Admitted:
    n, steps = workload.vms, workload.steps
    step_s = workload.step_s
    warm = int(after_s / step_s) if after_s is not None else steps // 4
    warm = int(np.clip(warm, 1, steps - 1))
    every = max(1, int(round(interval_s / step_s)))
    cap = placement.capacity_kib.astype(np.float64)
    host_of = placement.host_of_vm
    demand = workload.demand_kib
    nominal = workload.nominal_kib
    peak_nominal = nominal.max(axis=1).astype(np.float64)
    ref = np.minimum(demand[:, :warm].max(axis=1) * (1.0 + margin_ratio), peak_nominal)
    sum_nom = np.bincount(host_of, weights=peak_nominal, minlength=cap.size)
    sum_ref = np.bincount(host_of, weights=ref, minlength=cap.size)

    rows_d, rows_n, hosts, deploys, surges = [], [], [], [], []
    slot = warm
    stride = max(1, steps // 97)
    for k in range(n):
        if slot >= steps:
            break
        shift = (steps // 3 + k * stride) % steps
        d = np.roll(demand[k], shift)
        m = np.roll(nominal[k], shift)
        size = float(m.max())
        r = min(float(d[:warm].max()) * (1.0 + margin_ratio), size)
        room = cap - sum_nom + lend_factor * (sum_nom - sum_ref)
        fits = np.flatnonzero(room >= size)
        if fits.size == 0:
            continue  # stays pending in OpenNebula; the next (smaller) VM may fit
        h = int(fits[np.argmin(room[fits])])   # packing: the fullest host that fits
        sum_nom[h] += size
        sum_ref[h] += r
        d = d.copy()
        m = m.copy()
        d[:slot] = 0.0
        m[:slot] = 0.0
        rows_d.append(d)
        rows_n.append(m)
        hosts.append(h)
        deploys.append(slot)
        if workload.surge_starts is not None:
            for vm, s in workload.surge_starts:
                if vm == k:
                    s2 = (int(s) + shift) % steps
                    if s2 > slot:
                        surges.append((n + len(hosts) - 1, s2))
        slot += every

    extra = len(hosts)
    lent = np.maximum(lend_factor * (sum_nom - sum_ref), 0.0)
    info = {"admitted_vms": extra, "lend_factor": lend_factor,
            "admit_from_step": warm,
            "oversubscribed_hosts": int(np.sum(sum_nom > cap + 1.0)),
            "peak_nominal_over_capacity": round(float(np.max(sum_nom / cap)), 3)}
    if extra == 0:
        return Admitted(workload, placement, np.zeros(n, np.int64), np.zeros(cap.size), info)
    surge_arr = workload.surge_starts
    if surges:
        base = surge_arr if surge_arr is not None else np.zeros((0, 2), np.int64)
        surge_arr = np.r_[base, np.array(surges, dtype=np.int64)].astype(np.int64)
    w = Workload(name=workload.name, step_s=step_s,
                 demand_kib=np.vstack([demand, np.array(rows_d, dtype=np.float32)]),
                 nominal_kib=np.vstack([nominal, np.array(rows_n, dtype=np.float32)]),
                 vm_names=list(workload.vm_names) + [f"admitted{i}" for i in range(extra)],
                 start_s=workload.start_s, info=dict(workload.info, **info),
                 surge_starts=surge_arr)
    p = replace(placement, host_of_vm=np.r_[host_of, np.array(hosts, dtype=np.int64)])
    deploy = np.r_[np.zeros(n, np.int64), np.array(deploys, dtype=np.int64)]
    return Admitted(w, p, deploy, lent, info)
