"""The applier against the oned double: one test per error recorded from a real oned 7.4,
the re-check before acting, rate limits, and the one-line action log."""
import logging
import time

import pytest

from cvem.adapters.one import OneCloud
from cvem.config import ServiceParams
from cvem.core.model import Plan, Resize
from cvem.ports import AuthFailed, Unreachable
from cvem.service.applier import Applier, Throttle
from cvem.service.state import StateStore
from fe_support import GIB

MIB = 1024


@pytest.fixture
def setup(oned, tmp_path):
    host = oned.add_host("kvm-1", total_mem_kib=8 * GIB)
    vm = oned.add_vm("web", host, memory_mib=2048, memory_max_mib=4096)
    store = StateStore(str(tmp_path / "state.db"))
    cloud = OneCloud(oned.endpoint, oned.session, timeout_s=5)
    applier = Applier(cloud, store, ServiceParams(max_actions_per_s=1000))
    return oned, host, vm, store, applier


def resize(vm, host, from_mib, to_mib, reason="policy"):
    return Resize(vm_id=vm, host_id=host, from_kib=from_mib * MIB, to_kib=to_mib * MIB,
                  reason=reason, phase=1 if to_mib < from_mib else 0)


def test_shrink_applied_logged_once_and_session_never_logged(setup, caplog):
    oned, host, vm, store, applier = setup
    with caplog.at_level(logging.INFO):
        result = applier.apply(Plan(actions=(resize(vm, host, 2048, 1024),)))
    assert [a.vm_id for a in result.applied] == [vm]
    assert oned.memory_mib(vm) == 1024
    lines = [r.getMessage() for r in caplog.records if "action=shrink" in r.getMessage()]
    assert lines == ["vm=%d host=%d action=shrink from_kib=2097152 to_kib=1048576 "
                     "reason=policy" % (vm, host)]
    assert oned.session.split(":")[1] not in caplog.text
    resize_calls = oned.calls_of("one.vm.resize")
    assert resize_calls[-1][1] == (vm, "MEMORY=1024", False)  # enforce only on grows
    assert store.load_inflight()[vm].status == "issued"


def test_grow_uses_enforce(setup):
    oned, host, vm, store, applier = setup
    applier.apply(Plan(actions=(resize(vm, host, 2048, 3072),)))
    assert oned.calls_of("one.vm.resize")[-1][1] == (vm, "MEMORY=3072", True)


def test_hotplug_resize_state_is_skipped_and_retried_next_cycle(setup):
    oned, host, vm, store, applier = setup
    oned.fail_next("one.vm.resize", "Cannot resize a VM in state HOTPLUG_RESIZE", 0x800)
    result = applier.apply(Plan(actions=(resize(vm, host, 2048, 1024),)))
    assert result.skipped and "HOTPLUG_RESIZE" in result.skipped[0][1]
    assert not store.load_inflight() and oned.memory_mib(vm) == 2048
    result = applier.apply(Plan(actions=(resize(vm, host, 2048, 1024),)))  # next cycle
    assert result.applied and oned.memory_mib(vm) == 1024


def test_vm_in_hotplug_resize_is_skipped_by_the_recheck(setup):
    oned, host, vm, store, applier = setup
    oned.set_lcm_state(vm, 66)
    result = applier.apply(Plan(actions=(resize(vm, host, 2048, 1024),)))
    assert result.skipped and not oned.calls_of("one.vm.resize")


def test_not_enough_memory_turns_the_grow_into_needs_room(setup, caplog):
    oned, host, vm, store, applier = setup
    oned.add_vm("hog", host, memory_mib=6000)
    with caplog.at_level(logging.WARNING):
        result = applier.apply(Plan(actions=(resize(vm, host, 2048, 4096, "pressure"),)))
    assert not result.applied and len(result.needs_room) == 1
    need = result.needs_room[0]
    assert (need.vm_id, need.missing_kib, need.urgent) == (vm, 2048 * MIB, True)
    assert "Not enough memory: 4194304/" in need.reason
    assert "needs room" in caplog.text
    assert oned.memory_mib(vm) == 2048 and not store.load_inflight()


def test_unknown_state_is_left_alone(setup, caplog):
    oned, host, vm, store, applier = setup
    oned.set_lcm_state(vm, 16)
    result = applier.apply(Plan(actions=(resize(vm, host, 2048, 1024),)))
    assert result.skipped and "LCM 16" in result.skipped[0][1]
    # a VM that turns UNKNOWN between the check and the call: oned's own refusal
    oned.set_lcm_state(vm, 3)
    oned.fail_next("one.vm.resize", "Cannot resize a VM in state UNKNOWN", 0x800)
    with caplog.at_level(logging.WARNING):
        result = applier.apply(Plan(actions=(resize(vm, host, 2048, 1024),)))
    assert result.failed == [(resize(vm, host, 2048, 1024),
                              "[one.vm.resize] Cannot resize a VM in state UNKNOWN")]
    assert "Cannot resize a VM in state UNKNOWN" in caplog.text


