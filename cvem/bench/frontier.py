"""The frontier sweep of ``cvem bench``: every policy along its own reclaim/safety knob.

Each policy may declare a :class:`~cvem.core.policy.FrontierKnob` (one parameter and the
values that move it from cautious to bold) next to its rule; a site's plug-in policy does
the same. The sweep runs each value through the same :func:`~cvem.sim.engine.simulate` as
the rest of the benchmark, on the same placement, and the pure functions of
:mod:`.frontier_math` turn the rows into the two answers issue 11 asks for: the fewest severe
events any point reaches at 85 % of the oracle (what bounds the target), and whether
``default`` dominates each other arm at that arm's own shortfall.
"""
from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..core.policy import check_frontier_knob, setting_label
from ..policies.base import load_policy, policy_class
from ..sim.engine import CloudConfig, prepare, simulate
from ..sim.workloads import Workload
from .frontier_math import OF_ORACLE, RECLAIM, SEVERE, SHORT, dominance, rows_of, target_bound

FIGURES = (RECLAIM, SHORT, SEVERE, "avoidable_severe", "resizes_per_vm_hour")
Task = Tuple[str, Dict[str, float]]

# The workload and placement of the sweep, inherited by forked workers (never pickled).
_SHARED: Dict[str, object] = {}


def sweep_tasks(policies: Sequence[str]) -> List[Task]:
    """(policy, parameters) for every knob value other than the policy's shipped one (that
    point is the benchmark's own run). Policies without a knob are left out."""
    tasks: List[Task] = []
    for name in policies:
        cls = policy_class(name)
        knob = check_frontier_knob(cls)
        if knob is None:
            continue
        shipped = shipped_setting(name)
        tasks += [(name, point) for point in knob.points() if point != shipped]
    return tasks


def shipped_setting(name: str) -> Optional[Dict[str, object]]:
    """The knob's parameters as the policy ships them (None: no knob)."""
    cls = policy_class(name)
    knob = check_frontier_knob(cls)
    if knob is None:
        return None
    defaults = cls.Params()
    return {n: getattr(defaults, n) for n in knob.names}


def _run_task(task: Task) -> Dict[str, float]:
    name, params = task
    w, cloud, admitted = _SHARED["workload"], _SHARED["cloud"], _SHARED["admitted"]
    cpu_s = time.process_time()
    m = simulate(w, load_policy(name, params), cloud, admitted=admitted).metrics
    # CPU seconds, not wall: the sweep's cost on a machine that is not shared
    return {**{k: float(m[k]) for k in FIGURES}, "cpu_s": time.process_time() - cpu_s}


def run_sweep(workload: Workload, tasks: Sequence[Task], cloud: CloudConfig = CloudConfig(),
              jobs: int = 1, progress: Optional[Callable[[Task], None]] = None
              ) -> List[Dict[str, float]]:
    """Metrics of each task, in order. Workers are forked so the workload is shared."""
    _SHARED.update(workload=workload, cloud=cloud, admitted=prepare(workload, cloud))
    out: List[Dict[str, float]] = []
    try:
        if jobs > 1 and len(tasks) > 1 and "fork" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                for task, m in zip(tasks, pool.map(_run_task, tasks)):
                    out.append(m)
                    if progress:
                        progress(task)
        else:
            for task in tasks:
                out.append(_run_task(task))
                if progress:
                    progress(task)
    finally:
        _SHARED.clear()
    return out


def oracle_reclaimed_pct(shipped: Mapping[str, Mapping[str, float]]) -> float:
    """The oracle's reclaim: its own row, else read back from any row's share of it."""
    if "oracle" in shipped:
        return float(shipped["oracle"][RECLAIM])
    for m in shipped.values():
        share = float(m.get(OF_ORACLE, float("nan")))
        if share > 0:
            return 100.0 * float(m[RECLAIM]) / share
    return float("nan")


