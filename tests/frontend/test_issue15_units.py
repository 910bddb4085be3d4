"""Issue 15's pure pieces: history carried over, nominal sizes, quota hold, lending scope."""
import numpy as np

from cvem.core.fleet import FleetHistory
from cvem.ports import RawVm
from cvem.service import nominal, quota
from cvem.service.lend import reclaimed_kib_by_host
from cvem.service.observe import VmStatus

MIB = 1024


def test_vm_left_out_keeps_its_history_row():                                  # defect 3
    old = FleetHistory(np.array([1, 2, 3]), {"guard.last_change_s": np.array([10.0, 20.0, 30.0])})
    new = FleetHistory(np.array([1, 3]), {"guard.last_change_s": np.array([11.0, 31.0])})
    kept = new.carried_over(old, [1, 2, 3])
    assert dict(zip(kept.vm_ids.tolist(), kept.columns["guard.last_change_s"].tolist())) == \
        {1: 11.0, 2: 20.0, 3: 31.0}
    gone = new.carried_over(old, [1, 3])          # VM 2 left the cloud: dropped
    assert gone.vm_ids.tolist() == [1, 3]


def raw(vm_id, memory_mib, memory_max_mib=8192, seq=0, state=3, lcm=3, uid=5, gid=7):
    return RawVm(vm_id, "vm", uid, gid, "u", "g", state, lcm, memory_mib, memory_max_mib,
                 "BALLOONING", 0, "h", "dummylive", 0, history_seq=seq)


def test_nominal_is_memory_at_first_sight_not_memory_max():                    # defect 6
    out = nominal.settle_sizes([raw(1, 4096)], {}, set(), 0)
    assert out.nominal_kib == {1: 4096 * MIB} and out.changed == {1: (4096 * MIB, 4096 * MIB)}


def test_resize_outside_cvem_is_the_new_nominal_but_not_while_cvem_resizes():
    records = {1: (8192 * MIB, 2048 * MIB)}
    assert nominal.settle_sizes([raw(1, 6144)], records, set(), 0).nominal_kib[1] == 6144 * MIB
    assert nominal.settle_sizes([raw(1, 6144)], records, {1}, 0).nominal_kib[1] == 8192 * MIB
    # the driver failed cvem's resize: MEMORY is what cvem expects, nothing changes
    assert nominal.settle_sizes([raw(1, 2048)], records, set(), 0).changed == {}


def test_first_sight_after_cvem_resized_it_takes_memory_max():
    def history(vm_id):
        return [(35, 3), (35, 0), (0, -1)]         # the last resize was cvem's user (0)
    out = nominal.settle_sizes([raw(1, 2048, seq=2)], {}, set(), 0, history)
    assert out.nominal_kib[1] == 8192 * MIB
    out = nominal.settle_sizes([raw(1, 2048, seq=2)], {}, set(), 4, history)   # cvem is uid 4
    assert out.nominal_kib[1] == 2048 * MIB
    out = nominal.settle_sizes([raw(1, 2048, seq=2), raw(2, 2048, seq=1)], {}, set(), 0,
                               history, max_lookups=1)
    assert out.pending == {2} and 2 not in out.nominal_kib


def status(vm_id, host, nominal_mib, memory_mib, managed=True):
    return VmStatus(vm_id, "vm", host, "h", "RUNNING", nominal_mib * MIB, memory_mib * MIB,
                    managed, "onegate")


def test_lending_counts_only_managed_vms_against_their_nominal():                # defect 6
    statuses = [status(1, 0, 4096, 2048), status(2, 0, 4096, 4096),
                status(3, 1, 8192, 4096, managed=False)]
    assert reclaimed_kib_by_host(statuses) == {0: 2048 * MIB}
    assert reclaimed_kib_by_host(statuses, {1: 3072}) == {0: 1024 * MIB}


def test_quota_hold_follows_plan_and_owner_and_group():                         # defect 10
    statuses = [status(1, 0, 8192, 2048), status(2, 0, 4096, 4096)]
    raw_vms = {1: raw(1, 2048, uid=5, gid=7), 2: raw(2, 4096, uid=0, gid=0)}
    assert quota.held_mib(statuses, raw_vms, {}) == {("user", 5): 6144, ("group", 7): 6144}
    assert quota.held_mib(statuses, raw_vms, {1: 8192}) == {("user", 5): 0, ("group", 7): 0}
    base = {"MEMORY": "10240", "RUNNING_MEMORY": "-1", "VMS": "5"}
    assert quota.target_limits(base, None, 6144) == dict(base, MEMORY="4096")
    assert quota.target_limits(base, {"RUNNING_MEMORY": "9000"}, 6144) == \
        dict(base, MEMORY="4096", RUNNING_MEMORY="2856")
    assert quota.target_limits({"MEMORY": "-2"}, None, 6144) == {"MEMORY": "-2"}
    assert quota.target_limits(base, None, 0) == base
    assert quota.quota_template({"MEMORY": "1", "VMS": "2"}) == 'VM=[MEMORY="1", VMS="2"]'


def test_vms_outside_the_filters_are_never_sized_nor_looked_up():
    """Another cvem with the same oned user may manage them: their resizes by "cvem's user"
    are not a lost state DB (the warning a real-tier run showed), and they cost no look-up."""
    looked_up = []

    def history(vm_id):
        looked_up.append(vm_id)
        return [(35, 0)]
    records = {2: (4096 * MIB, 2048 * MIB)}
    out = nominal.settle_sizes([raw(1, 2048, seq=2), raw(2, 3000)], records, set(), 0, history,
                               outside={1, 2})
    assert looked_up == [] and out.changed == {} and out.nominal_kib == {}
    assert out.gone == ()                     # VM 2's record is kept, not dropped


def test_a_confirmed_resize_of_a_vm_without_a_size_gives_it_no_size():
    """A resize learnt from a predecessor's record: the shrunk MEMORY is not the VM's size."""
    assert nominal.confirmed({}, 1, 2048 * MIB) == {}
    assert nominal.confirmed({1: (4096 * MIB, 4096 * MIB)}, 1, 2048 * MIB) == \
        {1: (4096 * MIB, 2048 * MIB)}
