"""``cvem bench writes``: the writes publishers and cvem put on oned, per 1,000 VMs.

Every OneGate PUT from a guest's publisher is one ``one.vm.update``, a write to oned's
database, and so is every show attribute cvem writes; oned on sqlite sustains only a few
hundred of them a second (:mod:`cvem.bench.oned_capacity` measures it). Two sources:

* **publishers**: each VM's trace is replayed through the publisher's own decision
  function (``publish_reason`` in ``onegate/cloudvamp-publisher``, loaded from the file
  the guests run), sampled every ``sample_s`` like the real loop. Within a trace step the
  figures are constant, so the function is called at each step's first sample and again
  only when the heartbeat falls due inside the step: the same decisions as calling it at
  every sample, without the redundant calls. The guest's figures are the simulator's
  (:func:`cvem.sim.guests.guest_figures`: used, swap, PSI) under the allocations the policy
  gave it, so balloon changes and shortfalls reach the publisher as they would.
* **cvem**: from the same simulator run, resizes (``one.vm.resize``), the
  ``CLOUDVAMP_LAST_ACTION`` show attribute each confirmed resize writes, and, with
  ``quota_hold``, at most a user and a group quota update per resize (an upper bound: the
  service writes an owner's quota once per cycle whatever the number of its VMs resized);
  plus the handover record, at most one write per cycle for the whole cloud.

The total at 10,000 VMs is set against oned's capacity (measured, or the documented
default of the test bed).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import os
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from ..core.guest_signals import Corroboration, report_freshness
from ..errors import ConfigError
from ..sim.guests import guest_figures

# one.vm.update/s that the test bed's oned 7.4 (sqlite) sustained, whatever the number of
# clients (measured with ``cvem bench real``; docs/operations.md "oned's write budget").
DEFAULT_CAPACITY_PER_S = 230.0
TARGET_SHARE_PCT = 20.0
FLEET_VMS = 10000
PUBLISHER_FILE = os.path.join("onegate", "cloudvamp-publisher")


def load_publisher(path: Optional[str] = None):
    """The publisher module, from the file guests run (it has no .py and is not a package)."""
    if path is None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        path = os.path.join(root, PUBLISHER_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"cannot find the publisher at {path} (run from a source tree)")
    loader = importlib.machinery.SourceFileLoader("cloudvamp_publisher_bench", path)
    spec = importlib.util.spec_from_loader("cloudvamp_publisher_bench", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@dataclass(frozen=True)
class PublisherReplay:
    writes: int
    vm_seconds: float
    reasons: Dict[str, int]
    # VM-steps by cvem's verdict on the last published report against the guest's current
    # used memory (what a fresh probe shows), :func:`cvem.core.guest_signals.report_freshness`
    verdicts: Dict[str, int]

    @property
    def per_s_per_1000_vms(self) -> float:
        return 1000.0 * self.writes / self.vm_seconds if self.vm_seconds else 0.0


def _figures_text(total_kib, used_kib, swap_kib, swap_in, swap_out, psi_some, psi_full):
    """The publisher's figure strings (compute_figures' formats) for one guest."""
    return {
        "CLOUDVAMP_MEM_TOTAL_KIB": str(int(total_kib)),
        "CLOUDVAMP_MEM_AVAILABLE_KIB": str(int(total_kib) - int(used_kib)),
        "CLOUDVAMP_MEM_USED_KIB": str(int(used_kib)),
        "CLOUDVAMP_SWAP_USED_KIB": str(int(swap_kib)),
        "CLOUDVAMP_SWAP_IN_KIB_S": "%.1f" % swap_in,
        "CLOUDVAMP_SWAP_OUT_KIB_S": "%.1f" % swap_out,
        "CLOUDVAMP_PSI_SOME_AVG10": "%.2f" % psi_some,
        "CLOUDVAMP_PSI_FULL_AVG10": "%.2f" % psi_full,
    }


def replay_publishers(demand_kib: np.ndarray, alloc_kib: np.ndarray, step_s: float,
                      present_from: Optional[np.ndarray] = None, sample_s: float = 10.0,
                      rules=None, publisher=None, vm_stride: int = 1,
                      stale_after_s: float = 120.0,
                      corroboration: Corroboration = Corroboration()) -> PublisherReplay:
    """Replay each VM's demand under its allocation through ``publish_reason``; at the end
    of each step, cvem's verdict on the last published report (the probe taken as fresh and
    showing the guest's current use)."""
    publisher = publisher or load_publisher()
    rules = rules or publisher.DEFAULT_RULES
    n_vm, n_step = demand_kib.shape
    present_from = np.zeros(n_vm, np.int64) if present_from is None else present_from
    samples_per_step = max(int(round(step_s / sample_s)), 1)
    swap = np.zeros(n_vm)
    figures_by_step = []
    for t in range(n_step):   # the simulator's guest model, one step for every VM at once
        g = guest_figures(demand_kib[:, t], alloc_kib[:, t], swap, step_s)
        swap = g.swap_used_kib
        figures_by_step.append(g)
    writes, vm_seconds, reasons, verdicts = 0, 0.0, {}, {}
    for v in range(0, n_vm, vm_stride):
        last, last_at_s = None, 0.0
        for t in range(int(present_from[v]), n_step):
            g = figures_by_step[t]
            figures = _figures_text(alloc_kib[v, t], g.used_kib[v], g.swap_used_kib[v],
                                    g.swap_in_kib_s[v], g.swap_out_kib_s[v],
                                    g.psi_some_avg10[v], g.psi_full_avg10[v])
            step_start_s = t * samples_per_step * sample_s
            sample_times = [step_start_s]
            for now_s in sample_times:
                reason = publisher.publish_reason(last, None, figures, None,
                                                  now_s - last_at_s, rules)
                if reason is not None:
                    writes += 1
                    reasons[reason] = reasons.get(reason, 0) + 1
                    last, last_at_s = figures, now_s
                # figures are constant inside a step: only a heartbeat can fall due here
                due = _next_due_s(last_at_s, figures, rules, publisher, sample_s)
                k = math.ceil((due - step_start_s) / sample_s - 1e-9)
                if 0 < k < samples_per_step and step_start_s + k * sample_s > now_s:
                    sample_times.append(step_start_s + k * sample_s)
            vm_seconds += step_s
            step_end_s = step_start_s + step_s
            verdict = report_freshness(
                step_end_s - last_at_s, stale_after_s, True,
                float(last["CLOUDVAMP_MEM_USED_KIB"]), float(g.used_kib[v]),
                float(last["CLOUDVAMP_MEM_TOTAL_KIB"]), corroboration)
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
    return PublisherReplay(writes=writes, vm_seconds=vm_seconds, reasons=reasons,
                           verdicts=verdicts)


