"""`cvem` through click's CliRunner: help, `cvem simulate` end to end and its errors."""

import json
import os
import sys

import click
import pytest
from click.testing import CliRunner

from cvem.cli import cli
from cvem.sim.metrics import METRIC_NAMES

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.sim.traces import steady, write_trace  # noqa: E402

GIB = 1024 * 1024


@pytest.fixture
def runner():
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always keeps stderr apart
        return CliRunner()


def test_cvem_help(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: cli" in result.output or "Usage: cvem" in result.output
    assert "simulate" in result.output
    assert runner.invoke(cli, ["-h"]).output == result.output


def test_simulate_help(runner):
    result = runner.invoke(cli, ["simulate", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--traces", "--scenario", "--vms", "--days", "--step-s", "--policies",
                   "--json", "--plot"):
        assert option in result.output
    assert "Examples:" in result.output


def test_simulate_small_run_writes_json_and_png(runner, tmp_path):
    out_json, out_png = tmp_path / "out.json", tmp_path / "out.png"
    result = runner.invoke(cli, ["simulate", "--vms", "6", "--days", "0.2",
                                 "--policies", "none,oracle,default",
                                 "--json", str(out_json), "--plot", str(out_png)])
    assert result.exit_code == 0, result.output + (result.stderr or "")
    rows = result.stdout.splitlines()
    assert rows[0].split()[0] == "policy"
    assert [r.split()[0] for r in rows[2:]] == ["none", "oracle", "default"]
    doc = json.loads(out_json.read_text())
    assert {"vms", "hosts", "steps", "step_s"} <= set(doc["workload"])
    assert doc["workload"]["vms"] == 6 and doc["workload"]["step_s"] == 10
    assert doc["workload"]["steps"] == round(0.2 * 86400 / 10)
    assert list(doc["results"]) == ["none", "oracle", "default"]
    for name, metrics in doc["results"].items():
        assert set(METRIC_NAMES) <= set(metrics), name
        for key in METRIC_NAMES:
            if key == "extra_vms_pct":   # measured by `cvem bench lend` only: null here
                assert metrics[key] is None, name
                continue
            assert isinstance(metrics[key], (int, float)), (name, key)  # NaN would be null
    assert doc["results"]["none"]["reclaimed_pct"] == 0
    assert doc["results"]["oracle"]["shortfall_interval_pct"] == 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out_png.stat().st_size > 10_000


def test_simulate_on_a_trace_folder(runner, tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    write_trace(traces / "1.csv", steady(50, 4 * GIB, 1 * GIB))
    write_trace(traces / "2.csv.gz", steady(50, 2 * GIB, 1.5 * GIB))
    out_json = tmp_path / "out.json"
    result = runner.invoke(cli, ["simulate", "--traces", str(traces), "--policies", "none,vpa",
                                 "--json", str(out_json)])
    assert result.exit_code == 0, result.output + (result.stderr or "")
    doc = json.loads(out_json.read_text())
    assert doc["workload"]["vms"] == 2 and doc["workload"]["step_s"] == 300
    assert doc["workload"]["steps"] == 50


def test_unknown_policy_is_a_clear_error(runner):
    result = runner.invoke(cli, ["simulate", "--vms", "2", "--days", "0.01",
                                 "--policies", "none,magic"])
    assert result.exit_code == 1
    message = result.stderr if result.stderr_bytes is not None else result.output
    assert "Error: unknown policy 'magic'" in message
    assert "available:" in message and "cloudvamp2015" in message
    assert "Traceback" not in result.output


def test_traces_and_scenario_together_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(cli, ["simulate", "--traces", str(tmp_path), "--scenario", "spiky"])
    assert result.exit_code == 2
    assert "exclusive" in (result.stderr or result.output)


def test_a_traces_folder_without_csv_is_a_clean_error(runner, tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    result = runner.invoke(cli, ["simulate", "--traces", str(tmp_path)])
    assert result.exit_code == 1
    assert "no .csv or .csv.gz files" in (result.stderr or result.output)
    assert isinstance(result.exception, SystemExit)   # a ClickException, not a traceback


def test_a_missing_traces_folder_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(cli, ["simulate", "--traces", str(tmp_path / "nope")])
    assert result.exit_code == 2


@pytest.mark.parametrize("args", [["--vms", "0"], ["--days", "0"], ["--scenario", "nope"],
                                  ["--policies", " , "]])
def test_bad_options_fail_without_a_traceback(runner, args):
    result = runner.invoke(cli, ["simulate"] + args)
    assert result.exit_code in (1, 2)
    assert isinstance(result.exception, SystemExit)


# ------------------------------------------------------------------- every command's help

def _commands(group, path=()):
    for name, command in sorted(group.commands.items()):
        yield path + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, path + (name,))


ALL_COMMANDS = list(_commands(cli))


def test_there_are_commands():
    assert ("simulate",) in [p for p, _ in ALL_COMMANDS]


@pytest.mark.parametrize("path, command", ALL_COMMANDS, ids=[" ".join(p) for p, _ in ALL_COMMANDS])
def test_every_command_has_help(runner, path, command):
    assert (command.help or "").strip(), f"cvem {' '.join(path)} has no docstring/help"
    result = runner.invoke(cli, list(path) + ["--help"])
    assert result.exit_code == 0, result.output
    first_words = " ".join(command.help.split()[:6])
    assert first_words in " ".join(result.output.split())   # help is re-wrapped
    missing = [param.opts[0] for param in command.params
               if isinstance(param, click.Option) and not param.hidden
               and not (param.help or "").strip()]
    assert not missing, f"cvem {' '.join(path)}: options without help: {missing}"


def test_bench_takes_a_host_size_and_never_fails_on_a_vm_larger_than_a_host(runner, tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    write_trace(traces / "1.csv", steady(24, 4 * GIB, 1 * GIB))
    write_trace(traces / "2.csv", steady(24, 40 * GIB, 10 * GIB))   # larger than the host
    out = tmp_path / "bench.json"
    result = runner.invoke(cli, ["bench", "--traces", str(traces), "--policies", "none,vpa,default",
                                 "--scenario-vms", "2", "--scenario-days", "0.01",
                                 "--host-gib", "16", "--json", str(out)])
    assert result.exit_code == 0, result.output + str(result.exception)
    doc = json.loads(out.read_text())
    plain = doc["workloads"]["traces:traces"]
    assert plain["workload"]["hosts"] == 2 and plain["workload"]["hosts_sized_to_vm"] == 1
    assert plain["workload"]["host_physical_gib"] == 16
    assert "traces:traces×1.5" in doc["workloads"]                  # A′ beside the raw traces
    assert {t["metric"] for t in plain["targets"]} >= {"oracle_efficiency_pct",
                                                       "severe_events"}
    assert "targets for default" in result.output


def test_bench_real_refuses_a_writes_json_that_is_not_a_writes_result_before_building(
        runner, tmp_path):
    garbage = tmp_path / "writes.json"
    garbage.write_text('{"sizes": []}')
    # an endpoint nobody listens on: the file is checked before oned is ever called
    result = runner.invoke(cli, ["--endpoint", "http://127.0.0.1:9/RPC2", "bench", "real",
                                 "--writes-json", str(garbage)])
    assert result.exit_code == 1
    lines = {line for line in (result.output + (result.stderr or "")).splitlines() if line}
    assert len(lines) == 1 and "not a `cvem bench writes --json` result" in lines.pop()
