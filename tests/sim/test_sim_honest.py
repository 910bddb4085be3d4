"""The simulator's honest parts: guests report what a real guest publishes (read through the
same path as the service), metrics skip the warm-up and count avoidable severe events, a VM
larger than a host gets a host of its size, and plots name and colour things one way."""
import os

import numpy as np
import pytest

from cvem.core.fleet import obs_from_snapshot
from cvem.core.guest_signals import read_guest_figures
from cvem.core.model import GuestReport, HostView, Snapshot, VmView
from cvem.core.policy import Policy
from cvem.sim.engine import CloudConfig, simulate
from cvem.sim.guests import guest_figures
from cvem.sim.metrics import RunSeries, compute_metrics
from cvem.sim.workloads import Workload

MIB = 1024
GIB = 1024 * MIB


# --------------------------------------------------------------------- guest reports

def test_a_short_guest_reports_used_capped_at_its_allocation_and_pressure():
    g = guest_figures(np.array([6.0, 2.0]) * GIB, np.array([4.0, 4.0]) * GIB, np.zeros(2), 300.0)
    assert g.used_kib.tolist() == [4 * GIB, 2 * GIB]
    assert g.swap_used_kib.tolist() == [2 * GIB, 0]
    assert g.psi_full_avg10[0] == pytest.approx(100 / 3) and g.psi_full_avg10[1] == 0
    assert g.swap_in_kib_s[0] > 0 and g.swap_in_kib_s[1] == 0


def test_a_guest_without_swap_never_reveals_what_it_lacks():
    g = guest_figures(np.array([6.0]) * GIB, np.array([4.0]) * GIB, np.zeros(1), 300.0,
                      swap=False)
    used, ok, pressure, deficit = read_guest_figures(
        np.ones(1, bool), g.used_kib, g.swap_used_kib, g.swap_in_kib_s, g.psi_full_avg10)
    assert used[0] == 4 * GIB and ok[0] and pressure[0]
    assert deficit[0] == 0          # PSI says "short", nothing says by how much


def test_a_small_shortfall_is_invisible_below_the_pressure_thresholds():
    # 8 MiB short of 4 GiB over 300 s: PSI 0.2 %, swap-in 27 KiB/s, both under the thresholds
    g = guest_figures(np.array([4.0 * GIB]), np.array([4.0 * GIB - 8 * MIB]), np.zeros(1), 300.0)
    used, ok, pressure, deficit = read_guest_figures(
        np.ones(1, bool), g.used_kib, g.swap_used_kib, g.swap_in_kib_s, g.psi_full_avg10)
    assert not pressure[0] and deficit[0] == 0 and used[0] == 4 * GIB - 8 * MIB


def test_the_service_reads_the_same_figures_the_same_way():
    g = guest_figures(np.array([6.0, 3.0]) * GIB, np.array([4.0, 4.0]) * GIB,
                      np.array([1.0 * GIB, 1.0 * GIB]), 300.0)
    sim = read_guest_figures(np.ones(2, bool), g.used_kib, g.swap_used_kib, g.swap_in_kib_s,
                             g.psi_full_avg10)
    now = 1000.0
    vms = tuple(VmView(vm_id=i, host_id=0, nominal_kib=8 * GIB, allocated_kib=4 * GIB,
                       guest=GuestReport(used_kib=int(g.used_kib[i]), total_kib=4 * GIB,
                                         sampled_at_s=now, swap_used_kib=int(g.swap_used_kib[i]),
                                         swap_in_kib_s=float(g.swap_in_kib_s[i]),
                                         psi_full_avg10=float(g.psi_full_avg10[i])))
                for i in range(2))
    host = HostView(host_id=0, name="h", physical_kib=64 * GIB, max_mem_kib=62 * GIB,
                    mem_usage_kib=8 * GIB)
    obs, _ = obs_from_snapshot(Snapshot(now_s=now, hosts=(host,), vms=vms))
    for a, b in zip(sim, (obs.used_kib, obs.report_ok, obs.pressure, obs.deficit_kib)):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float))


class _Spy(Policy):
    """Holds every VM at 1 GiB and records what it is shown."""
    name = "spy"

    class Params:
        pass

    seen = []

    def __init__(self, params=None):
        self.params = None

    def propose(self, obs, state):
        _Spy.seen.append((obs.used_kib.copy(), obs.allocated_kib.copy(), obs.deficit_kib.copy()))
        return np.full(obs.size, 1.0 * GIB), state

    def guard_params(self, overrides=None):
        from cvem.core.guards import GuardParams
        return GuardParams(floor_kib=0, min_size_kib=0, pressure_grow_ratio=0.0,
                           min_step_kib=0, min_step_ratio=0.0, cooldown_s=0.0,
                           max_shrink_ratio=1.0)


