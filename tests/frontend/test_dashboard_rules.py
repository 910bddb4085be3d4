"""The Grafana dashboard and the Prometheus alert rules shipped in etc/: both load, and every
expression uses only metrics cvem exports (cvem.monitor.metrics); promtool (Debian's
`prometheus` package) validates the rules when it is installed, and must under CI."""
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from cvem.monitor.metrics import exposed_names
from fe_support import ROOT

DASHBOARD = os.path.join(ROOT, "etc", "grafana", "cloudvamp.json")
RULES = os.path.join(ROOT, "etc", "prometheus", "cloudvamp-rules.yml")

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "inf", "nan"}


def metric_names(expr):
    """The metric names a PromQL expression reads (strings, label matchers, groupings,
    durations, functions and keywords removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)            # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)                        # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)                       # ranges
    expr = re.sub(r"\b\d+(ms|[smhdwy])\b", "", expr)                # offsets
    expr = re.sub(r"\$\w+", "", expr)                            # Grafana variables
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = match.group(0)
        rest = expr[match.end():].lstrip()
        if rest.startswith("("):          # a function or aggregation
            continue
        if word in KEYWORDS:
            continue
        names.add(word)
    return names


def test_metric_name_extraction_sees_through_promql():
    expr = ('sum by (kind) (rate(cloudvamp_actions_total{result="failed", x=~"a|b"}[5m])) '
            '> 0 and on (instance) cloudvamp_leader == 1 offset 30m')
    assert metric_names(expr) == {"cloudvamp_actions_total", "cloudvamp_leader"}


def dashboard_expressions(dash):
    exprs = []
    for panel in dash["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    for var in dash["templating"]["list"]:
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
        assert match, query
        exprs.append(match.group(1))
    return exprs


def test_dashboard_loads_and_uses_only_metrics_cvem_exports():
    with open(DASHBOARD, encoding="utf-8") as stream:
        dash = json.load(stream)
    assert dash["title"] == "cloudvamp" and dash["uid"]
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("reclaimed memory over time", "physical", "actions", "oned errors",
                  "guest reports", "cycle time"):
        assert topic in titles, topic
    exprs = dashboard_expressions(dash)
    assert len(exprs) >= 15
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= exposed_names(), used - exposed_names()
    assert {"cloudvamp_cloud_reclaimed_memory_bytes", "cloudvamp_host_physical_memory_bytes",
            "cloudvamp_actions_total", "cloudvamp_oned_errors_total",
            "cloudvamp_guest_reports", "cloudvamp_cycle_duration_seconds",
            "cloudvamp_cycle_period_seconds"} <= used


def test_dashboard_alert_rules_load_and_use_only_metrics_cvem_exports():
    with open(RULES, encoding="utf-8") as stream:
        doc = yaml.safe_load(stream)
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"CloudvampGuestsShort", "CloudvampCycleSlowerThanPeriod",
            "CloudvampOnedUnreachable", "CloudvampStaleReportsRising"} <= names
    for rule in rules:
        used = metric_names(rule["expr"])
        assert used and used <= exposed_names(), (rule["alert"], used - exposed_names())
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


def test_dashboard_alert_rules_pass_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required under CI (Debian package prometheus; "
                        "scripts/setup installs it as root)")
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run([promtool, "check", "rules", RULES], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
