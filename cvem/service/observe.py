"""From what oned says to what the core decides on: managed-VM selection and guest reports.

Every VM either becomes a :class:`~cvem.core.model.VmView` or is left alone with a reason
(:class:`VmStatus`, shown by ``cvem status``). Guest figures come from two untrusted
sources, validated here and combined as ``docs/guest-reports.md`` explains:

* the in-guest publisher's ``CLOUDVAMP_*`` keys in USER_TEMPLATE (OneGate) — preferred;
* the IM probe's balloon statistics in MONITORING (``used = available - usable``).

Freshness is judged on cvem's clock only: cvem remembers (in the state DB) when each
report's sequence number (OneGate ``CLOUDVAMP_SEQ``, probe ``CLOUDVAMP_STATS_TIME``) last
changed; a report that has not changed for ``stale_after_s`` is stale.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from .. import keys
from ..config import ServiceParams
from ..core.guest_signals import (REPORT_CORROBORATED, REPORT_MOVED, Corroboration,
                                  hold_shrinks, report_freshness)
from ..core.model import KIB_PER_MIB, GuestReport, HostView, Snapshot, VmView
from ..ports import CloudRead, RawHost, RawVm

LOG = logging.getLogger(__name__)

VM_STATE_NAMES = {0: "INIT", 1: "PENDING", 2: "HOLD", 3: "ACTIVE", 4: "STOPPED",
                  5: "SUSPENDED", 6: "DONE", 8: "POWEROFF", 9: "UNDEPLOYED", 10: "CLONING",
                  11: "CLONING_FAILURE"}
LCM_STATE_NAMES = {0: "LCM_INIT", 1: "PROLOG", 2: "BOOT", 3: "RUNNING", 4: "MIGRATE",
                   16: "UNKNOWN", 17: "HOTPLUG", 66: "HOTPLUG_RESIZE"}
HOST_STATE_NAMES = {0: "INIT", 1: "MONITORING_MONITORED", 2: "MONITORED", 3: "ERROR",
                    4: "DISABLED", 5: "MONITORING_ERROR", 6: "MONITORING_INIT",
                    7: "MONITORING_DISABLED", 8: "OFFLINE"}
HOST_UNUSABLE = (0, 3, 5, 6, 8)  # no trustworthy capacity: leave their VMs alone
OPT_OUT_VALUES = keys.OPT_OUT_VALUES

MAX_TEXT = 40          # longer values are not numbers a publisher sends
SLACK_KIB = 64 * 1024  # MemTotal may exceed MEMORY_MAX by kernel accounting noise


@dataclass(frozen=True)
class ReportMark:
    """When a report's sequence marker last changed, on cvem's clock (persisted)."""

    marker: str
    changed_at_s: float
    counter: float = math.nan     # probe: cumulative swap-in KiB at ``counter_at_s``
    counter_at_s: float = math.nan


@dataclass(frozen=True)
class VmStatus:
    vm_id: int
    name: str
    host_id: Optional[int]
    host_name: str
    state: str
    nominal_kib: Optional[int]
    allocated_kib: Optional[int]
    managed: bool
    reason: str                            # why not managed, or the guest data source
    guest_used_kib: Optional[int] = None
    guest_source: Optional[str] = None
    report_problem: Optional[str] = None
    self_deflated_kib: int = 0


@dataclass(frozen=True)
class Observation:
    snapshot: Snapshot
    statuses: Tuple[VmStatus, ...]
    raw_vms: Mapping[int, RawVm]
    raw_hosts: Mapping[int, RawHost]
    marks: Mapping[Tuple[int, str], ReportMark]
    lend_extra_kib: Mapping[int, int]      # host -> RESERVED_MEM cvem holds above the base


# ------------------------------------------------------------------------ numbers
class BadValue(ValueError):
    pass


def _number(attrs: Mapping[str, str], key: str, required: bool = True,
            integer: bool = True, upper: float = 1e15) -> Optional[float]:
    text = attrs.get(key)
    if text is None or text == "":
        if required:
            raise BadValue(f"{key} missing")
        return None
    if len(text) > MAX_TEXT:
        raise BadValue(f"{key} is not a number ({len(text)} characters)")
    try:
        value = float(text)
    except ValueError:
        raise BadValue(f"{key}={text[:20]!r} is not a number") from None
    if not math.isfinite(value):
        raise BadValue(f"{key}={text!r} is not finite")
    if value < 0:
        raise BadValue(f"{key}={text} is negative")
    if integer and value != int(value):
        raise BadValue(f"{key}={text} is not an integer")
    if value > upper:
        raise BadValue(f"{key}={text} is impossibly large")
    return value


def parse_reserved_kib(text: str, total_kib: int) -> Optional[int]:
    """RESERVED_MEM as oned reads it: KB, or a percentage of TOTAL_MEM; '' is 0;
    None when oned would ignore it (garbage)."""
    text = (text or "").strip()
    if not text:
        return 0
    try:
        if text.endswith("%"):
            return int(total_kib * float(text[:-1]) / 100.0)
        return int(text)
    except ValueError:
        return None


# ----------------------------------------------------------------- guest reports
def problem_kind(problem: Optional[str]) -> str:
    """A report problem without its figures ("OneGate report stale; probe statistics
    stale"): stable from cycle to cycle while the problem lasts, and free of the values a
    guest wrote, so it can be logged once and shown in ``CLOUDVAMP_REASON`` without
    rewriting it every cycle."""
    kinds = []
    for part in (problem or "").split("; "):
        cut = min([i for i in (part.find(":"), part.find(" (")) if i >= 0] or [len(part)])
        kinds.append(part[:cut].strip())
    return "; ".join(k for k in kinds if k) or "unknown"


def _mark(old: Optional[ReportMark], marker: str, now_s: float, first_seen_fresh: bool,
          stale_after_s: float) -> ReportMark:
    if old is not None and old.marker == marker:
        return old
    if old is None and not first_seen_fresh:
        # Never seen before and no trustworthy hint that it is recent: it counts as stale
        # until its marker changes under our eyes.
        return ReportMark(marker, now_s - stale_after_s - 1.0)
    return ReportMark(marker, now_s, old.counter if old else math.nan,
                      old.counter_at_s if old else math.nan)


def onegate_report(vm: RawVm, nominal_kib: int, old: Optional[ReportMark], now_s: float,
                   stale_after_s: float, ceiling_kib: Optional[int] = None,
                   keep_stale: bool = False):
    """(GuestReport or None, problem or None, new mark or None) from USER_TEMPLATE.

    ``ceiling_kib``: the largest MemTotal the guest can have (default: nominal; see
    :func:`memtotal_ceiling_kib`). ``keep_stale``: return a stale report too, with its
    problem, for :func:`corroborated_report` to judge against the probe."""
    ceiling = max(ceiling_kib or 0, nominal_kib)
    attrs = vm.user
    if keys.GUEST_SEQ not in attrs and keys.GUEST_MEM_USED_KIB not in attrs:
        return None, "no OneGate report", None
    try:
        seq = _number(attrs, keys.GUEST_SEQ)
        total = _number(attrs, keys.GUEST_MEM_TOTAL_KIB)
        used = _number(attrs, keys.GUEST_MEM_USED_KIB)
        avail = _number(attrs, keys.GUEST_MEM_AVAILABLE_KIB, required=False)
        swap = _number(attrs, keys.GUEST_SWAP_USED_KIB, required=False) or 0.0
        swap_in = _number(attrs, keys.GUEST_SWAP_IN_KIB_S, required=False, integer=False)
        swap_out = _number(attrs, keys.GUEST_SWAP_OUT_KIB_S, required=False, integer=False)
        psi_some = _number(attrs, keys.GUEST_PSI_SOME_AVG10, required=False, integer=False,
                           upper=100.0)
        psi_full = _number(attrs, keys.GUEST_PSI_FULL_AVG10, required=False, integer=False,
                           upper=100.0)
        guest_time = _number(attrs, keys.GUEST_TIME, required=False, integer=False)
        if total <= 0:
            raise BadValue(f"{keys.GUEST_MEM_TOTAL_KIB}=0")
        if used > total:
            raise BadValue(f"used {used:.0f} KiB > total {total:.0f} KiB")
        if total > ceiling + SLACK_KIB:
            raise BadValue(f"total {total:.0f} KiB > {_ceiling_name(ceiling, nominal_kib)}")
        if avail is not None:
            if avail > total:
                raise BadValue(f"available {avail:.0f} KiB > total {total:.0f} KiB")
            if abs(total - avail - used) > max(4096.0, 0.01 * total):
                raise BadValue(f"used {used:.0f} != total {total:.0f} - available {avail:.0f}")
    except BadValue as error:
        return None, f"OneGate report rejected: {error}", None
    first_fresh = guest_time is not None and abs(guest_time - now_s) <= stale_after_s
    mark = _mark(old, str(int(seq)), now_s, first_fresh, stale_after_s)
    age = now_s - mark.changed_at_s
    stale = None
    if age > stale_after_s:
        stale = f"OneGate report stale (CLOUDVAMP_SEQ={int(seq)} unchanged for " \
                f"{age:.0f} s > {stale_after_s:.0f} s)"
        if not keep_stale:
            return None, stale, mark
    report = GuestReport(
        used_kib=int(used), total_kib=int(total), sampled_at_s=mark.changed_at_s,
        source="onegate", swap_used_kib=int(swap), swap_in_kib_s=swap_in or 0.0,
        swap_out_kib_s=swap_out or 0.0, psi_some_avg10=psi_some, psi_full_avg10=psi_full,
        seq=int(seq))
    return report, stale, mark


MOVED_REASON = "onegate, unchanged while the probe's figures moved: no shrink"


def corroborated_report(report: Optional[GuestReport], problem: Optional[str],
                        probe: Optional[GuestReport], now_s: float, params: ServiceParams,
                        probe_timed: bool = True):
    """(report, problem): an unchanged OneGate report kept current by the probe.

    The publisher writes on change with a long heartbeat (each PUT is an oned write), so
    its report past ``stale_after_s`` is judged by :func:`report_freshness` against the
    probe's fresh balloon statistics (host-side, libvirt's ``last_update``). Agreeing, it
    stays current; moved away, it may grow the VM but never shrink it. Either way its used
    figure is the larger of the two, so the probe can only raise it, and its time is the
    probe's. The guest's report can never loosen anything: with no fresh probe statistics,
    or past ``report_max_age_s``, it is stale as before. ``probe_timed``: the probe's
    statistics carry libvirt's ``last_update``; without it the probe looks fresh at every
    run even when the guest's statistics are frozen, so it cannot keep a report current.

    A fresh report is raised to a fresh probe's used figure too: the publisher stays quiet
    while used moves less than its deadband (max(64 MiB, 2 % of MemTotal)), which can be
    more than the guards' floor above used.
    """
    if report is None:
        return report, problem
    if problem is None:
        if probe is not None and probe.used_kib > report.used_kib:
            return replace(report, used_kib=probe.used_kib), None
        return report, problem
    if not probe_timed:
        probe = None
    rules = Corroboration(agree_kib=params.report_agree_kib,
                          agree_ratio=params.report_agree_ratio,
                          max_age_s=params.report_max_age_s)
    verdict = report_freshness(now_s - report.sampled_at_s, params.stale_after_s,
                               probe is not None, report.used_kib,
                               probe.used_kib if probe else math.nan,
                               probe.total_kib if probe else 0, rules)
    if verdict not in (REPORT_CORROBORATED, REPORT_MOVED):
        return None, problem
    kept = replace(report, used_kib=max(report.used_kib, probe.used_kib),
                   sampled_at_s=probe.sampled_at_s,
                   swap_in_kib_s=max(report.swap_in_kib_s, probe.swap_in_kib_s),
                   shrink_ok=not hold_shrinks(verdict))
    return kept, None


def memtotal_ceiling_kib(mon: Mapping[str, str], nominal_kib: int) -> int:
    """The largest MemTotal a guest can show: its nominal size, or, when its balloon deflates
    on OOM (the balloon stays inside MemTotal), the domain's maxMemory from the probe."""
    if mon.get(keys.PROBE_AUTODEFLATE) != "1":
        return nominal_kib
    try:
        maximum = _number(mon, keys.PROBE_MAX_KIB, required=False)
    except BadValue:
        return nominal_kib
    return max(int(maximum or 0), nominal_kib)