def _workload(demand_gib, nominal_gib=8.0, **info):
    demand = np.asarray(demand_gib, dtype=np.float32) * GIB
    if demand.ndim == 1:
        demand = demand[None, :]
    nominal = np.full_like(demand, nominal_gib * GIB)
    return Workload("t", 300.0, demand, nominal, [str(i) for i in range(demand.shape[0])],
                    info=dict(info))


def test_in_the_engine_a_policy_never_sees_used_above_the_allocation():
    _Spy.seen = []
    w = _workload([1, 1, 3, 3, 1, 1])
    simulate(w, _Spy(), CloudConfig(migrations=False, guest_swap=False))
    for used, alloc, deficit in _Spy.seen[1:]:
        assert np.all(~np.isfinite(used) | (used <= alloc))
        assert np.all(deficit == 0)


# --------------------------------------------------------------------------- metrics

def _series(demand, alloc, warmup_steps=0, present_from=None):
    demand = np.asarray(demand, float) * GIB
    alloc = np.asarray(alloc, float) * GIB
    return RunSeries(step_s=300.0, demand_kib=demand, nominal_kib=np.full_like(demand, 8 * GIB),
                     alloc_kib=alloc, host_of_vm=np.zeros(demand.shape[0], np.int64),
                     capacity_kib=np.array([64.0 * GIB]), warmup_steps=warmup_steps,
                     present_from=present_from)


def test_warm_up_is_reported_apart_and_not_scored():
    s = _series([[4, 4, 1, 1]], [[2, 8, 2, 2]], warmup_steps=2)
    m = compute_metrics(s)
    assert m["severe_events"] == 0 and m["shortfall_interval_pct"] == 0
    assert m["reclaimed_pct"] == pytest.approx(75.0)
    assert m["warmup_severe_events"] == 1 and m["warmup_shortfall_interval_pct"] == 50.0


def test_a_vm_not_present_yet_is_not_scored():
    s = _series([[0, 0, 1, 1]], [[8, 8, 2, 2]], present_from=np.array([2]))
    assert compute_metrics(s)["reclaimed_pct"] == pytest.approx(75.0)


def test_avoidable_severe_events_are_those_at_a_level_already_shown():
    # 4 GiB first shown at t=1 (not short); starved at 4 GiB at t=3 (avoidable);
    # starved at 6 GiB, a new maximum, at t=5 (not avoidable)
    s = _series([[1, 4, 1, 4, 1, 6]], [[8, 8, 2, 2, 2, 2]])
    m = compute_metrics(s)
    assert m["severe_events"] == 2 and m["avoidable_severe"] == 1


# ------------------------------------------------------------------------- placement

def test_a_vm_larger_than_the_host_runs_on_a_host_of_its_size():
    w = _workload([[1, 1, 1, 1], [100, 200, 300, 100]], nominal_gib=511.5)
    w = Workload("t", 300.0, w.demand_kib, np.array([[8 * GIB] * 4, [511.5 * GIB] * 4],
                                                     np.float32), ["1", "2"])
    r = simulate(w, _Spy(), CloudConfig(host_physical_kib=130 * GIB, migrations=False))
    assert r.series.capacity_kib.tolist() == [128 * GIB, 511.5 * GIB]
    assert r.metrics["host_overload_pct"] == 0


# ---------------------------------------------------------------------------- plots

def test_plots_give_each_policy_one_colour_and_name_vm_files_by_id(tmp_path):
    pytest.importorskip("matplotlib")
    from cvem.bench.policies import _plots
    from cvem.sim.plots import DEMAND_COLOUR, POLICY_COLOURS, policy_colour
    from cvem.sim.suite import run_suite
    colours = list(POLICY_COLOURS.values()) + [DEMAND_COLOUR]
    assert len(set(colours)) == len(colours)
    assert policy_colour("oracle") != DEMAND_COLOUR and policy_colour("oracle") != "crimson"
    assert policy_colour("x", ["x", "y"]) != policy_colour("y", ["x", "y"])
    w = Workload("traces:t", 300.0, np.array([[1, 1, 1], [1, 3, 1]], np.float32) * GIB,
                 np.full((2, 3), 4 * GIB, np.float32), ["17", "42"])
    paths = _plots(w, run_suite(w, ["none", "vpa"]), str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["traces-t-overview.png",
                                                    "traces-t-vm-42.png"]
    assert all(os.path.getsize(p) > 1000 for p in paths)
