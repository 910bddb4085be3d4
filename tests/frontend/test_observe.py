"""Managed-VM selection (a reason for every VM left alone) and untrusted guest reports."""
import math

from hypothesis import given, settings, strategies as st

from cvem import keys
from cvem.config import ServiceParams
from cvem.ports import CloudRead, RawHost, RawVm
from cvem.service.observe import (ReportMark, observe, onegate_report, probe_report,
                                  why_unmanaged)

NOW = 1_000_000.0
NOMINAL = 4096 * 1024


def raw_vm(**kw):
    base = dict(vm_id=1, name="vm", uid=2, gid=3, uname="alice", gname="users", state=3,
                lcm_state=3, memory_mib=4096, memory_max_mib=4096, resize_mode="",
                host_id=0, host_name="h", vm_mad="kvm", cluster_id=0)
    base.update(kw)
    return RawVm(**base)


def raw_host(**kw):
    base = dict(host_id=0, name="h", state=2, vm_mad="kvm", im_mad="kvm", cluster_id=0,
                total_mem_kib=16 << 20, max_mem_kib=16 << 20, mem_usage_kib=4 << 20,
                reserved_mem="")
    base.update(kw)
    return RawHost(**base)


def guest(used=1_000_000, total=4_000_000, seq=5, time_s=NOW, **extra):
    attrs = {keys.GUEST_MEM_USED_KIB: str(used), keys.GUEST_MEM_TOTAL_KIB: str(total),
             keys.GUEST_MEM_AVAILABLE_KIB: str(max(total - used, 0)) if isinstance(used, int) else "0",
             keys.GUEST_SEQ: str(seq),
             keys.GUEST_TIME: str(time_s)}
    attrs.update(extra)
    return attrs


P = ServiceParams()


def test_reasons_for_every_vm_left_alone():
    h = raw_host()
    cases = [
        (raw_vm(state=8), "not running (state POWEROFF)"),
        (raw_vm(lcm_state=16), "not running (LCM state UNKNOWN)"),
        (raw_vm(lcm_state=66), "resize in progress (HOTPLUG_RESIZE)"),
        (raw_vm(opt_out="no"), 'opted out (CLOUDVAMP="no")'),
        (raw_vm(memory_max_mib=None), "no MEMORY_MAX in the VM template"),
        (raw_vm(resize_mode="HOTPLUG"), "MEMORY_RESIZE_MODE=HOTPLUG (only BALLOONING is managed)"),
        (raw_vm(vm_mad="dummy"), "VM_MAD 'dummy' has no live resize (live_resize_vm_mads)"),
    ]
    for vm, reason in cases:
        assert why_unmanaged(vm, h, P, False) == reason
    assert why_unmanaged(raw_vm(), None, P, False) == "host 0 unknown"
    assert why_unmanaged(raw_vm(), raw_host(state=3), P, False) == "host h in state ERROR"
    assert why_unmanaged(raw_vm(), h, P, True) == "previous resize still in flight"
    assert why_unmanaged(raw_vm(), h, P, False) is None
    assert why_unmanaged(raw_vm(vm_mad="cloudvamp"), h, P, False) is None


def test_user_group_cluster_filters():
    h = raw_host(cluster_id=5)
    assert "users filter" in why_unmanaged(raw_vm(), h, ServiceParams(users="bob"), False)
    assert why_unmanaged(raw_vm(), h, ServiceParams(users="bob,2"), False) is None
    assert "groups filter" in why_unmanaged(raw_vm(), h, ServiceParams(groups="ops"), False)
    assert why_unmanaged(raw_vm(), h, ServiceParams(groups="users"), False) is None
    assert "clusters filter" in why_unmanaged(raw_vm(), h, ServiceParams(clusters="1"), False)
    assert why_unmanaged(raw_vm(), h, ServiceParams(clusters="1, 5"), False) is None


