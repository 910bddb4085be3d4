"""``cvem bench``: compare every policy on the traces and the built-in scenarios."""
from __future__ import annotations

import json
import math
import time

import click

from ..errors import CloudvampError
from ..sim.suite import DEFAULT_POLICIES, parse_policy_list
from . import cli
from .simulate import format_table, json_ready


@cli.group(invoke_without_command=True)
@click.option("--traces", type=click.Path(exists=True, file_okay=False), default=None,
              help="Bitbrains-format trace folder (e.g. ../shared/traces/bitbrains-rnd-2013-8).")
@click.option("--policies", default=",".join(DEFAULT_POLICIES), show_default=True,
              help="Comma-separated policy names.")
@click.option("--scenario-vms", type=click.IntRange(1), default=40, show_default=True,
              help="VMs in each built-in scenario.")
@click.option("--scenario-days", type=click.FloatRange(min=0, min_open=True), default=2.0,
              show_default=True, help="Length of each built-in scenario in days.")
@click.option("--scenario-step-s", type=click.FloatRange(min=1), default=10.0, show_default=True,
              help="Control period of the built-in scenarios (traces always use 300 s).")
@click.option("--seed", type=int, default=7, show_default=True, help="Generator seed.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write every workload's metrics, comparisons and plot paths as JSON.")
@click.option("--plot-dir", type=click.Path(file_okay=False), default=None,
              help="Write per-workload PNGs: overview (allocation vs demand, frontier) and a VM.")
@click.pass_context
def bench(ctx, traces, policies, scenario_vms, scenario_days, scenario_step_s, seed,
          json_path, plot_dir):
    """Every policy on the same workloads in one run: tables, ratios, plots.

    \b
    Example:
      cvem bench --traces ../shared/traces/bitbrains-rnd-2013-8 --json bench.json --plot-dir plots
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..bench.policies import bench_workloads, run_bench
    started = time.monotonic()
    try:
        names = parse_policy_list(policies)
        loads = bench_workloads(traces, scenario_vms, scenario_days, scenario_step_s, seed)
        report = run_bench(loads, names, plot_dir=plot_dir,
                           progress=lambda w: click.echo(f"... {w.name}", err=True))
    except (CloudvampError, ValueError) as e:
        raise click.ClickException(str(e))

    class _R:  # format_table reads .metrics
        def __init__(self, metrics):
            self.metrics = metrics
    for wname, entry in report.items():
        s = entry["workload"]
        click.echo(f"\n== {wname}: {s['vms']} VMs, {s['hosts']} hosts, {s['steps']} × {s['step_s']:g} s")
        click.echo(format_table({n: _R(m) for n, m in entry["results"].items()}))
        if "default" in entry["compare"]:
            c = entry["compare"]["default"]
            parts = [f"default vs oracle {c['oracle_efficiency_pct']:.1f}%"]
            for b in ("vpa", "max-window", "cloudvamp2015"):
                if f"dominates_{b}" in c:
                    sev = c[f"severe_ratio_{b}"]
                    parts.append(f"{b}: reclaim {c[f'reclaim_minus_{b}']:+.1f} pts, "
                                 f"dominates={c[f'dominates_{b}']}, "
                                 f"severe ÷{'inf' if math.isinf(sev) else format(sev, '.1f')}")
            click.echo("  " + " | ".join(parts))
    wall_s = time.monotonic() - started
    click.echo(f"({wall_s:.1f} s)", err=True)
    if json_path:
        doc = {"wall_s": round(wall_s, 2), "workloads": {
            w: {"workload": {k: json_ready(v) for k, v in e["workload"].items()},
                "results": {n: {k: json_ready(v) for k, v in m.items()}
                            for n, m in e["results"].items()},
                "compare": {n: {k: (None if isinstance(v, float) and (math.isnan(v) or math.isinf(v))
                                    else json_ready(v)) for k, v in c.items()}
                            for n, c in e["compare"].items()},
                "plots": e.get("plots", [])}
            for w, e in report.items()}}
        with open(json_path, "w") as fh:
            json.dump(doc, fh, indent=2)
        click.echo(f"wrote {json_path}", err=True)