def _ceiling_name(ceiling_kib: int, nominal_kib: int) -> str:
    if ceiling_kib == nominal_kib:
        return f"nominal {nominal_kib} KiB"
    return f"maxMemory {ceiling_kib} KiB (deflate-on-OOM)"


def probe_report(vm_id: int, mon: Mapping[str, str], nominal_kib: int,
                 old: Optional[ReportMark], now_s: float, stale_after_s: float):
    """(GuestReport or None, problem or None, new mark or None, balloon_actual_kib)."""
    ceiling = memtotal_ceiling_kib(mon or {}, nominal_kib)
    if not mon or keys.PROBE_AVAILABLE_KIB not in mon:
        actual = None
        try:
            actual = _number(mon or {}, keys.PROBE_BALLOON_ACTUAL_KIB, required=False)
        except BadValue:
            pass
        return None, "no balloon statistics from the probe", None, \
            int(actual) if actual is not None else None
    try:
        actual = _number(mon, keys.PROBE_BALLOON_ACTUAL_KIB, required=False)
        available = _number(mon, keys.PROBE_AVAILABLE_KIB)   # guest MemTotal
        usable = _number(mon, keys.PROBE_USABLE_KIB)         # guest MemAvailable
        stats_time = _number(mon, keys.PROBE_STATS_TIME, required=False, integer=False)
        swap_in_total = _number(mon, keys.PROBE_SWAP_IN_KIB, required=False)
        if available <= 0:
            raise BadValue(f"{keys.PROBE_AVAILABLE_KIB}=0")
        if usable > available:
            raise BadValue(f"usable {usable:.0f} KiB > available {available:.0f} KiB")
        if available > ceiling + SLACK_KIB:
            raise BadValue(f"available {available:.0f} KiB > {_ceiling_name(ceiling, nominal_kib)}")
    except BadValue as error:
        return None, f"probe figures rejected: {error}", None, None
    marker = str(stats_time if stats_time is not None else mon.get("TIMESTAMP", ""))
    first_fresh = stats_time is not None and abs(stats_time - now_s) <= stale_after_s
    mark = _mark(old, marker, now_s, first_fresh, stale_after_s)
    swap_rate = 0.0
    if swap_in_total is not None and stats_time is not None:
        if math.isfinite(mark.counter) and stats_time > mark.counter_at_s \
                and swap_in_total >= mark.counter:
            swap_rate = (swap_in_total - mark.counter) / (stats_time - mark.counter_at_s)
        if mark.changed_at_s == now_s or not math.isfinite(mark.counter):
            mark = replace(mark, counter=swap_in_total, counter_at_s=stats_time)
    balloon = int(actual) if actual is not None else None
    age = now_s - mark.changed_at_s
    if age > stale_after_s:
        return None, f"probe statistics stale (unchanged for {age:.0f} s)", mark, balloon
    used = available - usable
    report = GuestReport(used_kib=int(used), total_kib=int(available),
                         sampled_at_s=mark.changed_at_s, source="probe",
                         swap_in_kib_s=swap_rate)
    return report, None, mark, balloon


