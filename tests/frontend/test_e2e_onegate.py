"""Issue 5, end to end: the in-guest publisher (fed a changing fake /proc) PUTs to the
OneGate double, which merges into the oned double's USER_TEMPLATE; a `cvem run` cycle reads
it through pyone and shrinks the VM; the guest's use surges and the VM is grown back
within two cycles."""
import os

import pytest

from fe_support import GIB, ROOT, make_service, settle

pytest.importorskip("tests.doubles.guest")
from tests.doubles.guest import FakeProc, run_publisher  # noqa: E402
from tests.doubles.onegate import OneGateDouble  # noqa: E402

MIB = 1024
KERNEL_KIB = 60 * MIB  # MemTotal is a little below the VM's memory


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "onegate", "cloudvamp-publisher")),
                    reason="publisher not there")
def test_publisher_to_onegate_to_oned_to_resize_and_back(oned, tmp_path):
    host = oned.add_host("kvm-1", total_mem_kib=32 * GIB)
    vm = oned.add_vm("guest", host, memory_mib=4096, memory_max_mib=4096)
    proc = FakeProc(tmp_path / "proc")
    with OneGateDouble(merge_user_template=oned.merge_user_template,
                       delete_user_template_attr=oned.delete_user_template_attr,
                       read_user_template=oned.user_template) as onegate:
        onegate.register_vm(vm)
        env = onegate.publisher_env(vm)

        def guest_sees(used_kib, swap_used_kib=0, psi=(0.0, 0.0)):
            total = oned.memory_mib(vm) * MIB - KERNEL_KIB   # the balloon sets MemTotal
            proc.write(mem_total_kib=total, mem_available_kib=max(total - used_kib, 0),
                       cached_kib=min(100 * MIB, max(total - used_kib, 0)),
                       swap_total_kib=2 * GIB, swap_free_kib=2 * GIB - swap_used_kib, psi=psi)
            result = run_publisher(env, "--once", "--proc", str(proc.root), "--rate-window", "0")
            assert result.returncode == 0, result.stderr

        service = make_service(oned, tmp_path, guards="cooldown_s = 0\n")

        # an idle guest: 500 MiB used of 4 GiB -> the first cycle shrinks it
        guest_sees(500 * MIB)
        assert oned.user_template(vm)["CLOUDVAMP_MEM_USED_KIB"] == str(500 * MIB)
        service.cycle()
        settle(oned)
        shrunk = oned.memory_mib(vm)
        assert shrunk < 4096
        assert oned.calls_of("one.vm.resize")[-1][1] == (vm, "MEMORY=%d" % shrunk, False)
        for _ in range(3):                         # it keeps shrinking while idle
            guest_sees(500 * MIB)
            service.cycle()
            settle(oned)
        low = oned.memory_mib(vm)
        assert low < shrunk

        # the guest's use surges past its allocation: it fills up, swaps, stalls
        grown = low
        for cycle in range(2):
            allocation = oned.memory_mib(vm) * MIB - KERNEL_KIB
            need = 3000 * MIB
            used = min(need, allocation - 20 * MIB)
            guest_sees(used, swap_used_kib=max(need - used, 0),
                       psi=(40.0, 20.0) if need > used else (0.0, 0.0))
            service.cycle()
            settle(oned)
            grown = oned.memory_mib(vm)
            if grown * MIB - KERNEL_KIB >= need:
                break
        assert grown * MIB - KERNEL_KIB >= 3000 * MIB, (low, grown)
        grow_calls = [c for c in oned.calls_of("one.vm.resize") if c[1][2] is True]
        assert grow_calls, "grows are sent with enforce=True"
        assert all(r.status == 200 for r in onegate.requests if r.method == "PUT")
