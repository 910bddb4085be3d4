"""FleetHistory alignment between cycles, and the snapshot → columns conversion."""

import numpy as np
import pytest

from cvem.core.fleet import DEFAULT_MAX_REPORT_AGE_S, FleetHistory, obs_from_snapshot

from tests.core.builders import GIB, make_guest, make_host, make_snapshot, make_vm

INITIAL = {"p.level": np.full(1, np.nan), "p.ring": np.zeros((1, 3)), "guard.t": np.full(1, -1.0)}


def history(ids, level, ring=None):
    ids = np.array(ids, dtype=np.int64)
    ring = np.arange(3 * len(ids), dtype=float).reshape(-1, 3) if ring is None else ring
    return FleetHistory(vm_ids=ids, columns={"p.level": np.array(level, dtype=float),
                                             "p.ring": ring, "guard.t": np.zeros(len(ids))})


def test_a_first_cycle_gives_every_vm_the_initial_state():
    h = FleetHistory().aligned(np.array([5, 6]), INITIAL)
    assert h.vm_ids.tolist() == [5, 6]
    assert np.isnan(h.columns["p.level"]).all()
    assert h.columns["p.ring"].shape == (2, 3)
    assert h.columns["guard.t"].tolist() == [-1.0, -1.0]


def test_new_vms_get_the_initial_state_and_known_ones_keep_theirs():
    old = history([1, 2], [10.0, 20.0])
    h = old.aligned(np.array([1, 2, 3]), INITIAL)
    assert h.columns["p.level"][:2].tolist() == [10.0, 20.0]
    assert np.isnan(h.columns["p.level"][2])
    assert h.columns["p.ring"][2].tolist() == [0.0, 0.0, 0.0]
    assert h.columns["guard.t"].tolist() == [0.0, 0.0, -1.0]


def test_departed_vms_are_dropped():
    h = history([1, 2, 3], [10.0, 20.0, 30.0]).aligned(np.array([3, 1]), INITIAL)
    assert h.vm_ids.tolist() == [3, 1]
    assert h.columns["p.level"].tolist() == [30.0, 10.0]


def test_a_new_order_keeps_each_vms_own_state():
    old = history([7, 3, 9], [70.0, 30.0, 90.0])
    h = old.aligned(np.array([9, 7, 3]), INITIAL)
    assert h.columns["p.level"].tolist() == [90.0, 70.0, 30.0]
    assert h.columns["p.ring"].tolist() == [old.columns["p.ring"][2].tolist(),
                                            old.columns["p.ring"][0].tolist(),
                                            old.columns["p.ring"][1].tolist()]


def test_everything_leaves_then_comes_back_fresh():
    h = history([1], [10.0]).aligned(np.array([], dtype=np.int64), INITIAL)
    assert h.vm_ids.size == 0 and h.columns["p.level"].shape == (0,)
    h = h.aligned(np.array([1]), INITIAL)
    assert np.isnan(h.columns["p.level"][0])


def test_a_state_whose_shape_changed_restarts_from_initial():
    # e.g. max-window's slots parameter changed between runs
    old = history([1], [10.0], ring=np.ones((1, 5)))
    h = old.aligned(np.array([1, 2]), INITIAL)
    assert h.columns["p.ring"].tolist() == [[0.0] * 3, [0.0] * 3]
    assert h.columns["p.level"][0] == 10.0


def test_the_same_vms_in_the_same_order_reuse_the_history():
    old = history([1, 2], [10.0, 20.0])
    assert old.aligned(np.array([1, 2]), INITIAL) is old


def test_aligning_never_mutates_the_old_history():
    old = history([1, 2], [10.0, 20.0])
    h = old.aligned(np.array([2, 1, 4]), INITIAL)
    h.columns["p.level"][:] = -5
    assert old.columns["p.level"].tolist() == [10.0, 20.0]


def test_select_strips_the_prefix():
    h = history([1], [10.0])
    assert set(h.select("p")) == {"level", "ring"}
    assert set(h.with_columns(**{"p.new": np.zeros(1)}).select("p")) == {"level", "ring", "new"}


