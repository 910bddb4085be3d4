"""Freshness from the probe: an unchanged OneGate report stays current while the probe's fresh
balloon statistics agree with it; one they disagree with may grow its VM, never shrink it."""
from cvem.config import ServiceParams
from cvem.core.decide import Decider, decide
from cvem.core.fleet import FleetHistory
from cvem.core.guest_signals import (REPORT_CORROBORATED, REPORT_FRESH, REPORT_MOVED,
                                     REPORT_STALE, Corroboration, report_freshness)
from cvem.core.model import HostView, Resize, Snapshot
from cvem.policies.base import load_policy
from cvem.service.observe import MOVED_REASON, ReportMark, observe

from test_observe import NOW, cloud, guest, probe, raw_vm

P = ServiceParams()
GIB = 1 << 20
RULES = Corroboration(agree_kib=128 * 1024, agree_ratio=0.04, max_age_s=3900)


def test_verdicts():
    fresh = report_freshness(100, 120, False, 1e6, float("nan"), 4e6, RULES)
    assert fresh == REPORT_FRESH                       # its sequence changed recently
    assert report_freshness(1000, 120, True, 1e6, 1.05e6, 4e6, RULES) == REPORT_CORROBORATED
    assert report_freshness(1000, 120, True, 1e6, 1.5e6, 4e6, RULES) == REPORT_MOVED
    assert report_freshness(1000, 120, True, 1e6, 0.5e6, 4e6, RULES) == REPORT_MOVED
    assert report_freshness(1000, 120, False, 1e6, 1e6, 4e6, RULES) == REPORT_STALE
    assert report_freshness(4000, 120, True, 1e6, 1e6, 4e6, RULES) == REPORT_STALE
    # the tolerance is relative to the guest's size too: 4 % of 64 GiB
    assert report_freshness(1000, 120, True, 8 * GIB, 10 * GIB, 64 * GIB, RULES) == \
        REPORT_CORROBORATED


def _view(probe_usable, age_s=1000):
    marks = {(1, "onegate"): ReportMark("5", NOW - age_s)}
    read = cloud([raw_vm(user=guest(used=1_000_000, total=4_000_000, seq=5))],
                 {1: probe(usable=probe_usable, available=4_000_000)})
    obs = observe(read, P, marks, NOW)
    return obs.snapshot.vms[0], obs.statuses[0]


def test_unchanged_report_kept_current_while_the_probe_agrees():
    view, status = _view(probe_usable=2_980_000)       # probe: used 1,020,000 KiB
    assert view.guest.source == "onegate" and view.report_problem is None
    assert view.guest.shrink_ok
    assert view.guest.used_kib == 1_020_000            # the larger of the two
    assert view.guest.sampled_at_s == NOW              # the probe's time, not the publish's
    assert status.reason == "onegate"                  # stable: no show-attribute rewrite


def test_past_the_max_age_the_report_is_stale_whatever_the_probe_says():
    view, _ = _view(probe_usable=2_980_000, age_s=P.report_max_age_s + 1)
    assert view.guest.source == "probe"                # the old fallback, as before


def test_disagreeing_probe_never_lets_the_stale_report_shrink():
    view, status = _view(probe_usable=3_800_000)       # guest freed memory, publisher silent
    assert view.guest.source == "onegate" and not view.guest.shrink_ok
    assert view.guest.used_kib == 1_000_000
    assert status.reason == MOVED_REASON
    plan = _plan(view, allocated_kib=4_000_000)
    assert not [a for a in plan.actions if isinstance(a, Resize) and not a.is_grow]


def test_disagreeing_probe_may_grow_on_host_side_evidence():
    view, _ = _view(probe_usable=400_000)              # probe: used 3.6 GiB, report 1 GiB
    assert not view.guest.shrink_ok and view.guest.used_kib == 3_600_000
    plan = _plan(view, allocated_kib=3_000_000, nominal_kib=8_000_000)
    grows = [a for a in plan.actions if isinstance(a, Resize) and a.is_grow]
    assert grows and grows[0].to_kib >= 3_600_000