SELF_DEFLATED_MIN_KIB = 4 * 1024  # below this, balloon rounding noise


def self_deflated_kib(mon: Mapping[str, str], allocated_kib: Optional[int]) -> int:
    """KiB the guest took back from its balloon itself (deflate-on-OOM), from the probe.

    Only counted when the target the probe saw (recorded by the resize action) is the VM's
    MEMORY now: a sample older than cvem's last resize would read a shrink as a deflation.
    """
    try:
        deflated = _number(mon, keys.PROBE_SELF_DEFLATED_KIB, required=False)
        target = _number(mon, keys.PROBE_BALLOON_TARGET_KIB, required=False)
    except BadValue:
        return 0
    if deflated is None or target is None or target != allocated_kib:
        return 0
    return int(deflated) if deflated >= SELF_DEFLATED_MIN_KIB else 0


def balloon_in_guest_total_kib(mon: Mapping[str, str]) -> int:
    """KiB of balloon the guest still counts as its own memory.

    A guest whose balloon may deflate on OOM does not take the balloon out of MemTotal (it
    can take those pages back at any time), so MemTotal - MemAvailable, the used figure of
    both the publisher and the probe, includes the whole balloon. Measured in the lab: a
    512 MiB guest ballooned to 192 MiB shows MemTotal 468544 kB with deflate-on-OOM and
    140864 kB without.
    """
    if mon.get(keys.PROBE_AUTODEFLATE) != "1":
        return 0
    try:
        actual = _number(mon, keys.PROBE_BALLOON_ACTUAL_KIB, required=False)
        maximum = _number(mon, keys.PROBE_MAX_KIB, required=False)
    except BadValue:
        return 0
    if actual is None or maximum is None:
        return 0
    return int(max(maximum - actual, 0))


