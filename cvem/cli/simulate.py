"""``cvem simulate``: the main job on the built-in simulated cloud."""
from __future__ import annotations

import json
import sys
import math
import time

import click

from ..errors import CloudvampError
from ..sim.suite import DEFAULT_POLICIES, parse_policy_list, run_suite, workload_summary
from ..sim.engine import CloudConfig
from ..sim.workloads import GIB, SCENARIOS, generate, read_bitbrains
from . import cli

TABLE_COLUMNS = (("reclaimed_pct", "reclaim%", "{:8.1f}"),
                 ("oracle_efficiency_pct", "vs-oracle%", "{:10.1f}"),
                 ("shortfall_interval_pct", "short%", "{:7.3f}"),
                 ("shortfall_gib_min", "shortGiBmin", "{:11.1f}"),
                 ("severe_events", "severe", "{:6d}"),
                 ("avoidable_severe", "avoidable", "{:9d}"),
                 ("host_overload_pct", "overload%", "{:9.3f}"),
                 ("resizes_per_vm_hour", "resize/vm-h", "{:11.2f}"),
                 ("extra_vms_pct", "extraVMs%", "{:9.1f}"),
                 ("migrations_per_host_hour", "migr/host-h", "{:11.2f}"),
                 ("ping_pong", "pingpong", "{:8d}"),
                 ("reaction_p95_s", "react-p95s", "{:10.0f}"))


def format_table(results) -> str:
    name_w = max([len("policy")] + [len(n) for n in results])
    head = "policy".ljust(name_w) + "  " + "  ".join(h for _, h, _ in TABLE_COLUMNS)
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        cells = []
        for key, header, fmt in TABLE_COLUMNS:
            value = r.metrics[key]
            if isinstance(value, float) and math.isnan(value):
                cells.append("n/a".rjust(len(header)))
            else:
                cells.append(fmt.format(int(value) if "d}" in fmt else float(value))
                             .rjust(len(header)))
        lines.append(name.ljust(name_w) + "  " + "  ".join(cells))
    return "\n".join(lines)


