"""oned 7.4 (sqlite) while its database is locked: the double returns the exact replies the
real oned gave on the test bed (its oned.log shows ``database is locked`` for the same
requests), and the adapter retries them briefly while a real refusal still fails."""
import logging

import pytest

from cvem.adapters.one import OneCloud, transient_reply
from cvem.config import ServiceParams
from cvem.core.model import Plan, Resize
from cvem.ports import AuthFailed, OneCallFailed
from cvem.service.applier import Applier
from cvem.service.state import StateStore
from fe_support import GIB, make_service

# replies recorded from oned 7.4 on the test bed while monitord held one.db's lock
LOCKED_USER = "User couldn't be authenticated, aborting call."        # SELECT oid FROM user_pool
LOCKED_VM = "Error getting virtual machine [{vm}]."                   # SELECT body FROM vm_pool
LOCKED_POOL = "Internal error"                                        # a pool dump


def test_the_database_locked_replies_are_transient_and_real_refusals_are_not():
    assert transient_reply("[one.vm.info] " + LOCKED_USER, 0x0100)
    assert transient_reply("[one.vm.resize] " + LOCKED_VM.format(vm=7), 0x0400)
    assert transient_reply("[one.vmpool.infoextended] " + LOCKED_POOL, 0x2000)
    assert not transient_reply("[one.vm.resize] Cannot resize a VM in state UNKNOWN", 0x0800)
    assert not transient_reply("[one.vm.resize] MEMORY must be a positive integer value.", 0x2000)
    assert not transient_reply("[one.vm.resize] User [2] : user [2] limit of 10240 reached "
                               "for MEMORY quota in VM.", 0x0200)


@pytest.fixture
def cloud_vm(oned):
    host = oned.add_host("kvm-1", total_mem_kib=8 * GIB)
    vm = oned.add_vm("web", host, memory_mib=2048, memory_max_mib=4096)
    return oned, host, vm, OneCloud(oned.endpoint, oned.session, timeout_s=5)


def test_locked_authentication_on_a_read_is_retried_with_one_line(cloud_vm, caplog):
    oned, host, vm, cloud = cloud_vm
    oned.fail_next("one.vmpool.infoextended", LOCKED_USER, 0x0100, count=2)
    with caplog.at_level(logging.INFO, logger="cvem.adapters.one"):
        read = cloud.read_cloud()
    assert [v.vm_id for v in read.vms] == [vm]
    assert cloud.transient_retries == 2
    lines = [r for r in caplog.records if r.name == "cvem.adapters.one"]
    assert len(lines) == 1 and "succeeded on try 3" in lines[0].getMessage()
    assert lines[0].levelno == logging.INFO


def test_locked_pool_dump_and_vm_lookup_are_retried(cloud_vm, tmp_path):
    oned, host, vm, cloud = cloud_vm
    oned.fail_next("one.hostpool.info", LOCKED_POOL, 0x2000)
    assert [h.host_id for h in cloud.read_cloud().hosts] == [host]
    oned.fail_next("one.vm.resize", LOCKED_VM.format(vm=vm), 0x0400)
    applier = Applier(cloud, StateStore(str(tmp_path / "s.db")),
                      ServiceParams(max_actions_per_s=1000))
    result = applier.apply(Plan(actions=(Resize(vm_id=vm, host_id=host, from_kib=2048 * 1024,
                                                to_kib=1024 * 1024, reason="policy",
                                                phase=1),)))
    assert [a.vm_id for a in result.applied] == [vm] and oned.memory_mib(vm) == 1024
    assert len(oned.calls_of("one.vm.resize")) == 2


def test_a_wrong_password_still_fails_after_a_bounded_number_of_tries(cloud_vm, caplog):
    oned, host, vm, cloud = cloud_vm
    oned.set_password("oneadmin", "rotated")
    with caplog.at_level(logging.INFO, logger="cvem.adapters.one"):
        with pytest.raises(AuthFailed, match="User couldn't be authenticated"):
            cloud.read_cloud()
    assert cloud.calls == 1 + len(cloud.retry_delays_s)
    assert not [r for r in caplog.records if r.name == "cvem.adapters.one"]


def test_a_real_refusal_is_not_retried(cloud_vm):
    oned, host, vm, cloud = cloud_vm
    oned.fail_next("one.vm.resize", "Cannot resize a VM in state UNKNOWN", 0x0800)
    with pytest.raises(OneCallFailed):
        cloud.resize_memory(vm, 1024, False)
    assert len(oned.calls_of("one.vm.resize")) == 1 and cloud.transient_retries == 0


def test_a_locked_oned_mid_cycle_is_no_authentication_error(oned, tmp_path, caplog):
    host = oned.add_host("kvm-1", total_mem_kib=8 * GIB)
    oned.add_vm("web", host, memory_mib=2048, memory_max_mib=4096)
    service = make_service(oned, tmp_path, extra="period_s = 1\n")
    oned.fail_next("one.vmpool.monitoring", LOCKED_USER, 0x0100)
    with caplog.at_level(logging.INFO):
        service.cycle()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "succeeded on try 2" in caplog.text