# ------------------------------------------------------------------ obs_from_snapshot

def test_snapshot_columns():
    vms = [make_vm(10, host=1, nominal=8 * GIB, alloc=4 * GIB, guest=make_guest(2 * GIB)),
           make_vm(11, host=2, nominal=4 * GIB, alloc=4 * GIB, guest=None)]
    obs, hosts = obs_from_snapshot(make_snapshot(vms))
    assert obs.vm_ids.tolist() == [10, 11]
    assert hosts.host_ids.tolist() == [1, 2]
    assert obs.host_index.tolist() == [0, 1]
    assert obs.allocated_kib.tolist() == [4 * GIB, 4 * GIB]
    assert obs.report_ok.tolist() == [True, False]
    assert obs.used_kib[0] == 2 * GIB and np.isnan(obs.used_kib[1])
    assert hosts.allocated_kib.tolist() == [4 * GIB, 4 * GIB]


def test_vms_on_unknown_hosts_are_left_out():
    vms = [make_vm(1, host=0), make_vm(2, host=99)]
    obs, _ = obs_from_snapshot(make_snapshot(vms, hosts=[make_host(0, vms=vms)]))
    assert obs.vm_ids.tolist() == [1]


@pytest.mark.parametrize("guest, problem, ok", [
    (make_guest(age_s=10.0), None, True),
    (make_guest(age_s=DEFAULT_MAX_REPORT_AGE_S), None, True),
    (make_guest(age_s=DEFAULT_MAX_REPORT_AGE_S + 1), None, False),   # stale
    (make_guest(age_s=float("inf")), None, False),                   # never sampled
    (make_guest(age_s=float("nan")), None, False),                   # unknown time
    (make_guest(), "MEM_USED_KIB is not a number", False),           # rejected by the adapter
    (make_guest(used=-5), None, False),                              # malformed
    (None, "no OneGate report", False),
])
def test_only_valid_fresh_reports_count(guest, problem, ok):
    vm = make_vm(1, guest=guest, report_problem=problem)
    obs, _ = obs_from_snapshot(make_snapshot([vm]))
    assert obs.report_ok.tolist() == [ok]
    assert np.isfinite(obs.used_kib[0]) == ok


def test_report_age_limit_is_configurable():
    vm = make_vm(1, guest=make_guest(age_s=600))
    obs, _ = obs_from_snapshot(make_snapshot([vm]), max_report_age_s=900)
    assert obs.report_ok.tolist() == [True]


@pytest.mark.parametrize("guest, pressure, deficit", [
    (make_guest(swap_in=1000.0, swap_used=300 * 1024), True, 300 * 1024),
    (make_guest(psi_full=5.0, swap_used=0), True, 0),
    (make_guest(swap_in=10.0, psi_full=0.5, swap_used=300 * 1024), False, 0),
])
def test_pressure_from_swap_in_or_psi(guest, pressure, deficit):
    obs, _ = obs_from_snapshot(make_snapshot([make_vm(1, guest=guest)]))
    assert obs.pressure.tolist() == [pressure]
    assert obs.deficit_kib.tolist() == [deficit]


def test_host_room_from_physical_free_minus_reserve_and_disabled_hosts():
    vms = [make_vm(1, host=0, alloc=4 * GIB), make_vm(2, host=1)]
    hosts = [make_host(0, capacity=32 * GIB, physical_free=10 * GIB, reserve=2 * GIB, vms=vms),
             make_host(1, vms=vms)]
    hosts[1] = hosts[1].__class__(**{**hosts[1].__dict__, "enabled": False})
    _, cols = obs_from_snapshot(make_snapshot(vms, hosts=hosts))
    assert cols.physical_room_kib[0] == 8 * GIB
    assert cols.physical_room_kib[1] > 10 ** 15   # unknown: never the limiting figure
    assert cols.capacity_kib.tolist() == [32 * GIB, 0]