def _next_due_s(last_at_s: float, figures, rules, publisher, sample_s: float) -> float:
    """When the next heartbeat is due for unchanged figures (a heartbeat shorter than the
    sampling period publishes every sample)."""
    if publisher.under_pressure(figures, None, rules):
        return last_at_s + max(rules.pressure_heartbeat_s, sample_s)
    return last_at_s + max(rules.heartbeat_s, sample_s)


def cvem_writes_per_s_per_1000(alloc_kib: np.ndarray, step_s: float,
                               present_from: Optional[np.ndarray] = None,
                               quota_hold: bool = True) -> Dict[str, float]:
    """cvem's writes per second per 1,000 VMs from a simulator run's allocations."""
    n_vm, n_step = alloc_kib.shape
    present_from = np.zeros(n_vm, np.int64) if present_from is None else present_from
    alive = np.arange(n_step)[None, :] >= present_from[:, None]
    changed = (np.diff(alloc_kib, axis=1) != 0) & alive[:, 1:] & alive[:, :-1]
    vm_seconds = float(alive.sum()) * step_s
    resizes = 1000.0 * float(changed.sum()) / max(vm_seconds, 1e-9)
    return {"resizes_per_s": resizes, "show_per_s": resizes,
            "quota_per_s": 2.0 * resizes if quota_hold else 0.0,
            "resizes_per_vm_hour": float(changed.sum()) / max(vm_seconds / 3600.0, 1e-9)}


def budget(publishers_per_1000: float, cvem: Dict[str, float], capacity_per_s: float,
           period_s: float = 10.0, fleet_vms: int = FLEET_VMS) -> Dict[str, float]:
    """The total at ``fleet_vms`` and its share of oned's capacity."""
    cvem_per_1000 = cvem["resizes_per_s"] + cvem["show_per_s"] + cvem["quota_per_s"]
    handover_per_s = 1.0 / period_s     # at most one record write per cycle, whole cloud
    scale = fleet_vms / 1000.0
    total = scale * (publishers_per_1000 + cvem_per_1000) + handover_per_s
    share = 100.0 * total / capacity_per_s if capacity_per_s > 0 else math.inf
    return {"publishers_per_s_per_1000": round(publishers_per_1000, 3),
            "cvem_per_s_per_1000": round(cvem_per_1000, 3),
            "handover_per_s": handover_per_s, "fleet_vms": fleet_vms,
            "total_per_s": round(total, 2), "capacity_per_s": round(capacity_per_s, 1),
            "share_pct": round(share, 1), "target_pct": TARGET_SHARE_PCT,
            "met": bool(share < TARGET_SHARE_PCT)}
