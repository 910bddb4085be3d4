"""The frontier sweep: knob declarations, and the bound/dominance computed from metric rows."""
from dataclasses import dataclass, field

import math

import pytest

from cvem.bench.frontier import (format_frontier, frontier_report, frontier_rows,
                                 oracle_reclaimed_pct, plot_frontier,
                                 run_sweep, sweep_tasks)
from cvem.bench.frontier_math import (at_shortfall, dominance, envelope, fewest_severe_at,
                                      severe_at_reclaim, target_bound)
from cvem.core.policy import FrontierKnob, Policy, check_frontier_knob, setting_label
from cvem.errors import ConfigError
from cvem.policies.base import available_policies, policy_class
from cvem.sim.engine import CloudConfig
from cvem.sim.workloads import generate


def row(policy, short, reclaim, severe, shipped=False, oracle=100.0, setting="k=1"):
    return {"policy": policy, "setting": setting, "shipped": shipped,
            "shortfall_interval_pct": short, "reclaimed_pct": reclaim,
            "oracle_efficiency_pct": 100.0 * reclaim / oracle, "severe_events": severe,
            "avoidable_severe": severe // 2, "resizes_per_vm_hour": 0.1}


# ------------------------------------------------------------------ knob declarations

@pytest.mark.parametrize("name", available_policies())
def test_every_registered_knob_is_a_valid_parameter_sweep(name):
    knob = check_frontier_knob(policy_class(name))
    if name in ("none", "oracle"):
        assert knob is None                       # nothing to trade
    else:
        assert knob is not None and len(knob.values) >= 2


def _policy_with(knob):
    class Fake(Policy):
        name = "fake"

        @dataclass(frozen=True)
        class Params:
            margin_ratio: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    Fake.frontier_knob = knob
    return Fake


def test_a_knob_on_an_unknown_parameter_is_refused_with_its_name():
    with pytest.raises(ConfigError, match="'margin' is not a parameter.*margin_ratio"):
        check_frontier_knob(_policy_with(FrontierKnob("margin", (0.1, 0.2))))


def test_a_knob_value_out_of_the_parameter_bounds_is_refused():
    with pytest.raises(ConfigError, match="above its maximum"):
        check_frontier_knob(_policy_with(FrontierKnob("margin_ratio", (0.1, 5.0))))


@pytest.mark.parametrize("values", [(0.1,), (0.1, 0.1)])
def test_a_knob_needs_two_distinct_values(values):
    with pytest.raises(ConfigError, match="two distinct values"):
        check_frontier_knob(_policy_with(FrontierKnob("margin_ratio", values)))


def test_a_joint_knob_sets_its_parameters_together():
    class Two(_policy_with(None)):
        @dataclass(frozen=True)
        class Params:
            a: float = field(default=0.1, metadata={"min": 0.0})
            b: float = field(default=1.0, metadata={"min": 0.0})
    Two.frontier_knob = FrontierKnob(("a", "b"), ((0.0, 2.0), (0.1, 1.0)))
    assert check_frontier_knob(Two).points() == [{"a": 0.0, "b": 2.0}, {"a": 0.1, "b": 1.0}]
    assert setting_label({"a": 0.0, "b": 2.0}) == "a=0,b=2"
    Two.frontier_knob = FrontierKnob(("a", "b"), ((0.0, 2.0), (0.1,)))
    with pytest.raises(ConfigError, match="must set all of a, b"):
        check_frontier_knob(Two)


def test_a_knob_must_be_declared_as_a_frontier_knob():
    with pytest.raises(ConfigError, match="must be a FrontierKnob"):
        check_frontier_knob(_policy_with(("margin_ratio", (0.1, 0.2))))


def test_the_sweep_leaves_out_the_shipped_value_and_knobless_policies():
    tasks = sweep_tasks(["vpa", "oracle"])
    knob = policy_class("vpa").frontier_knob
    shipped = policy_class("vpa").Params().margin_ratio
    assert [p for _, p in tasks] == [{"margin_ratio": v} for v in knob.values if v != shipped]
    assert {n for n, _ in tasks} == {"vpa"}


# ------------------------------------------------------------------ frontier computations

def test_envelope_keeps_the_points_nothing_beats_on_both_axes():
    rows = [row("d", 0.01, 50, 10), row("d", 0.02, 40, 5), row("d", 0.03, 70, 30),
            row("d", 0.03, 60, 20)]
    assert [(r["shortfall_interval_pct"], r["reclaimed_pct"]) for r in envelope(rows)] == \
        [(0.01, 50), (0.03, 70)]


def test_reclaim_and_severe_are_interpolated_between_the_bracketing_points():
    rows = [row("d", 0.01, 50, 10), row("d", 0.03, 70, 30)]
    got = at_shortfall(rows, 0.02)
    assert got["reclaimed_pct"] == pytest.approx(60) and got["severe_events"] == pytest.approx(20)
    assert at_shortfall(rows, 0.03)["reclaimed_pct"] == pytest.approx(70)
    assert at_shortfall(rows, 0.005) is None and at_shortfall(rows, 0.5) is None


def test_dominance_at_the_arms_own_shortfall():
    own = [row("default", 0.01, 50, 10), row("default", 0.03, 70, 30)]
    beaten = dominance(own, row("vpa", 0.02, 55, 25, shipped=True))
    assert beaten["dominates"] is True and beaten["witness"] is None   # only interpolated
    assert beaten["interpolated"]["reclaimed_pct"] == pytest.approx(60)
    more_severe = dominance(own, row("mw", 0.02, 55, 15, shipped=True))
    assert more_severe["dominates"] is False and more_severe["dominates_reclaim"] is True
    assert more_severe["dominates_severe"] is False


def test_dominance_says_which_way_the_sweep_does_not_reach():
    own = [row("default", 0.01, 50, 10), row("default", 0.03, 70, 30)]
    bold = dominance(own, row("cv", 2.0, 90, 9000, shipped=True))
    assert bold["dominates"] is None and "boldest" in bold["reach"]
    assert bold["witness"] is None
    timid = dominance(own, row("mom", 0.001, 20, 5, shipped=True))
    assert timid["dominates"] is None and "most cautious" in timid["reach"]


def test_a_witness_beats_the_arm_on_every_axis_without_interpolation():
    own = [row("default", 0.01, 60, 10), row("default", 0.05, 80, 50)]
    d = dominance(own, row("proxmox", 0.04, 20, 60, shipped=True))
    assert d["witness"]["reclaimed_pct"] == 60


def test_the_target_bound_is_the_fewest_severe_events_at_the_target_reclaim():
    rows = [row("vpa", 0.02, 50, 100, shipped=True), row("vpa", 0.2, 86, 900),
            row("default", 0.02, 60, 80, shipped=True), row("default", 0.1, 85, 400),
            row("default", 0.3, 90, 1500), row("oracle", 0, 100, 0, shipped=True)]
    b = target_bound(rows, 85.0, "vpa")
    assert b["reference_severe"] == 100
    assert b["per_policy"]["default"]["severe_events"] == 400
    assert b["per_policy"]["vpa"]["severe_events"] == 900
    assert b["best"]["policy"] == "default" and b["met"] is False   # the oracle is no arm
    assert fewest_severe_at(rows_of_policy(rows, "vpa")[:1], 85.0) is None
    rows.append(row("max-window", 0.05, 88, 90))
    assert target_bound(rows)["met"] is True


def rows_of_policy(rows, name):
    return [r for r in rows if r["policy"] == name]


def test_frontier_rows_add_the_share_of_the_oracle_and_the_shipped_point():
    shipped = {"oracle": {"reclaimed_pct": 80.0, "shortfall_interval_pct": 0.0,
                          "severe_events": 0, "avoidable_severe": 0,
                          "resizes_per_vm_hour": 3.0},
               "vpa": {"reclaimed_pct": 40.0, "shortfall_interval_pct": 0.02,
                       "severe_events": 9, "avoidable_severe": 4, "resizes_per_vm_hour": 0.1}}
    swept = [{"reclaimed_pct": 60.0, "shortfall_interval_pct": 0.05, "severe_events": 30,
              "avoidable_severe": 20, "resizes_per_vm_hour": 0.1}]
    rows = frontier_rows(shipped, [("vpa", {"margin_ratio": 0.0})], swept)
    vpa = [r for r in rows if r["policy"] == "vpa"]
    assert [r["oracle_efficiency_pct"] for r in vpa] == [50.0, 75.0]
    assert vpa[0]["shipped"] and vpa[0]["setting"] == "margin_ratio=0.15"
    assert not vpa[1]["shipped"] and vpa[1]["setting"] == "margin_ratio=0"
    report = frontier_report(rows)
    assert report["dominance"] == []                        # no default rows
    assert report["bound"]["reference_severe"] == 9


def test_the_oracle_reclaim_is_read_back_when_the_oracle_is_not_an_arm():
    assert oracle_reclaimed_pct({"vpa": {"reclaimed_pct": 40.0,
                                         "oracle_efficiency_pct": 50.0}}) == 80.0
    assert math.isnan(oracle_reclaimed_pct({}))


def test_the_sweep_runs_the_benchmarks_simulator_in_worker_processes():
    w = generate("step", vms=4, days=0.05, step_s=60.0, seed=1)
    tasks = [("vpa", {"margin_ratio": 0.0}), ("vpa", {"margin_ratio": 0.5})]
    one = run_sweep(w, tasks, CloudConfig(), jobs=1)
    two = run_sweep(w, tasks, CloudConfig(), jobs=2)
    figures = [{k: v for k, v in m.items() if k != "cpu_s"} for m in one]
    assert figures == [{k: v for k, v in m.items() if k != "cpu_s"} for m in two]
    assert all(m["cpu_s"] >= 0 for m in one + two)
    assert one[0]["reclaimed_pct"] >= one[1]["reclaimed_pct"]


def test_the_table_and_the_plot_show_bound_and_dominance(tmp_path):
    rows = [row("vpa", 0.02, 50, 100, shipped=True, setting="margin_ratio=0.15"),
            row("vpa", 0.2, 86, 900, setting="margin_ratio=0"),
            row("default", 0.02, 60, 80, shipped=True, setting="a=1"),
            row("default", 0.1, 85, 400, setting="a=0"),
            row("mom", 0.001, 17, 5, shipped=True, setting="p=0.2"),
            row("oracle", 0.0, 100, 0, shipped=True, setting="")]
    report = frontier_report(rows)
    text = format_frontier(rows, report)
    assert "fewest severe at >= 85 %: default a=0: 85.0 % of oracle" in text
    assert "-> MISSED (vpa 100)" in text
    assert "vpa            at 0.020 % short" in text and "DOMINATES" in text
    assert "mom" in text and "not reached: the sweep's most cautious point is bolder" in text
    plot_frontier(rows, report, str(tmp_path / "frontier.png"), title="t")
    assert (tmp_path / "frontier.png").stat().st_size > 0


def test_a_sub_sample_keeps_every_nth_vm_with_its_surges():
    w = generate("step", vms=9, days=0.05, step_s=60.0, seed=3)
    sub = w.every(4)
    assert sub.vms == 3 and (sub.demand_kib == w.demand_kib[[0, 4, 8]]).all()
    kept = [(vm, t) for vm, t in w.surge_starts if vm % 4 == 0]
    assert [(vm * 4, t) for vm, t in sub.surge_starts] == kept
    assert w.every(1) is w


def test_a_real_point_at_less_shortfall_dominates_whatever_the_interpolation_says():
    own = [row("default", 0.022, 64, 89), row("default", 0.040, 73, 167)]
    d = dominance(own, row("vpa", 0.026, 57, 90, shipped=True))
    assert d["dominates_severe"] is False           # the straight line gives 107 events
    assert d["witness"]["severe_events"] == 89 and d["dominates"] is True


def test_severe_events_interpolated_at_the_target_reclaim_on_the_lower_envelope():
    rows = [row("d", 0.08, 81, 323), row("d", 0.26, 87, 955), row("d", 0.9, 86, 2000),
            row("d", 0.02, 64, 89)]
    assert severe_at_reclaim(rows, 85.0) == pytest.approx(323 + (955 - 323) * 4 / 6)
    assert severe_at_reclaim(rows, 90.0) is None
    assert severe_at_reclaim(rows, 64.0) == 89


def test_cvem_bench_prints_the_frontier_with_traces_and_skips_it_when_asked(tmp_path):
    import json
    import os
    import sys

    from click.testing import CliRunner

    from cvem.cli import cli
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))))
    from tests.sim.traces import steady, write_trace
    gib = 1024 * 1024
    traces = tmp_path / "traces"
    traces.mkdir()
    write_trace(traces / "1.csv", steady(24, 4 * gib, 1 * gib))
    write_trace(traces / "2.csv", steady(24, 8 * gib, 3 * gib))
    out = tmp_path / "bench.json"
    args = ["bench", "--traces", str(traces), "--policies", "vpa,oracle,default",
            "--no-scenarios", "--no-inflated", "--jobs", "1"]
    result = CliRunner().invoke(cli, args + ["--json", str(out), "--plot-dir",
                                             str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output + str(result.exception)
    assert "bound of the target (>= 85 % of the oracle" in result.output
    assert "dominance of default at each arm's own shortfall" in result.output
    frontier = json.loads(out.read_text())["workloads"]["traces:traces"]["frontier"]
    assert {r["policy"] for r in frontier["rows"]} == {"vpa", "oracle", "default"}
    assert (tmp_path / "plots" / "frontier.png").exists()
    skipped = CliRunner().invoke(cli, args + ["--no-frontier"])
    assert skipped.exit_code == 0 and "bound of the target" not in skipped.output
