"""Figures for `cvem simulate` and `cvem bench` (matplotlib, headless)."""
from __future__ import annotations

from typing import Dict

import numpy as np

from .engine import RunResult

GIB = 2.0 ** 20


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_overview(results: Dict[str, RunResult], path: str, title: str = "") -> None:
    """Cluster allocation against demand over time, and the reclaim/shortfall frontier."""
    plt = _pyplot()
    fig, (ax_time, ax_front) = plt.subplots(1, 2, figsize=(14, 5.2),
                                            gridspec_kw={"width_ratios": [1.7, 1]})
    any_result = next(iter(results.values()))
    cluster = any_result.series.cluster()
    hours = np.arange(cluster["demand_kib"].size) * any_result.series.step_s / 3600.0
    ax_time.plot(hours, cluster["nominal_kib"] / GIB, color="grey", lw=1, ls="--",
                 label="nominal (booked)")
    for name, r in results.items():
        if name == "none":
            continue
        ax_time.plot(hours, r.series.cluster()["alloc_kib"] / GIB, lw=1, label=f"{name} allocation")
    ax_time.plot(hours, cluster["demand_kib"] / GIB, color="black", lw=1.6, label="demand")
    ax_time.set_xlabel("hours")
    ax_time.set_ylabel("GiB (whole cloud)")
    ax_time.set_title("Cluster allocation vs demand")
    ax_time.legend(fontsize=8, loc="upper right")
    ax_time.set_ylim(bottom=0)

    for name, r in results.items():
        m = r.metrics
        ax_front.scatter(max(m["shortfall_interval_pct"], 1e-4), m["reclaimed_pct"], s=60)
        ax_front.annotate(f"{name}\n{m['severe_events']} severe", (
            max(m["shortfall_interval_pct"], 1e-4), m["reclaimed_pct"]), fontsize=8,
            xytext=(5, 3), textcoords="offset points")
    ax_front.set_xscale("log")
    ax_front.set_xlabel("VM-intervals short (%, log; 1e-4 = none)")
    ax_front.set_ylabel("memory reclaimed (% of nominal)")
    ax_front.set_title("Reclaim / shortfall frontier (up and left is better)")
    ax_front.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_vm_example(results: Dict[str, RunResult], vm: int, path: str, title: str = "") -> None:
    """One VM's demand and each policy's allocation: what the guest experiences."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 4.5))
    any_result = next(iter(results.values()))
    s = any_result.series
    hours = np.arange(s.demand_kib.shape[1]) * s.step_s / 3600.0
    ax.plot(hours, s.nominal_kib[vm] / GIB, color="black", ls="--", lw=1, label="nominal")
    for name, r in results.items():
        if name == "none":
            continue
        ax.plot(hours, r.series.alloc_kib[vm] / GIB, lw=1, label=name)
    ax.plot(hours, s.demand_kib[vm] / GIB, color="crimson", lw=1.2, label="demand")
    ax.set_xlabel("hours")
    ax.set_ylabel("GiB")
    ax.set_title(title or f"VM {vm}: allocation vs demand")
    ax.legend(fontsize=8)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
