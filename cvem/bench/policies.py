"""``cvem bench``: every policy on the same workloads in one run, with ratios and plots.

Workloads: the Bitbrains folder (300 s steps, 512 MiB floor) when given, and every built-in
scenario. For each workload the table gives each policy's metrics, its reclaim as a share of
the oracle's, and its reclaim and shortfall against the best baseline (the best of ``vpa``
and ``max-window`` on reclaim among those at or below the policy's shortfall).
"""
from __future__ import annotations

import math
import os
import re
import time
from typing import Dict, List, Optional

import numpy as np

from ..sim.engine import CloudConfig, RunResult
from ..sim.suite import DEFAULT_POLICIES, run_suite, workload_summary
from ..sim.workloads import SCENARIOS, Workload, generate, read_bitbrains

BASELINES = ("vpa", "max-window", "cloudvamp2015", "mom", "proxmox")

# The targets of issue 11 for ``default`` (docs/policy.md): scored from day 1, honest guests.
TARGETS = (("oracle_efficiency_pct", ">=", 85.0, "of the oracle's reclaim"),
           ("shortfall_interval_pct", "<=", 0.05, "VM-intervals short"),
           ("severe_events", "<=", "vpa", "severe events (no more than vpa)"),
           ("resizes_per_vm_hour", "<=", 0.5, "resizes per VM-hour"))


INFLATE = 1.5   # A′: page cache counted as demand (peers.md §8.1)


def bench_workloads(traces: Optional[str], scenario_vms: int, scenario_days: float,
                    scenario_step_s: float, seed: int, inflated: bool = True,
                    vm_stride: int = 1, scenarios: bool = True) -> List[Workload]:
    loads = []
    if traces:
        loads.append(read_bitbrains(traces, step_s=300.0).every(vm_stride))
        if inflated:
            loads.append(read_bitbrains(traces, step_s=300.0, inflate=INFLATE).every(vm_stride))
    for name in SCENARIOS if scenarios else ():
        loads.append(generate(name, vms=scenario_vms, days=scenario_days,
                              step_s=scenario_step_s, seed=seed))
    return loads


def compare(results: Dict[str, RunResult]) -> Dict[str, Dict[str, float]]:
    """Per policy: ratios against the oracle and the best baseline."""
    out = {}
    base = {b: results[b].metrics for b in BASELINES if b in results}
    for name, r in results.items():
        m = r.metrics
        row = {"oracle_efficiency_pct": m["oracle_efficiency_pct"]}
        for b, bm in base.items():
            row[f"reclaim_minus_{b}"] = m["reclaimed_pct"] - bm["reclaimed_pct"]
            row[f"short_ratio_{b}"] = (m["shortfall_interval_pct"] / bm["shortfall_interval_pct"]
                                       if bm["shortfall_interval_pct"] > 0 else math.nan)
            row[f"dominates_{b}"] = bool(m["reclaimed_pct"] >= bm["reclaimed_pct"]
                                         and m["shortfall_interval_pct"]
                                         <= bm["shortfall_interval_pct"])
            row[f"severe_ratio_{b}"] = (bm["severe_events"] / m["severe_events"]
                                        if m["severe_events"] else math.inf)
        out[name] = row
    return out


def check_targets(results: Dict[str, Dict[str, float]], policy: str = "default"):
    """[(metric, value, goal, met, words)] for ``policy`` against :data:`TARGETS`."""
    if policy not in results:
        return []
    m = results[policy]
    rows = []
    for key, op, goal, words in TARGETS:
        if isinstance(goal, str):
            if goal not in results:
                continue
            goal = results[goal][key]
        value = m[key]
        met = value >= goal if op == ">=" else value <= goal
        rows.append((key, float(value), float(goal), bool(met), f"{op} {goal:g} {words}"))
    return rows


def sweeps_frontier(w: Workload) -> bool:
    """The frontier is swept on the raw traces (the workload the targets are judged on)."""
    return w.name.startswith("traces:") and float(w.info.get("inflate", 1.0)) == 1.0


def run_bench(workloads: List[Workload], policies=DEFAULT_POLICIES, cloud=CloudConfig(),
              plot_dir: Optional[str] = None, progress=None, frontier_jobs: int = 0,
              frontier_progress=None):
    """``frontier_jobs`` > 0 also sweeps every policy's frontier knob on the raw traces with
    that many processes (:mod:`.frontier`)."""
    report = {}
    for w in workloads:
        if progress:
            progress(w)
        results = run_suite(w, policies, cloud)
        entry = {"workload": workload_summary(w, cloud),
                 "results": {n: dict(r.metrics) for n, r in results.items()},
                 "compare": compare(results)}
        entry["targets"] = check_targets(entry["results"])
        if frontier_jobs and sweeps_frontier(w):
            entry["frontier"] = _frontier(w, entry["results"], cloud, frontier_jobs,
                                          frontier_progress, plot_dir)
        if plot_dir:
            entry["plots"] = _plots(w, results, plot_dir)
        report[w.name] = entry
    return report


def _frontier(w: Workload, results, cloud, jobs, progress, plot_dir):
    from .frontier import frontier_report, frontier_rows, plot_frontier, run_sweep, sweep_tasks
    started = time.monotonic()
    tasks = sweep_tasks([n for n in results if n != "none"])
    swept = run_sweep(w, tasks, cloud, jobs=jobs, progress=progress)
    rows = frontier_rows({n: m for n, m in results.items() if n != "none"}, tasks, swept)
    out = {"rows": rows, "report": frontier_report(rows), "runs": len(tasks), "jobs": jobs,
           "cpu_s": round(sum(m["cpu_s"] for m in swept), 1),
           "wall_s": round(time.monotonic() - started, 1)}
    if plot_dir:
        os.makedirs(plot_dir, exist_ok=True)
        path = os.path.join(plot_dir, "frontier.png")
        plot_frontier(rows, out["report"], path, title=f"{w.name}: every policy along its "
                      "knob (honest guests, scored from day 1)")
        out["plot"] = path
    return out


def _plots(w: Workload, results: Dict[str, RunResult], plot_dir: str) -> List[str]:
    from ..sim.plots import plot_overview, plot_vm_example, vm_plot_name
    os.makedirs(plot_dir, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", w.name)
    overview = os.path.join(plot_dir, f"{stem}-overview.png")
    plot_overview(results, overview, title=w.name)
    # The VM that moves most (largest demand range) shows the policies' behaviour best.
    spread = np.ptp(w.demand_kib, axis=1)
    vm = int(np.argmax(spread))
    vm_name = list(w.vm_names)[vm] if len(w.vm_names) else str(vm)
    example = os.path.join(plot_dir, vm_plot_name(stem, vm_name))
    plot_vm_example(results, vm, example, title=f"{w.name}, VM {vm_name}")
    return [overview, example]