BALLOON_SETTLING = ("balloon settling: the guest's figures predate its balloon's last "
                    "size (deflate-on-OOM)")
BALLOON_SOURCE = "balloon"   # marks key: the balloon size cvem last saw and since when


def balloon_mark(mon: Mapping[str, str], old: Optional[ReportMark],
                 now_s: float) -> Optional[ReportMark]:
    """The balloon size of a deflate-on-OOM guest and when cvem first saw it.

    ``marker`` is the balloon's actual KiB, ``changed_at_s`` cvem's clock and
    ``counter_at_s`` the probe's statistics time (the host's clock) in the first record
    that showed that size. None when the balloon is not counted in the guest's figures.
    """
    if mon.get(keys.PROBE_AUTODEFLATE) != "1":
        return None
    try:
        actual = _number(mon, keys.PROBE_BALLOON_ACTUAL_KIB, required=False)
        stats_time = _number(mon, keys.PROBE_STATS_TIME, required=False, integer=False)
    except BadValue:
        return None
    if actual is None:
        return None
    marker = str(int(actual))
    if old is not None and old.marker == marker:
        if math.isnan(old.counter_at_s) and stats_time is not None:
            return ReportMark(marker, now_s, counter_at_s=stats_time)   # settle from now
        return old
    return ReportMark(marker, now_s, counter_at_s=stats_time if stats_time is not None
                      else math.nan)


