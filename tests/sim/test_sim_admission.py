"""The admission run: OpenNebula's scheduler deploys pool VMs where lending shows room, the
same arrival schedule for every arm, and `cvem bench lend` reports it."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from cvem.cli import cli
from cvem.lending import load_strategy
from cvem.lending.target import LendParams
from cvem.policies.base import load_policy
from cvem.sim.engine import CloudConfig, place, simulate
from cvem.sim.scheduler import Admission, AdmissionParams, split_fleet_pool
from cvem.sim.variants import page_cache_inflated
from cvem.sim.workloads import generate

PARAMS = AdmissionParams(warmup_s=6 * 3600.0, interval_s=1800.0, max_ratio=2.0)


@pytest.fixture(scope="module")
def cloud_parts():
    w = generate("diurnal", vms=24, days=1.5, step_s=300.0, seed=3)
    fleet, pool = split_fleet_pool(w)
    cloud = CloudConfig()
    return fleet, pool, cloud, place(fleet, cloud)


def arm(cloud_parts, strategy, policy="default"):
    fleet, pool, cloud, placement = cloud_parts
    adm = Admission(fleet, pool, placement, load_strategy(strategy),
                    LendParams(strategy=strategy, window_s=1800), PARAMS)
    return adm, simulate(fleet, load_policy(policy), cloud, admission=adm)


def test_fleet_and_pool_are_disjoint_halves(cloud_parts):
    fleet, pool, _, _ = cloud_parts
    assert fleet.vms == pool.vms == 12
    assert not set(fleet.vm_names) & set(pool.vm_names)


def test_same_arrivals_for_every_arm_and_extra_vms_measured(cloud_parts):
    a, ra = arm(cloud_parts, "none")
    b, rb = arm(cloud_parts, "allocpeak")
    assert np.array_equal(a.arrival_step, b.arrival_step) and a.arrival_step.size == 24
    for adm, r in ((a, ra), (b, rb)):
        m = r.metrics
        assert m["extra_vms_pct"] == pytest.approx(100.0 * adm.deployed / 12)
        assert m["extra_vms"] + m["pending_at_end"] == 24
        live = r.series.present_from < r.series.demand_kib.shape[1]
        assert live.sum() == 12 + adm.deployed
    assert ra.metrics["extra_vms"] > 0     # resizing alone frees room on a diurnal cloud


def test_no_reclaim_and_no_lending_admits_only_into_unbooked_memory(cloud_parts):
    fleet, pool, cloud, placement = cloud_parts
    adm, r = arm(cloud_parts, "none", policy="none")
    static = Admission(fleet, pool, placement, load_strategy("fixed", {"lend_ratio": "0"}),
                       LendParams(strategy="fixed"), PARAMS)
    rs = simulate(fleet, load_policy("default"), cloud, admission=static)
    assert adm.deployed == static.deployed          # both: only what nobody booked
    unbooked = placement.capacity_kib.sum() - fleet.nominal_kib.max(axis=1).sum()
    assert 0 < adm.deployed * pool.nominal_kib.min() <= unbooked
    assert r.metrics["host_overload_pct"] == 0.0 and rs.metrics["host_overload_pct"] == 0.0


def test_a_prime_inflates_demand_capped_at_nominal(cloud_parts):
    fleet = cloud_parts[0]
    a = page_cache_inflated(fleet)
    assert np.all(a.demand_kib <= a.nominal_kib + 1e-3)
    assert np.all(a.demand_kib >= fleet.demand_kib - 1e-3)
    assert a.demand_kib.sum() > 1.2 * fleet.demand_kib.sum()


def test_bench_lend_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "lend.json"
    res = CliRunner().invoke(cli, ["bench", "lend", "--days", "1.5", "--strategies",
                                   "none,fixed,allocpeak", "--policies", "default",
                                   "--max-ratio", "1", "--jobs", "1", "--json", str(out),
                                   "--plot-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "allocpeak/default" in res.output and "static/default" in res.output
    doc = json.loads(out.read_text())
    for variant in ("raw", "A'"):
        results = doc["workloads"][variant]["results"]
        for arm_name in ("none/default", "fixed/default", "allocpeak/default"):
            assert {"extra_vms_pct", "host_overload_pct",
                    "migrations_per_host_hour"} <= set(results[arm_name])
        assert "best" in doc["workloads"][variant]["targets"]["default"]
    assert (tmp_path / "lend-frontier.png").exists()


def test_bench_lend_rejects_an_unknown_strategy():
    res = CliRunner().invoke(cli, ["bench", "lend", "--strategies", "nope"])
    assert res.exit_code != 0 and "unknown lending strategy 'nope'" in res.output