def frontier_rows(shipped: Mapping[str, Mapping[str, float]], tasks: Sequence[Task],
                  swept: Sequence[Mapping[str, float]]) -> List[Dict[str, object]]:
    """One row per operating point: each policy's shipped run (``shipped``: the benchmark's
    metrics by policy name) and every swept one, with its share of the oracle's reclaim."""
    oracle = oracle_reclaimed_pct(shipped)
    rows: List[Dict[str, object]] = []
    for name, m in shipped.items():
        setting = shipped_setting(name)
        label = "" if not setting else (setting_label(setting) if len(setting) == 1
                                         else "shipped")
        rows.append({"policy": name, "setting": label,
                     "shipped": True, **{k: float(m[k]) for k in FIGURES}})
    for (name, params), m in zip(tasks, swept):
        rows.append({"policy": name, "setting": _changed(params, shipped_setting(name)),
                     "shipped": False,
                     **{k: float(m[k]) for k in FIGURES}})
    for r in rows:
        r[OF_ORACLE] = 100.0 * float(r[RECLAIM]) / oracle if oracle > 0 else float("nan")
    knob_order = {name: i for i, name in enumerate(shipped)}
    rows.sort(key=lambda r: (knob_order.get(r["policy"], len(knob_order)), float(r[SHORT])))
    return rows


def _changed(point: Mapping[str, object], shipped: Optional[Mapping[str, object]]) -> str:
    """A swept setting as the parameters it changes from the shipped ones."""
    if len(point) == 1 or not shipped:
        return setting_label(point)
    return setting_label({k: v for k, v in point.items() if shipped.get(k) != v})


def describe_task(task: Task) -> str:
    """``policy setting`` of one sweep run, the setting as what it changes."""
    name, params = task
    return f"{name} {_changed(params, shipped_setting(name))}"


def frontier_report(rows: Sequence[Mapping[str, object]], policy: str = "default",
                    min_of_oracle_pct: float = 85.0, reference: str = "vpa") -> Dict[str, object]:
    """The target bound and, for every other arm's shipped point, ``policy``'s dominance at
    that arm's shortfall."""
    own = rows_of(rows, policy)
    arms = [r for r in rows if r["shipped"] and r["policy"] not in (policy, "oracle", "none")]
    return {"bound": target_bound(rows, min_of_oracle_pct, reference),
            "dominance": [dominance(own, arm) for arm in arms] if own else []}


def _fmt_point(r: Mapping[str, object]) -> str:
    knob = r.get("setting") or "shipped"
    return (f"{r['policy']} {knob}: {float(r[OF_ORACLE]):.1f} % of oracle, "
            f"{float(r[SHORT]):.3f} % short, {int(r[SEVERE])} severe")


def format_frontier(rows: Sequence[Mapping[str, object]], report: Mapping[str, object]) -> str:
    lines = ["  frontier sweep (each policy along its knob; * = shipped setting, others show "
             "what they change):",
             f"  {'policy':14s} {'reclaim %':>9s} {'of oracle %':>11s} {'short %':>8s} "
             f"{'severe':>7s} {'avoidable':>9s} {'resizes/VM-h':>12s}  setting"]
    for r in rows:
        if not r.get("setting"):
            continue
        lines.append(f"  {r['policy']:14s} {float(r[RECLAIM]):9.1f} {float(r[OF_ORACLE]):11.1f} "
                     f"{float(r[SHORT]):8.3f} {int(r[SEVERE]):7d} {int(r['avoidable_severe']):9d} "
                     f"{float(r['resizes_per_vm_hour']):12.2f}  "
                     + ("* " if r["shipped"] else "") + str(r["setting"]))
    b = report["bound"]
    lines.append(f"  bound of the target (>= {b['min_of_oracle_pct']:g} % of the oracle with no "
                 f"more severe events than {b['reference']}'s {b['reference_severe']:.0f}):")
    for name, best in b["per_policy"].items():
        if name in ("oracle", "none") or not any(r["policy"] == name and r.get("setting")
                                                 for r in rows):
            continue
        line = f"    {name:14s} " + (f"fewest severe at >= {b['min_of_oracle_pct']:g} %: "
                                       + _fmt_point(best) if best else
                                       f"no swept point reaches {b['min_of_oracle_pct']:g} %")
        between = b["interpolated_severe"].get(name)
        if between is not None:
            line += f" (interpolated at {b['min_of_oracle_pct']:g} %: {between:.0f})"
        lines.append(line)
    best = b["best"]
    lines.append("    over all swept points: " + (
        _fmt_point(best) + f" -> {'MET' if b['met'] else 'MISSED'} (vpa "
        f"{b['reference_severe']:.0f})" if best else "no point reaches the target reclaim"))
    if report["dominance"]:
        lines.append("  dominance of default at each arm's own shortfall (interpolated on "
                     "default's envelope):")
    for d in report["dominance"]:
        head = (f"    {d['arm']:14s} at {d['short_pct']:.3f} % short "
                f"({d['arm_reclaimed_pct']:.1f} % reclaimed, {d['arm_severe']:.0f} severe): ")
        got = d["interpolated"]
        if got is None:
            head += f"default {d['reach']}" if d["witness"] is None else "default"
        else:
            head += f"default {got[RECLAIM]:.1f} % reclaimed, {got[SEVERE]:.0f} severe"
        if d["dominates"] is not None:
            head += f" -> {'DOMINATES' if d['dominates'] else 'does not dominate'}"
        if d["witness"] is not None:
            head += (f" (a swept point at no more shortfall beats it on every axis: "
                     f"{_fmt_point(d['witness'])})")
        lines.append(head)
    return "\n".join(lines)