def balloon_settled(guest: GuestReport, mon: Mapping[str, str], mark: ReportMark,
                    old: Optional[ReportMark]) -> bool:
    """The guest's figures were taken with the balloon at the size the probe reports.

    The probe's balloon size is read live, the guest's statistics are up to a stats period
    older (OneGate reports up to a publish period): right after a resize the correction by
    :func:`balloon_in_guest_total_kib` would use the new size on figures of the old one,
    understating use after a shrink (an unsafe shrink, then a false rise the policy learns
    and grows for) and overstating it after a grow. Trust the correction only for figures
    sampled after the record that first showed this size: statistics newer than that
    record's (the host's clock), or a OneGate report that changed after cvem first saw it.
    A size cvem sees for the first time (a resize, a restart) is not settled yet.
    """
    if old is None or old.marker != mark.marker:
        return False
    if guest.source == "probe":
        try:
            stats_time = _number(mon, keys.PROBE_STATS_TIME, required=False, integer=False)
        except BadValue:
            return False
        return stats_time is not None and stats_time > mark.counter_at_s
    return guest.sampled_at_s > mark.changed_at_s


# ------------------------------------------------------------------------ selection
def why_unmanaged(vm: RawVm, host: Optional[RawHost], params: ServiceParams,
                  in_flight: bool) -> Optional[str]:
    if vm.state != 3:
        return f"not running (state {VM_STATE_NAMES.get(vm.state, vm.state)})"
    if vm.lcm_state != 3:
        if vm.lcm_state == 66:
            return "resize in progress (HOTPLUG_RESIZE)"
        return f"not running (LCM state {LCM_STATE_NAMES.get(vm.lcm_state, vm.lcm_state)})"
    if vm.opt_out.strip().upper() in OPT_OUT_VALUES:
        return f"opted out ({keys.OPT_OUT}=\"{vm.opt_out}\")"
    if vm.memory_max_mib is None:
        return "no MEMORY_MAX in the VM template"
    if vm.memory_mib is None or vm.memory_mib <= 0:
        return "no valid MEMORY in the VM template"
    if vm.resize_mode == "HOTPLUG":
        return "MEMORY_RESIZE_MODE=HOTPLUG (only BALLOONING is managed)"
    if host is None:
        return f"host {vm.host_id} unknown"
    vm_mad = vm.vm_mad or host.vm_mad
    if vm_mad not in params.vm_mads:
        return f"VM_MAD {vm_mad!r} has no live resize (live_resize_vm_mads)"
    if host.state in HOST_UNUSABLE:
        return f"host {host.name} in state {HOST_STATE_NAMES.get(host.state, host.state)}"
    outside = outside_filters(vm, host, params)
    if outside:
        return outside
    if in_flight:
        return "previous resize still in flight"
    return None


def outside_filters(vm: RawVm, host: Optional[RawHost], params: ServiceParams) -> Optional[str]:
    """Why the VM is outside cvem's users/groups/clusters filters, or None."""
    users, groups, clusters = params.user_filter, params.group_filter, params.cluster_filter
    if users and vm.uname not in users and str(vm.uid) not in users:
        return f"user {vm.uname} not in the users filter"
    if groups and vm.gname not in groups and str(vm.gid) not in groups:
        return f"group {vm.gname} not in the groups filter"
    if clusters and (host is None or host.cluster_id not in clusters):
        return f"cluster {host.cluster_id if host else None} not in the clusters filter"
    return None