def test_valid_report_accepted():
    report, problem, mark = onegate_report(raw_vm(user=guest()), NOMINAL, None, NOW, 120)
    assert problem is None and report.used_kib == 1_000_000 and report.seq == 5
    assert mark == ReportMark("5", NOW)


def rejected(attrs):
    report, problem, _ = onegate_report(raw_vm(user=attrs), NOMINAL, None, NOW, 120)
    assert report is None
    return problem


def test_malformed_negative_impossible_rejected_with_reason():
    assert "is not a number" in rejected(guest(used="lots"))
    assert "is negative" in rejected(dict(guest(), **{keys.GUEST_MEM_USED_KIB: "-5"}))
    assert "not finite" in rejected(guest(**{keys.GUEST_SWAP_IN_KIB_S: "nan"}))
    assert "> total" in rejected(guest(used=5_000_000, total=4_000_000))
    assert "> nominal" in rejected(guest(used=1000, total=8_000_000))
    assert "!=" in rejected(dict(guest(), **{keys.GUEST_MEM_AVAILABLE_KIB: "100"}))
    assert "missing" in rejected({keys.GUEST_SEQ: "1"})
    assert "is impossibly large" in rejected(guest(**{keys.GUEST_PSI_FULL_AVG10: "101"}))


def test_stale_when_seq_does_not_change_on_cvems_clock():
    old = ReportMark("5", NOW - 200)
    report, problem, mark = onegate_report(raw_vm(user=guest(seq=5)), NOMINAL, old, NOW, 120)
    assert report is None and "stale" in problem and mark == old
    report, problem, mark = onegate_report(raw_vm(user=guest(seq=6)), NOMINAL, old, NOW, 120)
    assert report is not None and mark.changed_at_s == NOW


def test_first_sight_with_old_guest_clock_waits_for_a_new_seq():
    attrs = guest(time_s=NOW - 3600)
    report, problem, mark = onegate_report(raw_vm(user=attrs), NOMINAL, None, NOW, 120)
    assert report is None and "stale" in problem
    report, _, _ = onegate_report(raw_vm(user=guest(seq=6, time_s=NOW - 3600)), NOMINAL,
                                  mark, NOW + 10, 120)
    assert report is not None  # the sequence moved under cvem's eyes


def probe(usable=3_000_000, available=4_000_000, stats=NOW, swap_in=0):
    return {keys.PROBE_USABLE_KIB: str(usable), keys.PROBE_AVAILABLE_KIB: str(available),
            keys.PROBE_STATS_TIME: str(stats), keys.PROBE_SWAP_IN_KIB: str(swap_in),
            keys.PROBE_BALLOON_ACTUAL_KIB: str(available)}


def test_probe_report_and_swap_rate():
    r, problem, mark, balloon = probe_report(1, probe(), NOMINAL, None, NOW, 120)
    assert problem is None and r.used_kib == 1_000_000 and r.source == "probe"
    assert balloon == 4_000_000
    r, _, mark, _ = probe_report(1, probe(stats=NOW + 10, swap_in=5000), NOMINAL, mark,
                                 NOW + 10, 120)
    assert r.swap_in_kib_s == 500.0
    assert "usable" in probe_report(1, probe(usable=5_000_000), NOMINAL, None, NOW, 120)[1]


def cloud(vms, monitoring=None):
    return CloudRead(vms=vms, hosts=[raw_host()], monitoring=monitoring or {})


def test_onegate_preferred_over_probe_when_both_fresh():
    # the probe's lower used figure does not lower the report's (a higher one raises it:
    # test_report_freshness, the publisher's deadband)
    read = cloud([raw_vm(user=guest(used=1_000_000))], {1: probe(usable=3_100_000)})
    obs = observe(read, P, {}, NOW)
    assert obs.snapshot.vms[0].guest.source == "onegate"
    assert obs.snapshot.vms[0].guest.used_kib == 1_000_000


