"""One scenario through the oned double with pyone: a host that must shed a VM → the plan
migrates one (live, enforced) → the VM runs on the target → the starving guest grows.
Plus the executor's handling of oned's recorded refusals."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("pyone")

from cvem.adapters.one import OneCloud  # noqa: E402
from cvem.config import ServiceParams  # noqa: E402
from cvem.core.decide import Decider, decide_with_migrations  # noqa: E402
from cvem.core.fleet import FleetHistory  # noqa: E402
from cvem.core.migration import InFlight, MigrationState, load_migration_config  # noqa: E402
from cvem.core.model import (KIB_PER_MIB, GuestReport, HostView, Migrate, Resize,  # noqa: E402
                             Snapshot, VmView)
from cvem.policies.base import load_policy  # noqa: E402
from cvem.service.applier import Applier, Throttle  # noqa: E402
from cvem.service.migrations import apply_migrations, execute_migration, poll_migration  # noqa: E402
from cvem.service.state import StateStore  # noqa: E402
from tests.doubles.oned import GIB, OnedDouble  # noqa: E402


@pytest.fixture
def oned():
    with OnedDouble(resize_settle_s=0.02, migrate_settle_s=0.1) as double:
        yield double


def snapshot(cloud, now_s, guests):
    """A Snapshot from oned's pools (what the front-end's observe step builds), with the
    guest figures given here (``guests``: vm_id -> (used_kib, swap_in_kib_s))."""
    read = cloud.read_cloud()
    hosts = tuple(HostView(host_id=h.host_id, name=h.name, physical_kib=h.total_mem_kib,
                           max_mem_kib=h.max_mem_kib, mem_usage_kib=h.mem_usage_kib,
                           cluster_id=h.cluster_id)
                  for h in read.hosts)
    vms = []
    for v in read.vms:
        used, swap_in = guests[v.vm_id]
        vms.append(VmView(vm_id=v.vm_id, host_id=v.host_id,
                          nominal_kib=(v.memory_max_mib or v.memory_mib) * KIB_PER_MIB,
                          allocated_kib=v.memory_mib * KIB_PER_MIB,
                          guest=GuestReport(used_kib=used, total_kib=v.memory_mib * KIB_PER_MIB,
                                            sampled_at_s=now_s, swap_in_kib_s=swap_in,
                                            swap_used_kib=2 * GIB if swap_in else 0)))
    return Snapshot(now_s=now_s, hosts=hosts, vms=tuple(vms)), read


def test_a_full_host_sheds_a_vm_by_live_migration_and_the_guest_then_grows(oned, tmp_path):
    a = oned.add_host("kvm-a", total_mem_kib=16 * GIB)
    b = oned.add_host("kvm-b", total_mem_kib=16 * GIB)
    big = oned.add_vm("big", a, 8192, 14336)       # surges: uses 9 GiB, swapping
    small = oned.add_vm("small", a, 3072, 4096)
    mid = oned.add_vm("mid", a, 4096, 4096)
    oned.add_vm("other", b, 2048, 4096)
    cloud = OneCloud(oned.endpoint, oned.session, timeout_s=5)
    # small and mid are steady (the policy holds them: a VM resized this cycle is not moved)
    guests = {big: (9 * GIB, 4096.0), small: (int(2.75 * GIB), 0.0), mid: (int(3.8 * GIB), 0.0),
              3: (GIB, 0.0)}
    decider = Decider(load_policy("default"))
    config = load_migration_config()
    now = 1_700_000_000.0
    snap, _ = snapshot(cloud, now, guests)
    plan, history, state = decide_with_migrations(snap, FleetHistory(), decider,
                                                  MigrationState(), config)
    resizes = [x for x in plan.actions if isinstance(x, Resize)]
    moves = [x for x in plan.actions if isinstance(x, Migrate)]
    # a partial grow now (the 1 GiB host A has), and a move for the rest
    assert any(r.vm_id == big and r.is_grow for r in resizes)
    assert moves and all(m.from_host_id == a and m.to_host_id == b for m in moves)
    assert big not in [m.vm_id for m in moves]           # the starving guest is not frozen
    assert plan.actions.index(moves[0]) > max(plan.actions.index(r) for r in resizes)
    assert [m.vm_id for m in state.in_flight] == [m.vm_id for m in moves]

    # the applier runs the resizes, then starts the migrations (live, enforced)
    store = StateStore(str(tmp_path / "state.db"))
    params = ServiceParams(state_db=str(tmp_path / "state.db"), max_actions_per_s=1000)
    oned.migrate_settle_s = 3.0   # long enough to see MIGRATE on a loaded machine
    result = Applier(cloud, store, params, throttle=Throttle(0)).apply(plan)
    assert [o.status for o in result.migrations] == ["issued"] * len(moves)
    migrate_calls = [c for c in oned.calls if c[0] == "one.vm.migrate"]
    assert [tuple(c[1][1:]) for c in migrate_calls] == [(b, True, True, -1, 0)] * len(moves)

    # asynchronous: right after the call the VM is MIGRATE, still tracked in flight
    moved = moves[0].vm_id
    assert cloud.vm_info(moved).lcm_state == 4
    record = state.in_flight[0]
    assert poll_migration(cloud, record, now + 1, 1800) == "moving"
    oned.wait_until(lambda: all(v.lcm == 3 for v in oned.vms.values()))
    assert poll_migration(cloud, record, now + 2, 1800) == "done"
    assert cloud.vm_info(moved).host_id == b

    # next cycle: the migration settles and the starving guest gets the room it freed
    snap, read = snapshot(cloud, now + 10, guests)
    plan2, _, state2 = decide_with_migrations(snap, history, decider, state, config)
    assert state2.in_flight == ()
    grows = [x for x in plan2.actions if isinstance(x, Resize) and x.vm_id == big and x.is_grow]
    assert grows and grows[0].to_kib >= 9 * GIB
    assert not [x for x in plan2.actions if isinstance(x, Migrate)]


def test_oned_refusals_are_classified_and_the_in_flight_record_dropped(oned):
    a = oned.add_host("kvm-a", total_mem_kib=16 * GIB)
    b = oned.add_host("kvm-b", total_mem_kib=4 * GIB)
    vm = oned.add_vm("v", a, 8192)
    cloud = OneCloud(oned.endpoint, oned.session, timeout_s=5)
    state = MigrationState(in_flight=(InFlight(vm, a, b, 8 * GIB, 0.0, "owed-grow"),))
    # no room on the target with enforce: failed, and the record is forgotten
    plan_like = type("P", (), {"actions": (Migrate(vm, a, b, "owed-grow"),)})()
    state2, outcomes = apply_migrations(cloud, plan_like, state)
    assert outcomes[0].status == "failed" and "does not fit" in outcomes[0].message
    assert state2.in_flight == ()
    # unknown host
    out = execute_migration(cloud, Migrate(vm, a, 77, "owed-grow"))
    assert out.status == "failed" and "Error getting host" in out.message
    # planned from a stale view: the VM is not on the planned source any more
    out = execute_migration(cloud, Migrate(vm, b, a, "owed-grow"))
    assert out.status == "skipped"
    # already migrating: a second migrate is skipped (oned: not available for state MIGRATE)
    c = oned.add_host("kvm-c", total_mem_kib=32 * GIB)
    assert execute_migration(cloud, Migrate(vm, a, c, "owed-grow")).status == "issued"
    out = execute_migration(cloud, Migrate(vm, a, c, "owed-grow"))
    assert out.status == "skipped"
