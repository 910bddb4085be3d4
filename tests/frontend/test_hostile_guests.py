"""The whole service over awkward clouds and hostile guests, several cycles each (hypothesis).

A guest can write, through OneGate, any USER_TEMPLATE key cvem reads: its report keys, the
``CLOUDVAMP`` opt-out, the ``CLOUDVAMP_*`` keys cvem writes back, even a ``MEMORY`` or
``MEMORY_MAX`` of its own. Whatever it writes, across cycles:

* no cycle raises, and ``status``/``plan`` can always be built;
* no VM is ever resized above its nominal size (``MEMORY_MAX``);
* no VM its owner or admin left out (``CONTEXT=[CLOUDVAMP="NO"]``, no ``MEMORY_MAX``,
  ``MEMORY_RESIZE_MODE=HOTPLUG``, not RUNNING, a resize in flight) is ever resized;
* no VM is shrunk without a usable report, nor below what that report says it uses.
"""
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from cvem import keys
from cvem.cli.service import plan_rows, status_document
from fe_support import Clock, GIB, OnedDouble, make_service

MIB = 1024
HOST_SIZES_GIB = (4, 16, 64)
READ_KEYS = keys.GUEST_KEYS + (keys.OPT_OUT, keys.SHOW_STATE, keys.SHOW_REASON,
                               keys.SHOW_NOMINAL_MIB, keys.SHOW_LAST_ACTION, "MEMORY",
                               "MEMORY_MAX", "MEMORY_RESIZE_MODE")

vm_specs = st.fixed_dictionaries({
    "host": st.integers(0, 3),                       # 3: not deployed on a known host
    "memory_mib": st.sampled_from([128, 1024, 4096, 16384]),
    "max_extra_mib": st.sampled_from([None, 0, 1024, 8192]),   # None: no MEMORY_MAX
    "admin": st.sampled_from([None, None, "NO", "YES", "no", "0", ""]),
    "mode": st.sampled_from([None, None, "BALLOONING", "HOTPLUG"]),
    "lcm": st.sampled_from(["RUNNING", "RUNNING", "RUNNING", "HOTPLUG_RESIZE", "UNKNOWN",
                            "POWEROFF"]),
})
clouds = st.tuples(st.lists(st.sampled_from(HOST_SIZES_GIB), max_size=3),
                   st.lists(vm_specs, max_size=6))

hostile_values = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
    st.integers(-2 ** 70, 2 ** 70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "-0", "1e400", "0x10", " 5 ", "9" * 60, "NO",
                     "YES", "", "0", "1", "4294967296", "-1"]),
)
# One guest's move for one cycle: an honest report, silence, or any keys with any values.
guest_moves = st.one_of(
    st.tuples(st.just("honest"), st.floats(0.0, 1.2)),
    st.tuples(st.just("silent"), st.none()),
    st.tuples(st.just("hostile"), st.dictionaries(st.sampled_from(READ_KEYS), hostile_values,
                                                  max_size=6)),
)

LCM = {"RUNNING": (3, 3), "HOTPLUG_RESIZE": (3, 66), "UNKNOWN": (3, 16), "POWEROFF": (8, 0)}
CYCLES = 4


def build(oned, cloud):
    host_sizes, specs = cloud
    hosts = [oned.add_host("h%d" % i, total_mem_kib=g * GIB) for i, g in enumerate(host_sizes)]
    vms = {}
    for i, spec in enumerate(specs):
        template = {}
        if spec["admin"] is not None:
            template["CONTEXT"] = {"TOKEN": "YES", "CLOUDVAMP": spec["admin"]}
        host = hosts[spec["host"]] if spec["host"] < len(hosts) else None
        state, lcm = LCM[spec["lcm"]]
        memory_max = None if spec["max_extra_mib"] is None \
            else spec["memory_mib"] + spec["max_extra_mib"]
        vm = oned.add_vm("vm%d" % i, host, spec["memory_mib"], memory_max,
                         resize_mode=spec["mode"], template=template,
                         state=state if host is not None else 1,
                         lcm_state=lcm if host is not None else 0)
        owner_left_out = (host is None or spec["admin"] in ("NO", "no", "0")
                          or memory_max is None or spec["mode"] == "HOTPLUG"
                          or spec["lcm"] != "RUNNING")
        ceiling = max(memory_max or 0, spec["memory_mib"])
        vms[vm] = (ceiling, owner_left_out)
    return vms


def play(oned, vm, move):
    kind, arg = move
    if kind == "honest":
        memory_kib = oned.memory_mib(vm) * MIB
        oned.set_guest(vm, int(memory_kib * min(arg, 1.0)))
    elif kind == "hostile":
        oned.merge_user_template(vm, arg)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cloud=clouds, data=st.data())
def test_invariants_hold_over_awkward_clouds_and_hostile_guests(cloud, data):
    with OnedDouble(resize_settle_s=0.02, migrate_settle_s=0.05) as oned, \
            tempfile.TemporaryDirectory() as tmp:
        from pathlib import Path
        vms = build(oned, cloud)
        service = make_service(oned, Path(tmp), guards="cooldown_s = 0\n")
        service.clock = clock = Clock(oned)
        for _ in range(CYCLES):
            for vm in vms:
                play(oned, vm, data.draw(guest_moves, label="vm %d" % vm))
            before = {vm: oned.memory_mib(vm) for vm in vms}
            status_document(service.cycle(dry_run=True))
            report = service.cycle()
            plan_rows(report)
            assert report.result is not None
            statuses = {s.vm_id: s for s in report.observation.statuses}
            for action in report.result.applied:
                ceiling, left_out = vms[action.vm_id]
                assert not left_out, (action, statuses[action.vm_id])
                assert action.to_kib <= ceiling * MIB, action
                if action.to_kib < action.from_kib:
                    status = statuses[action.vm_id]
                    assert status.guest_source is not None, (action, status)
                    assert action.to_kib >= status.guest_used_kib, (action, status)
            for vm, (ceiling, left_out) in vms.items():
                assert oned.memory_mib(vm) <= max(ceiling, before[vm])
                if left_out:
                    assert oned.memory_mib(vm) == before[vm]
            clock.advance(10)
        resized = {c[1][0] for c in oned.calls_of("one.vm.resize")}
        assert not resized & {vm for vm, (_, left_out) in vms.items() if left_out}