def test_probe_used_when_onegate_stale_and_nothing_when_both_bad():
    # older than report_max_age_s: the probe cannot keep it current any more
    marks = {(1, "onegate"): ReportMark("5", NOW - P.report_max_age_s - 1)}
    read = cloud([raw_vm(user=guest(seq=5))], {1: probe()})
    obs = observe(read, P, marks, NOW)
    assert obs.snapshot.vms[0].guest.source == "probe"
    read = cloud([raw_vm(user=guest(seq=5))], {1: probe(usable=9_999_999)})
    view = observe(read, P, marks, NOW).snapshot.vms[0]
    assert view.guest is None and "stale" in view.report_problem and "usable" in view.report_problem
    no_fallback = ServiceParams(probe_fallback=False)
    assert observe(cloud([raw_vm(user=guest(seq=5))], {1: probe()}), no_fallback, marks,
                   NOW).snapshot.vms[0].guest is None


def test_statuses_cover_every_vm_and_marks_persist_for_paused_vms():
    marks = {(2, "onegate"): ReportMark("9", NOW - 50), (77, "onegate"): ReportMark("1", 0)}
    read = cloud([raw_vm(vm_id=1, user=guest()), raw_vm(vm_id=2, state=8)])
    obs = observe(read, P, marks, NOW)
    assert [s.vm_id for s in obs.statuses] == [1, 2]
    assert obs.statuses[1].reason.startswith("not running")
    assert (2, "onegate") in obs.marks and (77, "onegate") not in obs.marks


text = st.one_of(st.text(max_size=50), st.integers(-10**20, 10**20).map(str),
                 st.floats(allow_nan=True, allow_infinity=True).map(repr))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(keys.GUEST_KEYS), text))
def test_garbage_never_raises_and_never_yields_an_impossible_report(attrs):
    report, problem, _ = onegate_report(raw_vm(user=attrs), NOMINAL, None, NOW, 120)
    assert (report is None) != (problem is None)
    if report is not None:
        assert 0 <= report.used_kib <= report.total_kib <= NOMINAL + 65536
        assert math.isfinite(report.swap_in_kib_s) and report.swap_in_kib_s >= 0


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(keys.PROBE_KEYS + ("TIMESTAMP",)), text))
def test_probe_garbage_never_raises(mon):
    report, problem, _, _ = probe_report(1, mon, NOMINAL, None, NOW, 120)
    assert (report is None) != (problem is None)
    if report is not None:
        assert 0 <= report.used_kib <= report.total_kib


def deflating_probe(actual, target, autodeflate="1", maximum=NOMINAL, **kw):
    """Probe figures of a guest with deflate-on-OOM: its MemTotal (available) keeps the balloon."""
    mon = probe(**kw)
    mon.update({keys.PROBE_BALLOON_ACTUAL_KIB: str(actual), keys.PROBE_MAX_KIB: str(maximum),
                keys.PROBE_AUTODEFLATE: autodeflate})
    if target is not None:
        mon.update({keys.PROBE_BALLOON_TARGET_KIB: str(target),
                    keys.PROBE_SELF_DEFLATED_KIB: str(max(actual - target, 0))})
    return mon


def settled_balloon(actual_kib, vm_id=1):
    """Marks of a balloon that has been at ``actual_kib`` since long before NOW's figures."""
    return {(vm_id, "balloon"): ReportMark(str(actual_kib), NOW - 100, counter_at_s=NOW - 100)}


def test_guest_that_deflated_its_balloon_is_under_pressure_and_says_so():
    target = 2048 * 1024
    vm = raw_vm(memory_mib=2048, user=guest(used=1_000_000 + 2048 * 1024))
    mon = deflating_probe(actual=target + 300 * 1024, target=target)
    obs = observe(cloud([vm], {1: mon}), P, {}, NOW)
    view, status = obs.snapshot.vms[0], obs.statuses[0]
    assert view.self_deflated_kib == 300 * 1024 and status.self_deflated_kib == 300 * 1024
    assert "guest deflated its balloon itself (deflate-on-OOM): pressure" in status.reason
    from cvem.core.fleet import obs_from_snapshot
    columns, _ = obs_from_snapshot(obs.snapshot)
    assert columns.pressure[0] and columns.deficit_kib[0] == 300 * 1024


