"""Figures for `cvem simulate` and `cvem bench` (matplotlib, headless).

Every figure draws a policy in the same colour (:func:`policy_colour`); demand is always
black and the nominal (booked) size always a dashed grey line, so neither can be mistaken for
a policy. Labels live in legends, never on the data, so they cannot run into each other.
"""
from __future__ import annotations

import re
from typing import Dict, Sequence

import numpy as np

from .engine import RunResult

GIB = 2.0 ** 20

DEMAND_COLOUR = "black"
NOMINAL_COLOUR = "0.55"
# One colour per built-in policy, on every panel and every file.
POLICY_COLOURS = {
    "none": "0.75",
    "cloudvamp2015": "tab:brown",
    "mom": "tab:olive",
    "proxmox": "tab:cyan",
    "vpa": "tab:blue",
    "max-window": "tab:orange",
    "oracle": "tab:green",
    "default": "tab:purple",
}
_SPARE_COLOURS = ("tab:red", "tab:pink", "gold", "navy", "teal", "magenta", "lime", "sienna")
POLICY_MARKERS = {"oracle": "*", "default": "D"}


def policy_colour(name: str, names: Sequence[str] = ()) -> str:
    """The colour of ``name``; other policies take spare colours in the order of ``names``."""
    if name in POLICY_COLOURS:
        return POLICY_COLOURS[name]
    others = [n for n in names if n not in POLICY_COLOURS]
    i = others.index(name) if name in others else len(others)
    return _SPARE_COLOURS[i % len(_SPARE_COLOURS)]


def vm_plot_name(stem: str, vm_name: str) -> str:
    """File name of a per-VM figure: by the VM's id (trace file number), never its index."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(vm_name)).strip("-") or "vm"
    return f"{stem}-vm-{safe}.png"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_overview(results: Dict[str, RunResult], path: str, title: str = "") -> None:
    """Cluster allocation against demand over time, and the reclaim/shortfall frontier."""
    plt = _pyplot()
    names = list(results)
    fig, (ax_time, ax_front) = plt.subplots(1, 2, figsize=(15, 5.8),
                                            gridspec_kw={"width_ratios": [1.6, 1]})
    any_result = next(iter(results.values()))
    cluster = any_result.series.cluster()
    hours = np.arange(cluster["demand_kib"].size) * any_result.series.step_s / 3600.0
    ax_time.plot(hours, cluster["nominal_kib"] / GIB, color=NOMINAL_COLOUR, lw=1, ls="--",
                 label="nominal (booked; = none)")
    for name, r in results.items():
        if name == "none":
            continue
        ax_time.plot(hours, r.series.cluster()["alloc_kib"] / GIB, lw=1,
                     color=policy_colour(name, names), label=name)
    ax_time.plot(hours, cluster["demand_kib"] / GIB, color=DEMAND_COLOUR, lw=1.8, label="demand")
    ax_time.set_xlabel("hours")
    ax_time.set_ylabel("GiB (whole cloud)")
    ax_time.set_title("Cluster allocation vs demand")
    ax_time.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax_time.set_ylim(bottom=0)

    floor = 1e-4
    for name, r in results.items():
        m = r.metrics
        x = max(m["shortfall_interval_pct"], floor)
        ax_front.scatter([x], [m["reclaimed_pct"]], s=90 if name == "default" else 60,
                         color=policy_colour(name, names), marker=POLICY_MARKERS.get(name, "o"),
                         edgecolors="black", linewidths=0.5,
                         label=f"{name}: {m['severe_events']} severe "
                               f"({m.get('avoidable_severe', 0)} avoidable)")
    ax_front.set_xscale("log")
    ax_front.set_xlabel(f"VM-intervals short (%, log; {floor:g} = none)")
    ax_front.set_ylabel("memory reclaimed (% of nominal)")
    ax_front.set_title("Reclaim / shortfall (up and left is better)")
    ax_front.grid(True, which="both", alpha=0.3)
    ax_front.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                    frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_vm_example(results: Dict[str, RunResult], vm: int, path: str, title: str = "") -> None:
    """One VM's demand and each policy's allocation: what the guest experiences."""
    plt = _pyplot()
    names = list(results)
    fig, ax = plt.subplots(figsize=(13, 4.8))
    any_result = next(iter(results.values()))
    s = any_result.series
    hours = np.arange(s.demand_kib.shape[1]) * s.step_s / 3600.0
    ax.plot(hours, s.nominal_kib[vm] / GIB, color=NOMINAL_COLOUR, ls="--", lw=1,
            label="nominal (= none)")
    for name, r in results.items():
        if name == "none":
            continue
        ax.plot(hours, r.series.alloc_kib[vm] / GIB, lw=1, color=policy_colour(name, names),
                label=name)
    ax.plot(hours, s.demand_kib[vm] / GIB, color=DEMAND_COLOUR, lw=1.6, label="demand")
    ax.set_xlabel("hours")
    ax.set_ylabel("GiB")
    ax.set_title(title or f"VM {vm}: allocation vs demand")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