def test_agreeing_probe_lets_an_idle_vm_shrink():
    view, _ = _view(probe_usable=3_000_000)
    plan = _plan(view, allocated_kib=4_000_000)
    assert [a for a in plan.actions if isinstance(a, Resize) and not a.is_grow]


def _plan(view, allocated_kib, nominal_kib=4_000_000):
    from dataclasses import replace
    view = replace(view, allocated_kib=allocated_kib, nominal_kib=nominal_kib)
    host = HostView(host_id=0, name="h", physical_kib=64 * GIB, max_mem_kib=64 * GIB,
                    mem_usage_kib=allocated_kib)
    snapshot = Snapshot(now_s=NOW, hosts=(host,), vms=(view,))
    plan, _ = decide(snapshot, FleetHistory(), Decider(load_policy("default")),
                     max_report_age_s=P.stale_after_s)
    return plan


def test_a_fresh_report_is_raised_by_a_fresher_probe_within_the_deadband():
    # Review of issue-15w: the publisher stays quiet while used moves less than its deadband
    # (max(64 MiB, 2 % MemTotal): 320 MiB of a 16 GiB guest), more than the guards' 64 MiB
    # floor. A fresh report 400 MiB below the probe's fresh figure must not let the guards
    # shrink the VM below what it uses.
    total = 16 * GIB
    read = cloud([raw_vm(memory_mib=16384, memory_max_mib=16384,
                         user=guest(used=4 * GIB, total=total, seq=6))],
                 {1: probe(usable=total - 4 * GIB - 300 * 1024, available=total)})
    obs = observe(read, P, {(1, "onegate"): ReportMark("6", NOW - 30)}, NOW)
    view = obs.snapshot.vms[0]
    assert view.guest.source == "onegate" and view.report_problem is None
    assert view.guest.used_kib == 4 * GIB + 300 * 1024


def test_a_probe_without_its_stats_time_cannot_keep_a_report_current():
    # Without libvirt's last_update the probe's marker is monitord's TIMESTAMP, which moves
    # every probe run even when the guest's balloon statistics are frozen: no evidence that
    # the unchanged report is still true, so it is not kept current (no probe fallback).
    from dataclasses import replace as _replace
    from cvem import keys
    mon = probe(usable=2_980_000, available=4_000_000)
    del mon[keys.PROBE_STATS_TIME]
    mon["TIMESTAMP"] = str(int(NOW))
    read = cloud([raw_vm(user=guest(used=1_000_000, total=4_000_000, seq=5))], {1: mon})
    params = _replace(P, probe_fallback=False)
    marks = {(1, "onegate"): ReportMark("5", NOW - 1000),
             (1, "probe"): ReportMark(str(int(NOW - 60)), NOW - 60)}   # TIMESTAMP moved
    obs = observe(read, params, marks, NOW)
    view = obs.snapshot.vms[0]
    assert view.guest is None and "stale" in view.report_problem


def test_the_agreement_tolerance_comes_from_the_probe_not_the_guest():
    # A guest ballooned to 4 GiB of a 16 GiB VM writes MEM_TOTAL = 16 GiB in its
    # USER_TEMPLATE: the tolerance must stay 4 % of the MemTotal the probe sees (164 MiB),
    # not grow to 655 MiB on the guest's word and call a 500 MiB gap "agreeing".
    marks = {(1, "onegate"): ReportMark("5", NOW - 1000)}
    read = cloud([raw_vm(memory_mib=16384, memory_max_mib=16384,
                         user=guest(used=GIB, total=16 * GIB, seq=5))],
                 {1: probe(usable=4 * GIB - GIB - 500 * 1024, available=4 * GIB)})
    view = observe(read, P, marks, NOW).snapshot.vms[0]
    assert view.guest.source == "onegate" and not view.guest.shrink_ok