def test_self_deflation_needs_the_target_cvem_set_now():
    vm = raw_vm(memory_mib=2048, user=guest())
    # a sample from before cvem's last resize (recorded target 3072 MiB, MEMORY now 2048)
    stale = deflating_probe(actual=3072 * 1024, target=3072 * 1024 - 0, autodeflate="0")
    stale[keys.PROBE_SELF_DEFLATED_KIB] = str(500 * 1024)
    assert observe(cloud([vm], {1: stale}), P, {}, NOW).snapshot.vms[0].self_deflated_kib == 0
    # never resized by cloudvamp: no recorded target, no claim
    unknown = deflating_probe(actual=3072 * 1024, target=None)
    assert observe(cloud([vm], {1: unknown}), P, settled_balloon(3072 * 1024),
                   NOW).snapshot.vms[0].self_deflated_kib == 0
    # rounding noise is not pressure
    noise = deflating_probe(actual=2048 * 1024 + 1024, target=2048 * 1024)
    assert observe(cloud([vm], {1: noise}), P, settled_balloon(2048 * 1024 + 1024),
                   NOW).snapshot.vms[0].self_deflated_kib == 0


def test_balloon_counted_in_a_deflate_on_oom_guest_total_is_taken_out_of_used():
    """MemTotal - MemAvailable of such a guest includes its whole balloon (lab-measured)."""
    balloon = NOMINAL - 2048 * 1024
    vm = raw_vm(memory_mib=2048, user=guest(used=1_000_000 + balloon, total=4_000_000))
    mon = deflating_probe(actual=2048 * 1024, target=2048 * 1024)
    # the balloon has been at 2048 MiB since long before these figures were taken
    settled = settled_balloon(2048 * 1024)
    view = observe(cloud([vm], {1: mon}), P, settled, NOW).snapshot.vms[0]
    assert view.guest.source == "onegate"
    assert view.guest.used_kib == 1_000_000 and view.guest.total_kib == 4_000_000 - balloon
    # the probe's own figures get the same correction when they are the source
    probe_only = deflating_probe(actual=2048 * 1024, target=2048 * 1024,
                                 usable=4_000_000 - 1_000_000 - balloon)
    view = observe(cloud([raw_vm(memory_mib=2048)], {1: probe_only}), P, settled,
                   NOW).snapshot.vms[0]
    assert view.guest.source == "probe" and view.guest.used_kib == 1_000_000
    # without deflate-on-OOM the balloon is already out of MemTotal: nothing is taken away
    plain = deflating_probe(actual=2048 * 1024, target=2048 * 1024, autodeflate="0")
    view = observe(cloud([vm], {1: plain}), P, {}, NOW).snapshot.vms[0]
    assert view.guest.used_kib == 1_000_000 + balloon


# --- deflate-on-OOM: the balloon size and the guest's figures are not from the same moment.
# The probe reads the balloon's actual size live, the guest's statistics are up to a stats
# period older (10 s), so right after a resize the record pairs the new balloon with figures
# of the old one. Lab guest of the stack tier: 512 MiB, MemTotal ~458 MiB, ~90 MiB used.
MIB = 1024
LAB_NOMINAL = 512 * MIB
LAB_MEMTOTAL = 458 * MIB
LAB_USED = 90 * MIB


