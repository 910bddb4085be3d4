"""``cvem bench``: compare every policy on the traces and the built-in scenarios."""
from __future__ import annotations

import json
import math
import os
import time

import click

from ..errors import CloudvampError
from ..sim.suite import DEFAULT_POLICIES, parse_policy_list
from . import cli
from .simulate import format_table, json_ready


def json_ready_tree(value):
    """``value`` with nested dicts/lists made JSON-ready (NaN and infinities become null)."""
    if isinstance(value, dict):
        return {str(k): json_ready_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready_tree(v) for v in value]
    value = json_ready(value)
    return None if isinstance(value, float) and math.isinf(value) else value


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
@click.option("--host-gib", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Physical memory per host (default: sized from the workload; a VM larger "
                   "than a host gets a host of its own size).")
@click.option("--reserve-gib", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Host memory kept for the host OS and qemu.")
@click.option("--inflated/--no-inflated", default=True, show_default=True,
              help="With --traces, also the page-cache workload A′ (demand × 1.5, capped at "
                   "provisioned; peers.md §8.1).")
@click.option("--frontier/--no-frontier", default=True, show_default=True,
              help="With --traces, also sweep every policy's frontier knob on the raw traces "
                   "and print what bounds the targets and default's dominance at each arm's "
                   "shortfall.")
@click.option("--jobs", type=click.IntRange(1), default=None,
              help="Processes for the frontier sweep (default: up to 2).")
@click.option("--scenarios/--no-scenarios", default=True, show_default=True,
              help="Also the built-in scenarios.")
@click.option("--vm-stride", type=click.IntRange(1), default=1, show_default=True,
              help="Only every N-th trace VM (a quick sub-sample while developing).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write every workload's metrics, comparisons and plot paths as JSON.")
@click.option("--plot-dir", type=click.Path(file_okay=False), default=None,
              help="Write per-workload PNGs: overview (allocation vs demand, frontier) and a VM; "
                   "with the sweep, frontier.png.")
@click.pass_context
def bench(ctx, traces, policies, scenario_vms, scenario_days, scenario_step_s, seed,
          host_gib, reserve_gib, inflated, frontier, jobs, scenarios, vm_stride, json_path,
          plot_dir):
    """Every policy on the same workloads in one run: tables, ratios, plots.

    \b
    Example:
      cvem bench --traces ../shared/traces/bitbrains-rnd-2013-8 --json bench.json --plot-dir plots
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..bench.frontier import describe_task, format_frontier
    from ..bench.lend import default_jobs
    from ..bench.policies import bench_workloads, run_bench
    from ..sim.engine import CloudConfig
    from ..sim.workloads import GIB
    started = time.monotonic()
    try:
        names = parse_policy_list(policies)
        cloud = CloudConfig(host_physical_kib=host_gib * GIB if host_gib else None,
                            host_reserve_kib=reserve_gib * GIB)
        loads = bench_workloads(traces, scenario_vms, scenario_days, scenario_step_s, seed,
                                inflated=inflated, vm_stride=vm_stride,
                                scenarios=scenarios)
        report = run_bench(loads, names, cloud=cloud, plot_dir=plot_dir,
                           progress=lambda w: click.echo(f"... {w.name}", err=True),
                           frontier_jobs=(jobs or default_jobs()) if frontier else 0,
                           frontier_progress=lambda t: click.echo(
                               f"... frontier {describe_task(t)}", err=True))
    except (CloudvampError, ValueError) as e:
        raise click.ClickException(str(e))

    class _R:  # format_table reads .metrics
        def __init__(self, metrics):
            self.metrics = metrics
    for wname, entry in report.items():
        s = entry["workload"]
        click.echo(f"\n== {wname}: {s['vms']} VMs, {s['hosts']} hosts, {s['steps']} × {s['step_s']:g} s")
        click.echo(format_table({n: _R(m) for n, m in entry["results"].items()}))
        warm = {n: m for n, m in entry["results"].items() if "warmup_reclaimed_pct" in m}
        if warm:
            click.echo("  warm-up (each VM's first day, not in the figures above; reclaim % / "
                       "short % / severe): " + ", ".join(
                           f"{n} {m['warmup_reclaimed_pct']:.1f}/{m['warmup_shortfall_interval_pct']:.3f}"
                           f"/{m['warmup_severe_events']}" for n, m in warm.items()))
        if "default" in entry["compare"]:
            c = entry["compare"]["default"]
            parts = [f"default vs oracle {c['oracle_efficiency_pct']:.1f}%"]
            for b in ("vpa", "max-window", "cloudvamp2015", "mom", "proxmox"):
                if f"dominates_{b}" in c:
                    sev = c[f"severe_ratio_{b}"]
                    parts.append(f"{b}: reclaim {c[f'reclaim_minus_{b}']:+.1f} pts, "
                                 f"dominates={c[f'dominates_{b}']}, "
                                 f"severe ÷{'inf' if math.isinf(sev) else format(sev, '.1f')}")
            click.echo("  " + " | ".join(parts))
        if entry.get("targets") and wname.startswith("traces:"):
            click.echo("  targets for default: " + "; ".join(
                f"{key} {value:.3g} {'MET' if met else 'MISSED'} ({goal_words})"
                for key, value, _goal, met, goal_words in entry["targets"]))
        if "frontier" in entry:
            f = entry["frontier"]
            click.echo(format_frontier(f["rows"], f["report"]))
            click.echo(f"  ({f['runs']} sweep runs in {f['wall_s']:.0f} s wall with {f['jobs']} "
                       f"processes, {f['cpu_s']:.0f} CPU-s)")
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
                "targets": [{"metric": k, "value": v, "goal": g, "met": met, "words": words}
                            for k, v, g, met, words in e.get("targets", [])],
                "plots": e.get("plots", []),
                **({"frontier": json_ready_tree(e["frontier"])} if "frontier" in e else {})}
            for w, e in report.items()}}
        with open(json_path, "w") as fh:
            json.dump(doc, fh, indent=2)
        click.echo(f"wrote {json_path}", err=True)


@bench.command("scale")
@click.option("--vms", type=click.IntRange(1), default=10000, show_default=True,
              help="VMs in the generated pool (the largest size of the series).")
@click.option("--hosts", type=click.IntRange(1), default=None,
              help="Hosts (default: one per 10 VMs).")
@click.option("--series/--no-series", default=True, show_default=True,
              help="Also time 100 and 1,000 VMs (same VM:host ratio) to check linear growth.")
@click.option("--pyone/--no-pyone", "with_pyone", default=True, show_default=True,
              help="Also time pyone's typed bindings on the same XML.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the largest size's figures (and the series) as JSON.")
def scale(vms, hosts, series, with_pyone, json_path):
    """Time one full control cycle on a generated oned-7.4-shaped cloud.

    Parse (the project's lxml parser beside pyone's typed bindings), observe, decide and plan,
    and peak memory, each size in a fresh process.

    \b
    Example:
      cvem bench scale --vms 10000 --hosts 1000 --json scale.json
    """
    from ..bench.scale import linearity, run_in_child
    ratio = (hosts or max(1, vms // 10)) / vms
    sizes = sorted({n for n in (100, 1000) if series and n < vms} | {vms})
    rows = []
    for n in sizes:
        h = hosts if n == vms and hosts else max(1, int(round(n * ratio)))
        try:
            row = run_in_child("cycle", n, h)
            if with_pyone:
                row.update(run_in_child("pyone", n, h))
        except (RuntimeError, OSError) as e:
            raise click.ClickException(str(e))
        rows.append(row)
        click.echo(f"{n:>7} VMs {h:>5} hosts: parse {row['parse_s']:.3f} s"
                   + (f" (pyone {row['parse_pyone_s']:.3f} s)" if with_pyone else "")
                   + f", observe {row['observe_s']:.3f} s, decide+plan {row['decide_plan_s']:.3f} s"
                     f" (first cycle {row['decide_plan_first_s']:.3f} s), peak {row['peak_rss_mb']:.0f} MB,"
                     f" {row['xml_mb']} MB of XML")
    result = dict(rows[-1])
    result["series"] = rows
    result["time_per_vm_ratio_largest_to_smallest"] = linearity(rows)
    if len(rows) > 1:
        click.echo(f"time per VM, largest ÷ smallest size (1.0 = linear): "
                   f"{result['time_per_vm_ratio_largest_to_smallest']}")
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=2)
        click.echo(f"wrote {json_path}", err=True)


@bench.command("real")
@click.option("--vms", default="200,1000", show_default=True,
              help="Comma-separated fleet sizes, each built, measured and deleted in turn.")
@click.option("--heartbeat-s", type=click.FloatRange(min=1), default=1800.0, show_default=True,
              help="Publisher heartbeat used for the write budget (changes on top: see "
                   "`cvem bench writes`).")
@click.option("--cluster", "cluster_id", type=int, default=-1,
              help="Measure this existing cluster's RUNNING VMs instead of building fleets.")
@click.option("--capacity/--no-capacity", default=True, show_default=True,
              help="Also measure oned's one.vm.update capacity (4 clients, 10 s).")
@click.option("--writes-json", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A `cvem bench writes --json` result: its total at 10,000 VMs is set "
                   "against the capacity measured here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the figures as JSON.")
@click.pass_context
def real(ctx, vms, heartbeat_s, cluster_id, capacity, writes_json, json_path):
    """Whole cycles on a real oned with the dummy drivers (the oned test bed, never a
    production cloud): builds a cluster of `dummylive` hosts and N VMs, times a first and a
    steady cvem cycle (read, decide, apply, show), deletes it all, and prints the oned write
    budget per 1,000 VMs.

    \b
    Example (test bed from ../shared/oned-testbed):
      . /tmp/oned-testbed/env.sh && cvem bench real --vms 200,1000
    """
    from ..adapters.one import auth_file_path, read_session, resolve_endpoint
    from ..bench.real_oned import measure, write_budget
    root = ctx.obj or {}
    try:
        endpoint = resolve_endpoint(root.get("endpoint"))
        session = read_session(auth_file_path(root.get("auth_file")))
        sizes = [int(v) for v in vms.split(",") if v.strip()] if cluster_id < 0 else [0]
    except (CloudvampError, ValueError) as e:
        raise click.ClickException(str(e))
    results = []
    for n in sizes:
        click.echo(f"{n or 'existing'} VMs on {endpoint}:")
        try:
            row = measure(endpoint, session, n, say=click.echo, cluster_id=cluster_id)
        except (RuntimeError, OSError, CloudvampError) as e:
            raise click.ClickException(f"{n} VMs: {e}")
        for name, c in row["cycles"].items():
            click.echo(f"  {name:8s} cycle {c['total_s']:6.2f} s (read {c['read_s']:.2f}, decide "
                       f"{c['decide_s']:.2f}, apply {c['apply_s']:.2f} for {c['resizes']} "
                       f"resizes, show {c['show_s']:.2f} for {c['show_updates']} updates)")
        click.echo(f"  one.vm.update {row['update_ms']:.1f} ms each (publisher reports)")
        results.append(row)
    if capacity:   # oned's write capacity, for `cvem bench writes --capacity`
        from ..bench.oned_capacity import measure_update_capacity
        try:
            cap = measure_update_capacity(endpoint, session)
        except (RuntimeError, OSError) as e:
            raise click.ClickException(f"capacity: {e}")
        click.echo(f"oned write capacity: {cap['updates_per_s']:.0f} one.vm.update/s "
                   f"({cap['clients']} clients, {cap['duration_s']:g} s, {cap['failed']} "
                   f"refused)")
        if writes_json:
            with open(writes_json) as fh:
                total = json.load(fh)["budget"]["total_per_s"]
            cap["writes_at_10000_vms_per_s"] = total
            cap["share_pct"] = round(100.0 * total / max(cap["updates_per_s"], 1e-9), 1)
            click.echo(f"  {total:g} writes/s at 10,000 VMs ({writes_json}) = "
                       f"{cap['share_pct']:g} % of it (target < 20 %)")
    else:
        cap = None
    update_ms = max(r["update_ms"] for r in results) if results else 0.0
    budget = write_budget(update_ms, heartbeat_s)
    click.echo(f"oned writes per 1,000 VMs: publishers {budget['publishers_per_s']}/s (heartbeat "
               f"{heartbeat_s:g} s), cvem {budget['cvem_per_s']}/s (resize + LAST_ACTION at "
               f"1.5 resizes/VM-hour); measured capacity ~{budget['capacity_per_s']}/s, so "
               f"{budget['share_at_10000_vms_pct']} % of it at 10,000 VMs; oned history "
               f"{budget['history_bytes_per_vm_month'] / 1e6:.2f} MB per VM-month")
    if json_path:
        with open(json_path, "w") as fh:
            json.dump({"sizes": results, "budget": budget, "capacity": cap}, fh, indent=2)
        click.echo(f"wrote {json_path}", err=True)


@bench.command("writes")
@click.option("--traces", type=click.Path(exists=True, file_okay=False), required=True,
              help="Bitbrains-format trace folder (e.g. ../shared/traces/bitbrains-rnd-2013-8).")
@click.option("--vms", type=click.IntRange(1), default=None,
              help="Only the first VMS traces (default: all).")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Replay only the first DAYS (default: all).")
@click.option("--heartbeat-s", type=click.FloatRange(min=0), default=None,
              help="Publisher --heartbeat (default: the publisher's, 1800).")
@click.option("--min-change-kib", type=click.IntRange(0), default=None,
              help="Publisher --min-change-kib (default: the publisher's).")
@click.option("--min-change-ratio", type=click.FloatRange(0, 1), default=None,
              help="Publisher --min-change-ratio (default: the publisher's).")
@click.option("--sample-s", type=click.FloatRange(min=1), default=10.0, show_default=True,
              help="The publisher's sampling period (--interval).")
@click.option("--capacity", "capacity_per_s", type=click.FloatRange(min=0, min_open=True),
              default=None, help="oned's one.vm.update capacity per second (default: the "
                                 "test bed's measured 230; `cvem bench real` measures it).")
@click.option("--quota-hold/--no-quota-hold", default=True, show_default=True,
              help="Count cvem's quota updates (an upper bound of two per resize).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the figures as JSON.")
def writes(traces, vms, days, heartbeat_s, min_change_kib, min_change_ratio, sample_s,
           capacity_per_s, quota_hold, json_path):
    """oned writes per second per 1,000 VMs, from publishers and from cvem, and their share
    of oned's capacity at 10,000 VMs (target: under 20 %).

    The traces run through the simulator under the default policy (cvem's resizes and show
    attributes); each guest's figures under those allocations run through the publisher's
    own decision function (onegate/cloudvamp-publisher publish_reason).

    \b
    Example:
      cvem bench writes --traces ../shared/traces/bitbrains-rnd-2013-8
    """
    from ..bench.writes import (DEFAULT_CAPACITY_PER_S, budget, cvem_writes_per_s_per_1000,
                                load_publisher, replay_publishers)
    from ..policies.base import load_policy
    from ..sim.engine import simulate
    from ..sim.workloads import read_bitbrains
    started = time.monotonic()
    try:
        publisher = load_publisher()
        rules = publisher.DEFAULT_RULES
        for name, value in (("heartbeat_s", heartbeat_s), ("used_min_kib", min_change_kib),
                            ("used_ratio", min_change_ratio)):
            if value is not None:
                rules = rules._replace(**{name: value})
        workload = read_bitbrains(traces, vms=vms, days=days, step_s=300.0)
        click.echo(f"... simulating {workload.vms} VMs × {workload.steps} steps (default)",
                   err=True)
        series = simulate(workload, load_policy("default")).series
        present = workload.info.get("present_from_step")
        click.echo("... replaying the publishers", err=True)
        replay = replay_publishers(series.demand_kib, series.alloc_kib, workload.step_s,
                                   present, sample_s=sample_s, rules=rules, publisher=publisher)
        cvem = cvem_writes_per_s_per_1000(series.alloc_kib, workload.step_s, present,
                                          quota_hold=quota_hold)
    except (CloudvampError, ValueError) as e:
        raise click.ClickException(str(e))
    capacity = capacity_per_s or DEFAULT_CAPACITY_PER_S
    result = budget(replay.per_s_per_1000_vms, cvem, capacity)
    click.echo(f"publishers (heartbeat {rules.heartbeat_s:g} s, deadband max("
               f"{rules.used_min_kib} KiB, {rules.used_ratio:g} × MemTotal), sampled every "
               f"{sample_s:g} s): {result['publishers_per_s_per_1000']:.3f} writes/s per "
               f"1,000 VMs; why: " + ", ".join(f"{k} {v}" for k, v in sorted(
                   replay.reasons.items(), key=lambda kv: -kv[1])))
    seen = sum(replay.verdicts.values()) or 1
    click.echo("cvem's view of the published reports (probe fresh): " + ", ".join(
        f"{k} {100.0 * v / seen:.1f} %" for k, v in sorted(replay.verdicts.items(),
                                                          key=lambda kv: -kv[1]))
               + " of VM-steps (moved: no shrink on it)")
    click.echo(f"cvem: {result['cvem_per_s_per_1000']:.3f} writes/s per 1,000 VMs (resizes "
               f"{cvem['resizes_per_s']:.3f}, show {cvem['show_per_s']:.3f}, quota "
               f"{cvem['quota_per_s']:.3f}; {cvem['resizes_per_vm_hour']:.2f} resizes per "
               f"VM-hour) + handover {result['handover_per_s']:g}/s per cloud")
    click.echo(f"at {result['fleet_vms']:,} VMs: {result['total_per_s']:.1f} writes/s = "
               f"{result['share_pct']:.1f} % of oned's {result['capacity_per_s']:g}/s "
               f"({'measured' if capacity_per_s else 'test-bed default'}); target < "
               f"{result['target_pct']:g} %: {'MET' if result['met'] else 'MISSED'}")
    click.echo(f"({time.monotonic() - started:.1f} s)", err=True)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump({"budget": result, "cvem": cvem, "publisher_reasons": replay.reasons,
                       "report_verdicts": replay.verdicts,
                       "rules": dict(rules._asdict()), "sample_s": sample_s,
                       "vms": workload.vms, "days": round(workload.steps * workload.step_s
                                                          / 86400.0, 2)}, fh, indent=2)
        click.echo(f"wrote {json_path}", err=True)


@bench.command("lend")
@click.option("--traces", type=click.Path(exists=True, file_okay=False), default=None,
              help="Bitbrains-format trace folder; without it a generated 'mixed' cloud.")
@click.option("--strategies", default=None,
              help="Comma-separated lending strategies (default: all of `cvem lending`).")
@click.option("--policies", default="default,vpa", show_default=True,
              help="Comma-separated sizing policies.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Replay only the first DAYS of the traces (default: all).")
@click.option("--max-ratio", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Arrivals from the pool, per fleet VM.")
@click.option("--placement", type=click.Choice(["striping", "first-fit"]), default="striping",
              show_default=True, help="How OpenNebula's scheduler picks among hosts that fit.")
@click.option("--jobs", type=click.IntRange(1), default=None,
              help="Parallel processes (default: up to 2).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write every arm's figures and the target checks as JSON.")
@click.option("--plot-dir", type=click.Path(file_okay=False), default=None,
              help="Write the frontier plot (extra VMs vs host overload) here.")
def lend(traces, strategies, policies, days, max_ratio, placement, jobs, json_path, plot_dir):
    """Every lending strategy × policy in an admission run, on the traces and on A′.

    OpenNebula's scheduler deploys VMs from a held-back pool wherever the strategy shows
    room; cloudvamp resizes and migrates. Prints one table and the issue's targets.

    \b
    Example:
      cvem bench lend --traces ../shared/traces/bitbrains-rnd-2013-8 --json lend.json --plot-dir plots
    """
    from ..bench.lend import (STRATEGIES, bench_specs, default_jobs, finite, format_lend_table,
                              plot_frontier, run_lend_bench)
    from ..lending.base import strategy_class
    from ..sim.scheduler import AdmissionParams
    started = time.monotonic()
    try:
        names = parse_policy_list(strategies) if strategies else list(STRATEGIES)
        for name in names:
            strategy_class(name)
        pols = parse_policy_list(policies)
        specs = bench_specs(traces, days, AdmissionParams(max_ratio=max_ratio,
                                                          placement=placement))
        report = run_lend_bench(specs, names, pols, jobs or default_jobs(),
                                progress=lambda t: click.echo(
                                    f"... {t[0].variant} {t[1] or 'static'}/{t[2]}", err=True))
    except (CloudvampError, ValueError) as e:
        raise click.ClickException(str(e))
    click.echo(format_lend_table(report))
    for variant, entry in report.items():
        for policy, tg in entry["targets"].items():
            best = tg["best"]
            line = f"{variant} {policy}: best {best or '(none meets the safety targets)'}"
            if best:
                line += (f" +{tg['best_extra_vms_pct']:.1f} % VMs "
                         f"(target ≥ +25 %: {'met' if tg['extra_target_met'] else 'missed'}); "
                         f"a strategy ahead of fixed and every ScroogeVM strategy: "
                         f"{'yes' if tg['ahead_of_fixed_and_scroogevm'] else 'no'}")
            failed = {s: f for s, f in tg["failed_targets"].items() if f}
            if failed:
                line += "; failing: " + ", ".join(f"{s} ({'/'.join(f)})" for s, f in failed.items())
            click.echo(line)
    wall_s = time.monotonic() - started
    click.echo(f"({wall_s:.1f} s)", err=True)
    if plot_dir:
        path = os.path.join(plot_dir, "lend-frontier.png")
        plot_frontier(report, path)
        click.echo(f"wrote {path}", err=True)
    if json_path:
        doc = {"wall_s": round(wall_s, 2), "workloads": {
            v: {"spec": e["spec"],
                "results": {a: {k: finite(x) for k, x in m.items()} for a, m in e["arms"].items()},
                "targets": e["targets"]} for v, e in report.items()}}
        with open(json_path, "w") as fh:
            json.dump(doc, fh, indent=2, default=json_ready)
        click.echo(f"wrote {json_path}", err=True)


@cli.command("lending")
def lending():
    """List the lending strategies and their parameters (``[lend:<name>]``)."""
    from ..core.params import describe_params
    from ..lending.base import available_strategies, strategy_class
    for name in available_strategies():
        cls = strategy_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        click.echo(f"{name}: {doc[0] if doc else ''}")
        for key, default, help_text in describe_params(cls.Params):
            click.echo(f"    {key} = {default}  {help_text}")