def test_missing_vm_is_skipped(setup):
    oned, host, vm, store, applier = setup
    result = applier.apply(Plan(actions=(resize(9999, host, 2048, 1024),)))
    # the re-check reads the VM alone from the pool (one history record), not one.vm.info
    assert result.skipped[0][1].startswith("VM gone: [one.vmpool.infoextended] virtual "
                                           "machine [9999] not found")
    # a VM really gone keeps answering so (a single such reply is oned's database-locked
    # form, retried: tests/frontend/test_oned_busy.py)
    oned.fail_next("one.vm.resize", "Error getting virtual machine [%d]." % vm, 0x400, count=4)
    result = applier.apply(Plan(actions=(resize(vm, host, 2048, 1024),)))
    assert result.skipped and not store.load_inflight()


def test_driver_without_live_resize_fails_cleanly(oned, tmp_path):
    host = oned.add_host("dummy-h1", vm_mad="dummy")
    vm = oned.add_vm(host_id=host, memory_mib=1024, memory_max_mib=1024)
    applier = Applier(OneCloud(oned.endpoint, oned.session), StateStore(str(tmp_path / "s.db")),
                      ServiceParams(max_actions_per_s=1000))
    result = applier.apply(Plan(actions=(resize(vm, host, 1024, 512),)))
    assert result.failed[0][1] == "[one.vm.resize] Hotplug resize not supported by driver dummy"


def test_negative_memory_internal_error_fails_cleanly(setup):
    oned, host, vm, store, applier = setup
    oned.fail_next("one.vm.resize", "MEMORY must be a positive integer value.", 0x2000)
    result = applier.apply(Plan(actions=(resize(vm, host, 2048, 1024),)))
    assert "positive integer" in result.failed[0][1]


def test_authentication_failure_stops_the_cycle(setup):
    oned, host, vm, store, applier = setup
    oned.set_password("oneadmin", "changed")
    plan = Plan(actions=(resize(vm, host, 2048, 1024), resize(vm + 1, host, 2048, 1024)))
    with pytest.raises(AuthFailed, match="User couldn't be authenticated"):
        applier.apply(plan)
    assert not store.load_inflight() and oned.memory_mib(vm) == 2048


def test_unreachable_keeps_the_action_in_flight(setup):
    oned, host, vm, store, applier = setup

    class LostReply:
        def __init__(self, cloud):
            self.cloud = cloud

        def vm_info(self, vm_id):
            return self.cloud.vm_info(vm_id)

        def resize_memory(self, *args):
            self.cloud.resize_memory(*args)
            raise Unreachable("reply lost")

    applier.cloud = LostReply(applier.cloud)
    with pytest.raises(Unreachable):
        applier.apply(Plan(actions=(resize(vm, host, 2048, 1024),)))
    assert store.load_inflight()[vm].status == "pending"


def test_recheck_skips_when_memory_changed(setup):
    oned, host, vm, store, applier = setup
    result = applier.apply(Plan(actions=(resize(vm, host, 3072, 1024),)))
    assert "MEMORY is now 2048 MiB" in result.skipped[0][1]
    result = applier.apply(Plan(actions=(resize(vm, host + 1, 2048, 1024),)))
    assert "moved" in result.skipped[0][1]


def test_rate_limits(setup):
    oned, host, vm, store, applier = setup
    others = [oned.add_vm(host_id=host, memory_mib=2048, memory_max_mib=2048) for _ in range(3)]
    applier.params = ServiceParams(max_actions_per_cycle=2)
    sleeps = []
    applier.throttle = Throttle(2.0, clock=lambda: 0.0, sleep=sleeps.append)
    plan = Plan(actions=tuple(resize(v, host, 2048, 1024) for v in [vm] + others))
    result = applier.apply(plan)
    assert len(result.applied) == 2 and len(result.deferred) == 2
    assert sleeps == [0.5]  # two calls at 2 per second


def test_past_the_cycles_time_for_resizes_the_rest_waits_for_the_next_cycle(oned, tmp_path,
                                                                             caplog):
    host = oned.add_host("kvm-2", total_mem_kib=16 * GIB)
    vms = [oned.add_vm("v%d" % i, host, memory_mib=2048, memory_max_mib=2048) for i in range(3)]
    applier = Applier(OneCloud(oned.endpoint, oned.session), StateStore(str(tmp_path / "s.db")),
                      ServiceParams(max_actions_per_s=1000))
    plan = Plan(actions=tuple(resize(vm, host, 2048, 1024) for vm in vms))
    with caplog.at_level(logging.INFO):
        result = applier.apply(plan, deadline_s=time.monotonic() - 1.0)   # already past
    assert [a.vm_id for a in result.applied] == vms[:1]    # the first always starts
    assert [a.vm_id for a in result.deferred] == vms[1:]
    assert "2 at the end of the cycle's time for resizes" in caplog.text
    assert [oned.memory_mib(vm) for vm in vms] == [1024, 2048, 2048]
