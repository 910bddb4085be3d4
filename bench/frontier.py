#!/usr/bin/env python3
"""Reclaim/shortfall frontier of the default policy against the baselines, on two halves.

Sweeps the default policy's one risk knob (``shortfall_cost_gib``) on the even-numbered VMs
(where it was tuned) and the odd-numbered ones (never used for tuning), and plots both
against vpa, max-window, cloudvamp2015 and the oracle.

    .venv/bin/python bench/frontier.py ../shared/traces/bitbrains-rnd-2013-8 docs/img/frontier.png
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np

from cvem.policies import load_policy
from cvem.sim.engine import CloudConfig, place, simulate
from cvem.sim.workloads import Workload, read_bitbrains

COSTS_GIB = (150, 250, 450, 700, 1200, 2500)
BASELINES = ("vpa", "max-window", "cloudvamp2015", "oracle")


def half(w: Workload, start: int) -> Workload:
    rows = slice(start, None, 2)
    return Workload(f"{w.name}[{'even' if start == 0 else 'odd'}]", w.step_s, w.demand_kib[rows],
                    w.nominal_kib[rows], list(w.vm_names)[rows], w.start_s, dict(w.info))


def point(w, name, params=None):
    cloud = CloudConfig()
    m = simulate(w, load_policy(name, params), cloud, placement=place(w, cloud)).metrics
    return {k: float(m[k]) for k in ("reclaimed_pct", "shortfall_interval_pct", "severe_events",
                                     "extra_vms_pct")}


def main(traces: str, png: str) -> None:
    started = time.monotonic()
    full = read_bitbrains(traces)
    data = {}
    for start in (0, 1):
        w = half(full, start)
        data[w.name] = {"baselines": {b: point(w, b) for b in BASELINES},
                        "default": {str(c): point(w, "default", {"shortfall_cost_gib": c})
                                    for c in COSTS_GIB}}
    print(json.dumps(data, indent=1))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, (name, d) in zip(axes, data.items()):
        xs = [p["shortfall_interval_pct"] for p in d["default"].values()]
        ys = [p["reclaimed_pct"] for p in d["default"].values()]
        ax.plot(xs, ys, "o-", color="tab:purple", label="default (shortfall_cost_gib sweep)")
        for q, x, y in zip(d["default"], xs, ys):
            ax.annotate(q, (x, y), fontsize=7, xytext=(4, -9), textcoords="offset points")
        for b, p in d["baselines"].items():
            x = max(p["shortfall_interval_pct"], 1e-3)
            ax.scatter([x], [p["reclaimed_pct"]], s=60, label=b)
            ax.annotate(f"{b} ({int(p['severe_events'])} severe)", (x, p["reclaimed_pct"]),
                        fontsize=8, xytext=(5, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("VM-intervals short (%, log; oracle drawn at 1e-3)")
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("memory reclaimed (% of provisioned)")
    axes[0].legend(fontsize=8, loc="upper center")
    fig.suptitle("Bitbrains Rnd 2013-8, 300 s control period, 512 MiB floor: up and left is better")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"wrote {png} in {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