def lab_record(actual_mib, balloon_in_stats_mib, stats_s):
    """Probe record: balloon ``actual_mib`` now, statistics taken at ``stats_s`` when the
    balloon (inside MemTotal, deflate-on-OOM) was ``balloon_in_stats_mib``."""
    inflated = (512 - balloon_in_stats_mib) * MIB
    mon = probe(usable=LAB_MEMTOTAL - LAB_USED - inflated, available=LAB_MEMTOTAL, stats=stats_s)
    mon.update({keys.PROBE_BALLOON_ACTUAL_KIB: str(actual_mib * MIB),
                keys.PROBE_MAX_KIB: str(LAB_NOMINAL), keys.PROBE_AUTODEFLATE: "1",
                keys.PROBE_BALLOON_TARGET_KIB: str(actual_mib * MIB),
                keys.PROBE_SELF_DEFLATED_KIB: "0"})
    return mon


def lab_cycles(records):
    """observe() cycle after cycle, marks carried over: (status, view or None) per cycle."""
    marks, out = {}, []
    for now_s, memory_mib, mon in records:
        vm = raw_vm(memory_mib=memory_mib, memory_max_mib=512)
        obs = observe(cloud([vm], {1: mon}), P, marks, now_s, nominal_kib={1: LAB_NOMINAL})
        marks = obs.marks
        out.append((obs.statuses[0], obs.snapshot.vms[0] if obs.snapshot.vms else None))
    return out


def test_after_a_shrink_old_statistics_are_never_read_with_the_new_balloon():
    """512 -> 320 MiB: the first records pair the 192 MiB balloon with statistics from before
    it inflated. Corrected with it, use read 0 (an unsafe shrink below use), then back to 90
    MiB, a false 90 MiB rise the policy learned and grew 320 -> 352 MiB for (stack tier)."""
    t = NOW
    cycles = lab_cycles([
        (t, 512, lab_record(512, 512, t - 3)),             # settled at 512 MiB
        (t + 5, 512, lab_record(512, 512, t + 1)),
        (t + 10, 320, lab_record(320, 512, t + 1)),        # resized: stats predate it
        (t + 15, 320, lab_record(320, 320, t + 11)),       # newer than the first 320 record
        (t + 25, 320, lab_record(320, 320, t + 21)),
    ])
    used = [view.guest.used_kib if view else None for _, view in cycles]
    assert used[0] is None and cycles[0][0].reason.startswith("balloon settling")  # restart
    assert used[1] == LAB_USED
    assert used[2] is None and cycles[2][0].reason.startswith("balloon settling")
    assert not cycles[2][0].managed
    # statistics newer than the record that first showed 320 MiB: taken with it inflated
    assert used[3] == LAB_USED and used[4] == LAB_USED
    assert all(u is None or u == LAB_USED for u in used)   # never understated nor overstated


def test_statistics_refreshed_within_the_resize_record_still_wait_for_the_next():
    """The record that first shows a new size cannot tell whether its statistics were taken
    before or after the balloon moved (the inflation takes seconds under TCG)."""
    t = NOW
    cycles = lab_cycles([
        (t, 512, lab_record(512, 512, t - 3)),
        (t + 5, 512, lab_record(512, 512, t + 1)),
        (t + 10, 320, lab_record(320, 400, t + 9)),        # half inflated when sampled
        (t + 15, 320, lab_record(320, 400, t + 9)),        # same statistics: still waiting
        (t + 20, 320, lab_record(320, 320, t + 19)),
    ])
    assert [view.guest.used_kib if view else None for _, view in cycles] == \
        [None, LAB_USED, None, None, LAB_USED]


def test_after_a_grow_old_statistics_do_not_overstate_use():
    """320 -> 512 MiB: the balloon deflated, statistics from before still hold it as used;
    corrected with the new (empty) balloon, use would read 282 MiB: a needless grow."""
    t = NOW
    cycles = lab_cycles([
        (t, 320, lab_record(320, 320, t - 3)),
        (t + 5, 320, lab_record(320, 320, t + 1)),
        (t + 10, 512, lab_record(512, 320, t + 1)),
        (t + 20, 512, lab_record(512, 512, t + 11)),
    ])
    # a balloon size seen for the first time (here: cvem restarted) waits as well
    assert [view.guest.used_kib if view else None for _, view in cycles] == \
        [None, LAB_USED, None, LAB_USED]


