"""Peace with OneDRS (OpenNebula 7.x): a VM in a OneDRS plan that is waiting or applying
is neither resized nor migrated by cvem; `[migration] owner = onedrs` leaves every
migration to OneDRS; `onedrs_blocked = yes` pins the VMs cvem manages for OneDRS's
optimiser with ONEDRS_BLOCKED="YES" (the attribute its optimizer_parser.py reads)."""
import threading

import pytest

from cvem import keys
from cvem.config import parse_config
from cvem.errors import ConfigError
from fe_support import Clock, GIB, make_service

MIB = 1024


class FastStop(threading.Event):
    def wait(self, timeout=None):
        return self.is_set()


@pytest.fixture
def cloud(oned):
    host = oned.add_host("kvm-1", total_mem_kib=64 * GIB)
    vms = [oned.add_vm("idle-%d" % i, host, 4096, 4096) for i in range(3)]
    oned.apply_demand(vms, [600 * MIB] * 3)
    return host, vms


@pytest.mark.parametrize("plan_state,left_alone", [(0, True), (1, True), (2, False),
                                                   (-1, False)])
def test_a_vm_in_a_onedrs_plan_is_left_to_onedrs(oned, tmp_path, cloud, plan_state,
                                                  left_alone):
    host, vms = cloud
    oned.set_drs_plan(0, [(vms[0], 1 if plan_state in (0, 1) else 2)], state=plan_state)
    svc = make_service(oned, tmp_path)
    svc.clock = Clock(oned)
    report = svc.cycle()
    resized = {c[1][0] for c in oned.calls_of("one.vm.resize")}
    assert (vms[0] not in resized) is left_alone
    assert set(vms[1:]) <= resized
    reason = {s.vm_id: s.reason for s in report.observation.statuses}[vms[0]]
    assert (reason == "OneDRS plan in flight") is left_alone
    assert oned.calls_of("one.cluster.info")


def test_owner_onedrs_turns_cvem_migrations_off():
    enabled, _ = parse_config("[migration]\nowner = onedrs\n").build_migration()
    assert enabled is False
    enabled, _ = parse_config("[migration]\nowner = cvem\n").build_migration()
    assert enabled is True
    with pytest.raises(ConfigError, match="owner"):
        parse_config("[migration]\nowner = both\n")


def test_onedrs_blocked_pins_the_managed_vms(oned, tmp_path, cloud):
    host, vms = cloud
    legacy = oned.add_vm("legacy", host, 2048)          # not managed: never pinned
    svc = make_service(oned, tmp_path, extra="[migration]\nonedrs_blocked = yes\n")
    svc.clock = Clock(oned)
    svc.cycle()
    for vm in vms:
        assert oned.user_template(vm).get(keys.ONEDRS_BLOCKED) == "YES"
    assert keys.ONEDRS_BLOCKED not in oned.user_template(legacy)


def test_without_onedrs_blocked_nothing_is_written_for_onedrs(oned, tmp_path, cloud):
    host, vms = cloud
    svc = make_service(oned, tmp_path)
    svc.clock = Clock(oned)
    svc.cycle()
    assert all(keys.ONEDRS_BLOCKED not in oned.user_template(v) for v in vms)