def plot_frontier(rows: Sequence[Mapping[str, object]], report: Mapping[str, object],
                  path: str, title: str = "") -> None:
    """Left: reclaim (% of the oracle) against shortfall; right: severe events against reclaim,
    where the 85 % line meets each policy's curve is what bounds the target."""
    from ..sim.plots import POLICY_MARKERS, _pyplot, policy_colour
    plt = _pyplot()
    names = list(dict.fromkeys(r["policy"] for r in rows))
    fig, (ax_short, ax_severe) = plt.subplots(1, 2, figsize=(15, 6.5))
    short_floor, severe_floor = 1e-3, 1.0
    b = report["bound"]
    for name in names:
        pts = rows_of(rows, name)
        colour = policy_colour(name, names)
        knob = check_frontier_knob(policy_class(name)) if len(pts) > 1 else None
        label = name + ("" if not knob else f" (sweeping {knob.names[0]})"
                        if len(knob.names) == 1 else f" (a path through {len(knob.names)} "
                        "parameters)")
        xs = [max(float(r[SHORT]), short_floor) for r in pts]
        ys = [float(r[OF_ORACLE]) for r in pts]
        sev = [max(float(r[SEVERE]), severe_floor) for r in pts]
        by_reclaim = sorted(range(len(pts)), key=lambda i: ys[i])
        for ax, x, y in ((ax_short, xs, ys), (ax_severe, [ys[i] for i in by_reclaim],
                                               [sev[i] for i in by_reclaim])):
            if len(pts) > 1:
                ax.plot(x, y, "-", color=colour, lw=1.1, zorder=1)
        for i, r in enumerate(pts):
            big = bool(r["shipped"])
            kw = dict(color=colour, marker=POLICY_MARKERS.get(name, "o"), s=80 if big else 22,
                      edgecolors="black" if big else colour, linewidths=0.6, zorder=3)
            ax_short.scatter([xs[i]], [ys[i]], label=label if big else None, **kw)
            ax_severe.scatter([ys[i]], [sev[i]], **kw)
    target = b["min_of_oracle_pct"]
    ax_short.axhline(target, color=policy_colour("oracle"), ls=":", lw=1)
    ax_short.axvline(0.05, color="0.4", ls=":", lw=1)
    ax_short.set_xscale("log")
    ax_short.set_xlabel(f"VM-intervals short (%, log; {short_floor:g} = none). Dotted: "
                        f"{target:g} % of the oracle, 0.05 % short")
    ax_short.set_ylabel("memory reclaimed (% of the oracle's)")
    ax_short.set_title("Reclaim against shortfall (large marker: shipped setting)")
    ax_severe.axvline(target, color=policy_colour("oracle"), ls=":", lw=1)
    if b["reference_severe"] == b["reference_severe"]:
        ax_severe.axhline(max(b["reference_severe"], severe_floor),
                          color=policy_colour(b["reference"]), ls=":", lw=1)
    ax_severe.set_yscale("log")
    ax_severe.set_xlabel(f"memory reclaimed (% of the oracle's). Dotted: {target:g} %, "
                         f"{b['reference']}'s severe events")
    ax_severe.set_ylabel(f"severe events (log; {severe_floor:g} = none)")
    ax_severe.set_title("What the target costs: severe events at each reclaim")
    for ax in (ax_short, ax_severe):
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax_short.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=4, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.09, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