def test_a_guest_deflating_its_balloon_itself_is_never_held_back():
    """Deflate-on-OOM: the guest took 64 MiB back from a 320 MiB target, it lacks memory."""
    t = NOW
    deflated = lab_record(384, 320, t + 1)
    deflated[keys.PROBE_BALLOON_TARGET_KIB] = str(320 * MIB)
    deflated[keys.PROBE_SELF_DEFLATED_KIB] = str(64 * MIB)
    (_, first), (status, view) = lab_cycles([(t, 320, lab_record(320, 320, t - 3)),
                                             (t + 5, 320, deflated)])
    assert first is None and view is not None and view.self_deflated_kib == 64 * MIB
    assert view.guest.used_kib >= LAB_USED   # overstated at worst: it grows, as it must


def test_onegate_reports_wait_for_one_published_after_the_balloon_moved():
    t = NOW
    marks = {}
    vm_at = dict(memory_max_mib=512)
    used_with_balloon = LAB_USED + 192 * MIB
    steps = [  # (now, MEMORY, probe record, OneGate used, seq)
        (t, 512, lab_record(512, 512, t - 3), LAB_USED, 1),
        (t + 5, 512, lab_record(512, 512, t + 1), LAB_USED, 2),
        (t + 10, 320, lab_record(320, 512, t + 1), LAB_USED, 2),   # old report, new balloon
        (t + 15, 320, lab_record(320, 320, t + 11), used_with_balloon, 3),
    ]
    used = []
    for now_s, memory_mib, mon, guest_used, seq in steps:
        vm = raw_vm(memory_mib=memory_mib, user=guest(used=guest_used, total=LAB_MEMTOTAL,
                                                      seq=seq, time_s=now_s), **vm_at)
        obs = observe(cloud([vm], {1: mon}), P, marks, now_s, nominal_kib={1: LAB_NOMINAL})
        marks = obs.marks
        view = obs.snapshot.vms[0] if obs.snapshot.vms else None
        used.append(view.guest.used_kib if view else None)
        assert view is None or view.guest.source == "onegate"
    assert used == [None, LAB_USED, None, LAB_USED]


def test_a_deflate_on_oom_guest_may_show_a_memtotal_above_its_nominal_size():
    """Stack tier: a 512 MiB (maxMemory) VM whose nominal size became 384 MiB still shows
    MemTotal ~458 MiB (its balloon stays inside it); bounded by maxMemory, not nominal."""
    t = NOW
    mon = lab_record(320, 320, t + 1)
    vm = raw_vm(memory_mib=320, memory_max_mib=512,
                user=guest(used=LAB_USED + 192 * MIB, total=LAB_MEMTOTAL, time_s=t))
    marks = {(1, "balloon"): ReportMark(str(320 * MIB), t - 100, counter_at_s=t - 100)}
    obs = observe(cloud([vm], {1: mon}), P, marks, t, nominal_kib={1: 384 * MIB})
    view = obs.snapshot.vms[0]
    assert view.guest.source == "onegate" and view.guest.used_kib == LAB_USED
    p_obs = observe(cloud([raw_vm(memory_mib=320, memory_max_mib=512)], {1: mon}), P, marks, t,
                    nominal_kib={1: 384 * MIB})
    assert p_obs.snapshot.vms[0].guest.used_kib == LAB_USED
    # without deflate-on-OOM MemTotal follows the balloon: above nominal is still a lie
    plain = dict(mon, **{keys.PROBE_AUTODEFLATE: "0"})
    problem = observe(cloud([raw_vm(memory_mib=320, memory_max_mib=512)], {1: plain}), P, {}, t,
                      nominal_kib={1: 384 * MIB}).snapshot.vms[0].report_problem
    assert "> nominal 393216 KiB" in problem
