"""The real tier's own checks: the bed is a genuine OpenNebula 7.4 and the fixture's helpers work."""

import pytest

from realkit import OneCallError


def test_oned_is_opennebula_7_4(real_one):
    assert real_one.rpc("one.system.version").startswith("7.")


def test_bed_has_live_resize_and_plain_hosts(real_one):
    if not real_one.managed:
        pytest.skip("an existing OpenNebula has its own hosts")
    vm_mads = sorted(host.findtext("VM_MAD") for host in real_one.hosts())
    assert "dummylive" in vm_mads and "dummy" in vm_mads


def test_scripted_driver_failure_rolls_a_resize_back(real_one):
    """The dummy driver fails a resize on demand; oned keeps the old MEMORY (the real contract)."""
    host_id = next(int(h.findtext("ID")) for h in real_one.hosts() if h.findtext("VM_MAD") == "dummylive")
    vm_id = real_one.make_vm(host_id, 1024, 2048, name="real-fixture-resize")
    try:
        real_one.dummy_actions("resize", "failure")
        real_one.rpc("one.vm.resize", vm_id, 'MEMORY="1536"', False)
        real_one.wait(lambda: real_one.vm(vm_id).findtext("LCM_STATE") == "3", "resize to end")
        assert real_one.vm(vm_id).findtext("TEMPLATE/MEMORY") == "1024"
    finally:
        real_one.dummy_actions("resize")
        real_one.rpc("one.vm.action", "terminate-hard", vm_id)


def test_oned_errors_carry_its_message(real_one):
    with pytest.raises(OneCallError, match="Error getting virtual machine"):
        real_one.rpc("one.vm.info", 999999, False)