def build_host_view(host: RawHost, params: ServiceParams, now_s: float):
    """(HostView, cvem's extra reservation in KiB) for one host."""
    extra = 0
    base_text = host.template.get(keys.HOST_BASE_RESERVED_MEM, "")
    if base_text:
        base = parse_reserved_kib("" if base_text == "UNSET" else base_text,
                                  host.total_mem_kib)
        current = parse_reserved_kib(host.reserved_mem, host.total_mem_kib)
        if base is not None and current is not None:
            extra = current - base   # negative: memory lent beyond the base
    physical = host.total_mem_kib
    free = None
    try:
        probe_total = _number(host.template, keys.HOST_MEM_TOTAL_KIB, required=False)
        probe_avail = _number(host.template, keys.HOST_MEM_AVAILABLE_KIB, required=False)
        probe_time = _number(host.template, keys.HOST_PROBE_TIME, required=False,
                             integer=False)
        if probe_total:
            physical = int(probe_total)
        if probe_avail is not None and probe_time is not None \
                and abs(now_s - probe_time) <= params.host_probe_max_age_s:
            free = int(probe_avail)
    except BadValue as error:
        LOG.debug("host %d: ignoring probe figures: %s", host.host_id, error)
    view = HostView(host_id=host.host_id, name=host.name, physical_kib=physical,
                    max_mem_kib=host.max_mem_kib + extra, mem_usage_kib=host.mem_usage_kib,
                    physical_free_kib=free, reserve_kib=params.host_reserve_kib,
                    cluster_id=host.cluster_id, enabled=host.state not in HOST_UNUSABLE,
                    live_resize=host_is_managed(host, params))
    return view, extra


def host_is_managed(host: RawHost, params: ServiceParams) -> bool:
    """cvem resizes VMs on this host: its VM_MAD resizes live and it passes the filters."""
    clusters = params.cluster_filter
    return host.vm_mad in params.vm_mads and (not clusters or host.cluster_id in clusters)


