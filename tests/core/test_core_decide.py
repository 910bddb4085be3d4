"""decide(): one cycle over a per-object Snapshot, with a const stub policy."""

from dataclasses import dataclass

import numpy as np
import pytest

from cvem.core.decide import Decider, decide
from cvem.core.fleet import FleetHistory
from cvem.core.model import NeedsRoom, Resize
from cvem.core.planner import PHASE_GROW_AFTER_SHRINK, PHASE_GROW_NOW, PHASE_SHRINK
from cvem.policies.base import Policy

from tests.core.builders import (GIB, MIB, NOW, guards, make_guest, make_host, make_snapshot,
                                 make_vm)


class ConstPolicy(Policy):
    """Proposes the same size for every VM (VPA's NewConstMemoryEstimator)."""

    name = "const"

    @dataclass(frozen=True)
    class Params:
        size_kib: int = 2 * GIB

    def propose(self, obs, state):
        return np.full(obs.size, float(self.params.size_kib)), state


def decider(**guard_overrides):
    base = dict(floor_kib=256 * MIB, pressure_grow_ratio=0.1, max_shrink_ratio=0.5)
    base.update(guard_overrides)
    return Decider(ConstPolicy(), guards(**base))


def scene(capacity=13 * GIB):
    starving = make_guest(used=1.9 * GIB, swap_in=4096.0)
    vms = [make_vm(1, alloc=2 * GIB, guest=starving),
           make_vm(2, alloc=6 * GIB, guest=make_guest(used=1 * GIB)),
           make_vm(3, alloc=4 * GIB, guest=None, report_problem="no OneGate report"),
           make_vm(4, host=1, alloc=2 * GIB, guest=make_guest(used=1.5 * GIB))]
    hosts = [make_host(0, capacity=capacity, vms=vms), make_host(1, vms=vms)]
    return make_snapshot(vms, hosts)


def test_actions_in_phase_order_with_reasons_and_room_accounting():
    plan, history = decide(scene(), FleetHistory(), decider())
    assert [(a.vm_id, a.action, a.phase, a.reason) for a in plan.actions] == [
        (1, "grow", PHASE_GROW_NOW, "pressure"),            # urgent, fits in the 1 GiB free
        (2, "shrink", PHASE_SHRINK, "gradual-shrink"),      # 6 → 3 GiB, not 2 at once
        (3, "grow", PHASE_GROW_AFTER_SHRINK, "no-report"),  # back toward nominal, partly
    ]
    grow1, shrink2, grow3 = plan.actions
    assert all(isinstance(a, Resize) for a in plan.actions)
    # pressure: + 10 % of 8 GiB = 819.2 MiB, rounded up to whole MiB
    assert (grow1.from_kib, grow1.to_kib) == (2 * GIB, 2 * GIB + 820 * MIB)
    assert (shrink2.from_kib, shrink2.to_kib) == (6 * GIB, 3 * GIB)
    # room 1 GiB + 3 GiB released − the pressure grow: what is left goes to VM 3
    granted3 = 1 * GIB + 3 * GIB - (grow1.to_kib - grow1.from_kib)
    assert (grow3.from_kib, grow3.to_kib) == (4 * GIB, 4 * GIB + granted3)
    assert plan.needs_room == (NeedsRoom(vm_id=3, host_id=0, missing_kib=4 * GIB - granted3,
                                         urgent=False, reason="no-report"),)
    # VM 4 (host 1) holds: 2 GiB proposed, floor 1.75 GiB, already there
    assert 4 not in [a.vm_id for a in plan.actions]
    assert history.vm_ids.tolist() == [1, 2, 3, 4]
    changed = history.columns["guard.last_change_s"]
    assert changed[:3].tolist() == [NOW] * 3 and changed[3] == -np.inf


