#!/usr/bin/env python3
"""Reclaim/shortfall frontier of the default policy against every other arm, on two halves.

Sweeps the default policy's risk settings on the even-numbered VMs (trace file number; where
it was tuned) and the odd-numbered ones (never used for tuning), under the honest guest model
and scored from each VM's second day, and plots both halves against the other arms.

    .venv/bin/python bench/frontier.py ../shared/traces/bitbrains-rnd-2013-8 docs/img/frontier.png

Writes the figures as JSON beside the PNG (same name, .json).
"""
from __future__ import annotations

import json
import os
import sys
import time
from multiprocessing import Pool

import numpy as np

from cvem.policies import load_policy
from cvem.sim.engine import CloudConfig, place, simulate
from cvem.sim.plots import POLICY_MARKERS, policy_colour
from cvem.sim.workloads import Workload, read_bitbrains

ARMS = ("cloudvamp2015", "mom", "proxmox", "vpa", "max-window", "oracle")
# The default's operating points, from most reclaim to most caution (label, parameters).
SWEEP = (
    ("no band, no memory", {"shrink_band_ratio": 0.0, "grow_headroom_ratio": 0.0,
                            "starved_half_life_s": 0.0}),
    ("band, no memory", {"starved_half_life_s": 0.0}),
    ("memory 1 d", {"starved_half_life_s": 86400.0}),
    ("shipped (memory 7 d)", {}),
)
FIGURES = ("reclaimed_pct", "oracle_efficiency_pct", "shortfall_interval_pct", "severe_events",
           "avoidable_severe", "resizes_per_vm_hour")
_HALVES = {}


def half(w: Workload, parity: int) -> Workload:
    """The VMs whose trace file number has this parity (0: even, 1: odd)."""
    rows = np.array([i for i, n in enumerate(w.vm_names) if int(n) % 2 == parity])
    info = dict(w.info)
    info["present_from_step"] = np.asarray(w.info["present_from_step"])[rows]
    return Workload(f"{w.name}[{'even' if parity == 0 else 'odd'}]", w.step_s,
                    w.demand_kib[rows], w.nominal_kib[rows], [w.vm_names[i] for i in rows],
                    w.start_s, info)


def _point(job):
    parity, name, params = job
    w = _HALVES[parity]
    cloud = CloudConfig()
    m = simulate(w, load_policy(name, params), cloud, placement=place(w, cloud)).metrics
    return {k: float(m[k]) for k in FIGURES if k in m}


def main(traces: str, png: str) -> None:
    started = time.monotonic()
    full = read_bitbrains(traces)
    for parity in (0, 1):
        _HALVES[parity] = half(full, parity)
    jobs = [(p, a, None) for p in (0, 1) for a in ARMS] + \
           [(p, "default", params) for p in (0, 1) for _, params in SWEEP]
    with Pool(int(os.environ.get("JOBS", "2"))) as pool:
        points = pool.map(_point, jobs)
    data = {}
    for (parity, name, params), pt in zip(jobs, points):
        side = data.setdefault(_HALVES[parity].name, {"arms": {}, "default": {}})
        if name == "default":
            label = next(lbl for lbl, p in SWEEP if p == params)
            side["default"][label] = pt
        else:
            side["arms"][name] = pt
    for side in data.values():
        oracle = side["arms"]["oracle"]["reclaimed_pct"]
        for pt in list(side["arms"].values()) + list(side["default"].values()):
            pt["oracle_efficiency_pct"] = 100.0 * pt["reclaimed_pct"] / oracle
    with open(os.path.splitext(png)[0] + ".json", "w") as fh:
        json.dump(data, fh, indent=1)
    print(json.dumps(data, indent=1))
    _plot(data, png)
    print(f"wrote {png} in {time.monotonic() - started:.0f} s", file=sys.stderr)


def _plot(data, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5), sharey=True)
    floor = 1e-3
    for ax, (name, d) in zip(axes, data.items()):
        pts = list(d["default"].items())
        xs = [max(p["shortfall_interval_pct"], floor) for _, p in pts]
        ys = [p["reclaimed_pct"] for _, p in pts]
        ax.plot(xs, ys, "-", color=policy_colour("default"), lw=1.2, zorder=1)
        for i, (label, p) in enumerate(pts):
            ax.scatter([xs[i]], [ys[i]], color=policy_colour("default"),
                       marker="D" if label.startswith("shipped") else "o",
                       s=70 if label.startswith("shipped") else 30,
                       edgecolors="black", linewidths=0.5, zorder=3,
                       label=f"default, {label}: {int(p['severe_events'])} severe "
                             f"({int(p['avoidable_severe'])} avoidable), "
                             f"{p['resizes_per_vm_hour']:.2f} resizes/VM-h")
        for arm, p in d["arms"].items():
            ax.scatter([max(p["shortfall_interval_pct"], floor)], [p["reclaimed_pct"]], s=60,
                       color=policy_colour(arm), marker=POLICY_MARKERS.get(arm, "o"),
                       edgecolors="black", linewidths=0.5, zorder=2,
                       label=f"{arm}: {int(p['severe_events'])} severe "
                             f"({int(p['avoidable_severe'])} avoidable)")
        oracle = d["arms"]["oracle"]["reclaimed_pct"]
        ax.axhline(0.85 * oracle, color=policy_colour("oracle"), ls=":", lw=1)
        ax.axvline(0.05, color="0.4", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel(f"VM-intervals short (%, log; {floor:g} = none). Dotted: 85 % of the "
                      "oracle, 0.05 % short")
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1,
                  frameon=False)
    axes[0].set_ylabel("memory reclaimed (% of provisioned)")
    fig.suptitle("Bitbrains Rnd 2013-8, honest guests, scored from day 1: up and left is better")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