def json_ready(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return json_ready(value.item())
    return value


def load_workload(traces, scenario, vms, days, step_s, seed):
    if traces:
        return read_bitbrains(traces, vms=vms, days=days, step_s=step_s or 300.0)
    return generate(scenario or "mixed", vms=vms or 40, days=days or 2.0,
                    step_s=step_s or 10.0, seed=seed)


@cli.command()
@click.option("--traces", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder of Bitbrains-format CSV(.gz) traces (e.g. ../shared/traces/"
                   "bitbrains-rnd-2013-8). Default: the built-in generator.")
@click.option("--scenario", type=click.Choice(SCENARIOS), default=None,
              help="Built-in workload scenario (default mixed).")
@click.option("--vms", type=click.IntRange(1), default=None,
              help="Number of VMs (generator default 40; traces: all).")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Length of the run in days (generator default 2; traces: all).")
@click.option("--step-s", type=click.FloatRange(min=1), default=None,
              help="Control period in seconds (generator default 10; traces 300).")
@click.option("--policies", default=",".join(DEFAULT_POLICIES), show_default=True,
              help="Comma-separated policy names.")
@click.option("--seed", type=int, default=7, show_default=True, help="Generator seed.")
@click.option("--host-gib", type=click.FloatRange(min=1), default=None,
              help="Physical memory per host (default: sized from the workload).")
@click.option("--reserve-gib", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Host memory kept for the hypervisor (not in MAX_MEM).")
@click.option("--admit/--no-admit", default=None,
              help="After a warm-up the scheduler deploys extra VMs into reclaimed memory, the "
                   "same VMs for every policy, so hosts hold more nominal memory than they have "
                   "(default: on for sync-surge, off otherwise).")
@click.option("--lend-factor", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Share of reclaimed memory (against warm-up peak demand + 10 %) offered to "
                   "the scheduler when admitting; 1.0 is the stress case.")
@click.option("--migrations/--no-migrations", default=True, show_default=True,
              help="Overload protection by live migration.")
@click.option("--migration-mib-s", type=click.FloatRange(min=1), default=1024.0,
              show_default=True, help="Migration bandwidth (Neat's worst case: 10 MB/s = 9.5).")
@click.option("--detector", type=click.Choice(("threshold", "mad", "iqr", "local-regression")),
              default="threshold", show_default=True, help="Host overload detector.")
@click.option("--selection", type=click.Choice(("least-memory", "fewest")),
              default="least-memory", show_default=True, help="Which VMs to migrate first.")
@click.option("--consolidate", is_flag=True, default=False,
              help="Drain underloaded hosts when all their VMs fit elsewhere.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write workload and per-policy metrics as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG: cluster allocation vs demand, and the reclaim/shortfall frontier.")
def simulate(traces, scenario, vms, days, step_s, policies, seed, host_gib, reserve_gib,
             admit, lend_factor, migrations, migration_mib_s, detector, selection, consolidate,
             json_path, plot_path):
    """Replay memory demand through cloudvamp's decision core on a simulated cloud.

    VMs are placed first-fit on their nominal memory (the status quo); each control period
    every policy sizes them from the guests' last reports, the planner grants what fits on
    each host, and shortfalls are charged. One row per policy.

    \b
    Examples:
      cvem simulate
      cvem simulate --scenario sync-surge --policies none,cloudvamp2015,default
      cvem simulate --traces ../shared/traces/bitbrains-rnd-2013-8 --json out.json
    """
    if traces and scenario:
        raise click.UsageError("--traces and --scenario are exclusive")
    try:
        names = parse_policy_list(policies)
        started = time.monotonic()
        workload = load_workload(traces, scenario, vms, days, step_s, seed)
        if admit is None:
            admit = scenario == "sync-surge"
        cloud = CloudConfig(host_physical_kib=host_gib * GIB if host_gib else None,
                            host_reserve_kib=reserve_gib * GIB,
                            migrations=migrations,
                            migration_bandwidth_kib_s=migration_mib_s * 1024.0,
                            migration=(("detector", detector), ("selection", selection),
                                       ("consolidate", "yes" if consolidate else "no")),
                            admit=admit, lend_factor=lend_factor)
        summary = workload_summary(workload, cloud)
        click.echo(f"workload {summary['name']}: {summary['vms']} VMs on {summary['hosts']} hosts "
                   f"of {summary['host_physical_gib']} GiB, {summary['steps']} steps of "
                   f"{summary['step_s']:g} s ({summary['days']} days)", err=True)
        if admit:
            click.echo(f"admission: {summary.get('admitted_vms', 0)} more VMs from step "
                       f"{summary.get('admit_from_step')} (lend factor {lend_factor:g}), same for "
                       f"every policy; {summary.get('oversubscribed_hosts')} hosts hold more "
                       f"nominal memory than they have (peak "
                       f"{summary.get('peak_nominal_over_capacity')}x)", err=True)
        total = workload.steps * len(names)
        long_run = total * workload.vms > 2_000_000
        bar = click.progressbar(length=total, label="simulating", file=sys.stderr) \
            if long_run else None
        done = {"n": 0}

        def tick(_name, _t):
            done["n"] += 1
            if bar is not None and done["n"] % 200 == 0:
                bar.update(200)
        if bar is not None:
            with bar:
                results = run_suite(workload, names, cloud, progress=tick)
        else:
            results = run_suite(workload, names, cloud)
        wall_s = time.monotonic() - started
    except CloudvampError as e:
        raise click.ClickException(str(e))
    except ValueError as e:
        raise click.ClickException(str(e))
    click.echo(format_table(results))
    click.echo(f"({wall_s:.1f} s)", err=True)
    if json_path:
        doc = {"workload": {k: json_ready(v) for k, v in summary.items()},
               "results": {n: {k: json_ready(r.metrics[k]) for k in r.metrics}
                           for n, r in results.items()},
               "wall_s": round(wall_s, 2)}
        with open(json_path, "w") as fh:
            json.dump(doc, fh, indent=2)
        click.echo(f"wrote {json_path}", err=True)
    if plot_path:
        from ..sim.plots import plot_overview
        plot_overview(results, plot_path, title=summary["name"])
        click.echo(f"wrote {plot_path}", err=True)