def test_a_host_with_room_grows_before_any_shrink_and_needs_nothing():
    plan, _ = decide(scene(capacity=64 * GIB), FleetHistory(), decider())
    phases = {a.vm_id: a.phase for a in plan.actions}
    assert phases == {1: PHASE_GROW_NOW, 2: PHASE_SHRINK, 3: PHASE_GROW_NOW}
    assert plan.needs_room == ()
    assert [a.vm_id for a in plan.actions] == [1, 3, 2]


def test_a_full_host_still_shrinks_and_reports_every_grow_as_needing_room():
    snap = scene(capacity=12 * GIB)   # no free room at all
    plan, _ = decide(snap, FleetHistory(), decider(max_shrink_ratio=0.0))   # no shrink allowed
    assert plan.actions == ()
    needs = {n.vm_id: n for n in plan.needs_room}
    assert set(needs) == {1, 3}
    assert needs[1].urgent and needs[1].reason == "pressure"
    assert needs[3].missing_kib == 4 * GIB


def test_a_stale_report_is_never_shrunk():
    stale = make_guest(used=1 * GIB, age_s=3600)
    vms = [make_vm(1, alloc=6 * GIB, guest=stale)]
    plan, _ = decide(make_snapshot(vms), FleetHistory(), decider())
    assert [(a.action, a.to_kib, a.reason) for a in plan.actions] == [("grow", 8 * GIB, "no-report")]
    # the same report, fresh, is shrunk
    fresh = make_guest(used=1 * GIB, age_s=5)
    plan, _ = decide(make_snapshot([make_vm(1, alloc=6 * GIB, guest=fresh)]), FleetHistory(),
                     decider())
    assert [a.action for a in plan.actions] == ["shrink"]


def test_cooldown_carries_over_in_the_returned_history():
    d = decider(cooldown_s=60.0, max_shrink_ratio=0.25)
    vms = [make_vm(1, alloc=8 * GIB, guest=make_guest(used=1 * GIB))]
    plan, history = decide(make_snapshot(vms), FleetHistory(), d)
    assert [a.to_kib for a in plan.actions] == [6 * GIB]
    later = NOW + 30
    vms = [make_vm(1, alloc=6 * GIB, guest=make_guest(used=1 * GIB, now=later))]
    plan, history = decide(make_snapshot(vms, now=later), history, d)
    assert plan.actions == ()                      # still cooling down
    later = NOW + 61
    vms = [make_vm(1, alloc=6 * GIB, guest=make_guest(used=1 * GIB, now=later))]
    plan, _ = decide(make_snapshot(vms, now=later), history, d)
    assert [a.to_kib for a in plan.actions] == [4.5 * GIB]


@pytest.mark.parametrize("policy_name", ["none", "cloudvamp2015", "vpa", "max-window", "default"])
def test_every_real_policy_runs_on_a_snapshot(policy_name):
    from cvem.policies import load_policy
    plan, history = decide(scene(capacity=64 * GIB), FleetHistory(), Decider(load_policy(policy_name)))
    for a in plan.actions:
        assert a.to_kib <= 8 * GIB
        if a.vm_id in (1, 3):                       # starving / no report: never shrunk
            assert a.is_grow
    assert history.vm_ids.tolist() == [1, 2, 3, 4]


def test_guest_that_deflated_its_balloon_grows_at_once_to_where_it_went():
    """The policy wants 2 GiB and the guest uses little, but it took 1.5 GiB back from its
    balloon (deflate-on-OOM) since cvem set 3 GiB: grow now, at least to 4.5 GiB."""
    from dataclasses import replace
    vm = replace(make_vm(1, alloc=3 * GIB, guest=make_guest(used=1 * GIB)),
                 self_deflated_kib=int(1.5 * GIB))
    plan, _ = decide(make_snapshot([vm]), FleetHistory(), decider())
    [grow] = plan.actions
    assert grow.is_grow and grow.reason == "pressure" and grow.to_kib >= int(4.5 * GIB)
    # the same VM without the signal is shrunk by the policy
    plan, _ = decide(make_snapshot([replace(vm, self_deflated_kib=0)]), FleetHistory(), decider())
    assert plan.actions[0].action == "shrink"