def observe(read: CloudRead, params: ServiceParams, marks: Mapping[Tuple[int, str], ReportMark],
            now_s: float, in_flight: Iterable[int] = (),
            migrating: Optional[Mapping[int, int]] = None,
            nominal_kib: Optional[Mapping[int, int]] = None,
            held_back: Optional[Mapping[int, str]] = None,
            drs_moving: Iterable[int] = ()) -> Observation:
    """``in_flight``: VMs whose resize is still settling; ``migrating``: VM -> target host of
    the live migrations in flight (never resized while they move); ``nominal_kib``: each
    VM's nominal size (:mod:`cvem.service.nominal`, always given by the service; None, for
    tests and benchmarks of a VM shrunk from its ceiling: the larger of MEMORY and MEMORY_MAX);
    ``held_back``: VM -> why it is left alone for now (a resize back-off); ``drs_moving``:
    VMs in a OneDRS plan that is waiting or applying (left to OneDRS)."""
    migrating = migrating or {}
    held_back = held_back or {}
    drs_moving = frozenset(drs_moving)
    hosts = {h.host_id: h for h in read.hosts}
    host_views: List[HostView] = []
    lend_extra: Dict[int, int] = {}
    for h in read.hosts:
        view, extra = build_host_view(h, params, now_s)
        host_views.append(view)
        lend_extra[h.host_id] = extra
    in_flight = set(in_flight)
    new_marks: Dict[Tuple[int, str], ReportMark] = {}
    views: List[VmView] = []
    statuses: List[VmStatus] = []
    raw_vms = {}
    for vm in sorted(read.vms, key=lambda v: v.vm_id):
        raw_vms[vm.vm_id] = vm
        host = hosts.get(vm.host_id) if vm.host_id is not None else None
        state = LCM_STATE_NAMES.get(vm.lcm_state, str(vm.lcm_state)) if vm.state == 3 \
            else VM_STATE_NAMES.get(vm.state, str(vm.state))
        allocated = vm.memory_mib * KIB_PER_MIB if vm.memory_mib else None
        if nominal_kib is None:   # not from the service: a VM shrunk from its MEMORY_MAX
            nominal = max(vm.memory_max_mib or 0, vm.memory_mib or 0) * KIB_PER_MIB or None
        else:
            nominal = nominal_kib.get(vm.vm_id)
        if vm.vm_id in migrating:
            reason = f"migration in flight to host {migrating[vm.vm_id]}"
        elif vm.vm_id in drs_moving:
            reason = "OneDRS plan in flight"
        else:
            reason = why_unmanaged(vm, host, params, vm.vm_id in in_flight)
            if reason is None and vm.vm_id in held_back:
                reason = held_back[vm.vm_id]
            elif reason is None and not nominal:
                reason = "nominal size not established yet (history look-up next cycle)"
        # Keep freshness marks of every VM that still exists (a VM paused for a while must
        # not look fresh when it comes back).
        for source in ("onegate", "probe", BALLOON_SOURCE):
            old = marks.get((vm.vm_id, source))
            if old is not None:
                new_marks[(vm.vm_id, source)] = old
        if reason is not None:
            statuses.append(VmStatus(vm.vm_id, vm.name, vm.host_id, vm.host_name, state,
                                     nominal, allocated, False, reason))
            continue
        mon = read.monitoring.get(vm.vm_id, {})
        guest, problem, mark = onegate_report(vm, nominal, marks.get((vm.vm_id, "onegate")),
                                              now_s, params.stale_after_s,
                                              memtotal_ceiling_kib(mon, nominal),
                                              keep_stale=True)
        if mark is not None:
            new_marks[(vm.vm_id, "onegate")] = mark
        p_guest, p_problem, p_mark, balloon = probe_report(
            vm.vm_id, read.monitoring.get(vm.vm_id, {}), nominal,
            marks.get((vm.vm_id, "probe")), now_s, params.stale_after_s)
        if p_mark is not None:
            new_marks[(vm.vm_id, "probe")] = p_mark
        guest, problem = corroborated_report(guest, problem, p_guest, now_s, params,
                                             keys.PROBE_STATS_TIME in mon)
        if guest is None and params.probe_fallback and p_guest is not None:
            guest, problem = p_guest, None
        elif guest is None:
            problem = f"{problem}; {p_problem}" if params.probe_fallback else problem
        counted = balloon_in_guest_total_kib(mon)
        old_balloon = marks.get((vm.vm_id, BALLOON_SOURCE))
        b_mark = balloon_mark(mon, old_balloon, now_s)
        if b_mark is not None:
            new_marks[(vm.vm_id, BALLOON_SOURCE)] = b_mark
        deflated = self_deflated_kib(mon, allocated) if p_guest is not None else 0
        # A guest deflating its balloon itself lacks memory: never held back (its use can
        # only be overstated then, which grows it, as its pressure asks anyway).
        # Also with an empty balloon now: figures from before a grow still count the old one.
        if guest is not None and b_mark is not None and not deflated \
                and not balloon_settled(guest, mon, b_mark, old_balloon):
            statuses.append(VmStatus(vm.vm_id, vm.name, vm.host_id, vm.host_name, state,
                                     nominal, allocated, False, BALLOON_SETTLING))
            continue
        if guest is not None and counted:
            used = max(guest.used_kib - counted, 0)
            guest = replace(guest, used_kib=used, total_kib=max(guest.total_kib - counted, used, 1))
        views.append(VmView(vm_id=vm.vm_id, host_id=vm.host_id, nominal_kib=nominal,
                            allocated_kib=allocated, guest=guest, balloon_actual_kib=balloon,
                            report_problem=problem, self_deflated_kib=deflated))
        reason = guest.source if guest else f"no usable guest report: {problem_kind(problem)}"
        if guest is not None and not guest.shrink_ok:
            reason = MOVED_REASON
        if deflated:  # no figure here: the reason is a metric label and a VM attribute
            reason += "; guest deflated its balloon itself (deflate-on-OOM): pressure"
        statuses.append(VmStatus(
            vm.vm_id, vm.name, vm.host_id, vm.host_name, state, nominal, allocated, True,
            reason, guest_used_kib=guest.used_kib if guest else None,
            guest_source=guest.source if guest else None, report_problem=problem,
            self_deflated_kib=deflated))
    snapshot = Snapshot(now_s=now_s, hosts=tuple(host_views), vms=tuple(views))
    return Observation(snapshot=snapshot, statuses=tuple(statuses), raw_vms=raw_vms,
                       raw_hosts=hosts, marks=new_marks, lend_extra_kib=lend_extra)
