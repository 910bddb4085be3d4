"""The simulated cloud's migrations: duration, source charged until done, partial grow,
reaction; and the sync-surge Done-when on a small size."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from cvem.cli import cli
from cvem.policies.base import load_policy
from cvem.sim.admission import Admitted
from cvem.sim.engine import CloudConfig, prepare, simulate
from cvem.sim.placement import Placement
from cvem.sim.suite import run_suite
from cvem.sim.workloads import Workload, generate

GIB = 1024 * 1024
STEP_S = 10.0
SURGE = 30


def tight_cloud(bandwidth_kib_s=GIB):
    """Host 0 (12 GiB) holds VM 0 (8 GiB nominal, surges at SURGE from 1 to 7 GiB), VM 1
    (4 GiB, uses 3) and VM 2 (6 GiB, uses 4): 18 GiB of nominal memory on 12 GiB, and 14 GiB
    of demand after the surge. Host 1 (16 GiB) holds VM 3."""
    steps = 160
    nominal = np.array([8, 4, 6, 4], dtype=np.float32)[:, None] * GIB * np.ones((1, steps))
    demand = np.array([1, 3, 4, 1], dtype=np.float32)[:, None] * GIB * np.ones((1, steps))
    demand[0, SURGE:] = 7 * GIB
    w = Workload("tight", STEP_S, demand.astype(np.float32), nominal.astype(np.float32),
                 surge_starts=np.array([[0, SURGE]]))
    placement = Placement(host_of_vm=np.array([0, 0, 0, 1]),
                          capacity_kib=np.array([12.0 * GIB, 16.0 * GIB]),
                          physical_kib=16.0 * GIB, reserve_kib=0.0)
    adm = Admitted(w, placement, np.zeros(4, np.int64), np.array([4.0 * GIB, 4.0 * GIB]), {})
    return w, CloudConfig(migration_bandwidth_kib_s=bandwidth_kib_s), adm


def run(policy="default", bandwidth_kib_s=GIB, migrations=True):
    w, cloud, adm = tight_cloud(bandwidth_kib_s)
    cloud = CloudConfig(migration_bandwidth_kib_s=bandwidth_kib_s, migrations=migrations)
    return simulate(w, load_policy(policy), cloud, admitted=adm)


def test_a_host_that_must_shed_migrates_and_the_grow_follows():
    r = run()
    s = r.series
    assert s.migrations >= 1
    assert s.alloc_kib[0, -1] >= s.demand_kib[0, -1]        # the surging guest got its memory
    # the surge itself overloads host 0 until the move lands (nobody can know it earlier)
    overloaded = s.host_demand_kib[0] > 12 * GIB + 1024
    assert 0 < overloaded.sum() <= 3
    # the reaction includes the migration wait: more than one period, at most a few
    assert STEP_S < r.metrics["reaction_p95_s"] <= 3 * STEP_S


def test_without_migrations_the_guest_stays_short():
    r = run(migrations=False)
    assert r.series.migrations == 0
    assert r.series.alloc_kib[0, -1] < r.series.demand_kib[0, -1]


def test_the_partial_grow_is_granted_at_once_while_the_migration_runs():
    s = run().series
    t = SURGE + 1                                   # the first period the controller sees it
    assert s.alloc_kib[0, t] > s.alloc_kib[0, SURGE]  # part of the grow, before any move lands


def test_migration_duration_is_memory_over_bandwidth_and_the_source_stays_charged():
    slow = 10 * 1000 * 1000 / 1024.0                  # Neat's 10 MB/s, in KiB/s
    fast = run(bandwidth_kib_s=GIB)
    neat = run(bandwidth_kib_s=slow)
    assert neat.metrics["reaction_p95_s"] > fast.metrics["reaction_p95_s"]
    s = neat.series
    # during the move the VM is charged on both hosts: Σ host allocation > Σ VM allocation
    both = s.host_alloc_kib.sum(axis=0) - s.alloc_kib.sum(axis=0)
    charged_twice = np.flatnonzero(both > 1024)
    assert charged_twice.size > 0
    assert np.all(np.diff(charged_twice) == 1)      # one batch, charged until it lands
    # the largest VM of the batch lands last: its memory ÷ bandwidth is the batch's length
    largest_kib = both[charged_twice[-1]]
    expected_steps = int(np.ceil(largest_kib / slow / STEP_S))
    assert charged_twice.size == pytest.approx(expected_steps, abs=1)
    assert both[charged_twice[0]] > largest_kib     # the smaller one landed earlier


def test_the_vm_runs_on_its_target_when_the_migration_is_done():
    s = run().series
    w, _, adm = tight_cloud()
    on_host1 = s.host_demand_kib[1, -1]
    assert on_host1 > w.demand_kib[3, -1] + 0.5 * GIB   # a VM from host 0 now runs on host 1


def test_admission_is_the_same_for_every_policy_and_oversubscribes():
    w = generate("sync-surge", vms=16, days=0.25, step_s=STEP_S, seed=3)
    cloud = CloudConfig(admit=True)
    a1, a2 = prepare(w, cloud), prepare(w, cloud)
    assert a1.info["admitted_vms"] > 0
    assert a1.info["oversubscribed_hosts"] >= 1
    assert np.array_equal(a1.placement.host_of_vm, a2.placement.host_of_vm)
    assert np.array_equal(a1.deploy_step, a2.deploy_step)
    # an admitted VM has no demand and no nominal size before it is deployed
    late = np.flatnonzero(a1.deploy_step > 0)[0]
    assert a1.workload.nominal_kib[late, : a1.deploy_step[late]].max() == 0


@pytest.fixture(scope="module")
def sync_surge_results():
    w = generate("sync-surge", vms=24, days=0.5, step_s=STEP_S, seed=7)
    cloud = CloudConfig(admit=True)
    return prepare(w, cloud), run_suite(w, ["none", "cloudvamp2015", "default"], cloud)


def w_nominal_max_kib(results):
    return next(iter(results.values())).series.nominal_kib.max()


def test_sync_surge_done_when_small(sync_surge_results):
    adm, results = sync_surge_results
    assert adm.info["oversubscribed_hosts"] >= 1          # hosts hold > their memory
    m = results["default"].metrics
    assert m["host_overload_pct"] <= 0.1
    assert m["migrations_per_host_hour"] <= 0.5
    assert m["ping_pong"] == 0
    # peers.md §8.3: within 2 periods when the host has room; when a migration is required,
    # within the migration time plus one period (whole periods here). This small run has two
    # surges and one of them needs a VM (up to 16 GiB at 1 GiB/s) moved away first.
    largest_move_s = float(w_nominal_max_kib(results)) / CloudConfig().migration_bandwidth_kib_s
    bound_s = max(2 * STEP_S, np.ceil((largest_move_s + 2 * STEP_S) / STEP_S) * STEP_S)
    assert m["reaction_p95_s"] <= bound_s
    assert "cloudvamp2015" in results
    # `none` cannot hold the admitted VMs: its hosts are allocated beyond their memory
    assert results["none"].metrics["host_overcommit_pct"] > 0


def test_cli_sync_surge_writes_migration_metrics(tmp_path):
    out = tmp_path / "out.json"
    r = CliRunner().invoke(cli, ["simulate", "--scenario", "sync-surge", "--vms", "12",
                                 "--days", "0.1", "--policies", "none,default",
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["workload"]["admitted_vms"] >= 0
    for name in ("none", "default"):
        for key in ("migrations_per_host_hour", "ping_pong", "reaction_p95_s",
                    "host_overload_pct", "host_overcommit_pct"):
            assert key in doc["results"][name]
    r = CliRunner().invoke(cli, ["simulate", "--scenario", "sync-surge", "--vms", "12",
                                 "--days", "0.1", "--policies", "default", "--no-admit",
                                 "--no-migrations", "--detector", "local-regression"])
    assert r.exit_code == 0, r.output


@pytest.mark.slow
def test_sync_surge_done_when_at_full_size(tmp_path):
    """The issue's Done-when command, as written, with its thresholds."""
    out = tmp_path / "out.json"
    r = CliRunner().invoke(cli, ["simulate", "--scenario", "sync-surge", "--policies",
                                 "none,cloudvamp2015,default", "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    m = doc["results"]["default"]
    assert m["host_overload_pct"] <= 0.1
    assert m["migrations_per_host_hour"] <= 0.5
    assert m["ping_pong"] == 0
    assert m["reaction_p95_s"] <= 2 * doc["workload"]["step_s"]
    assert "cloudvamp2015" in doc["results"]
