"""What the last cycle saw and did, as plain frozen records for the metrics and the page.

:func:`cycle_view` turns the service's :class:`~cvem.service.runner.CycleReport` into a
:class:`CycleView` (bytes, not KiB: Prometheus' base unit). A new view replaces the old one
whole, so a VM or host that is gone disappears from every series at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..core.model import Resize

BYTES_PER_KIB = 1024


def _bytes(kib: Optional[int]) -> Optional[int]:
    return None if kib is None else int(kib) * BYTES_PER_KIB


@dataclass(frozen=True)
class HostRow:
    host_id: int
    name: str
    state: int
    physical_bytes: int
    max_mem_bytes: int
    allocated_bytes: int        # HOST_SHARE/MEM_USAGE after this cycle's resizes
    reclaimed_bytes: int        # sum of (MEMORY_MAX - MEMORY) of the VMs cvem manages
    held_back_bytes: int        # RESERVED_MEM cvem holds above the base (lend factor)
    needs_room_bytes: int       # grows that did not fit this cycle

    @property
    def lent_bytes(self) -> int:
        """Reclaimed memory the scheduler may place other VMs in."""
        return max(self.reclaimed_bytes - self.held_back_bytes, 0)


@dataclass(frozen=True)
class VmRow:
    vm_id: int
    name: str
    host_id: Optional[int]
    state: str
    nominal_bytes: Optional[int]
    current_bytes: Optional[int]    # MEMORY after this cycle's resizes
    guest_used_bytes: Optional[int]
    target_bytes: Optional[int]     # this cycle's planned size, else the current one
    managed: bool
    reason: str
    report_state: str               # fresh | stale | invalid | missing | unmanaged


@dataclass(frozen=True)
class ActionRow:
    at_s: float
    vm_id: int
    host_id: int
    kind: str                       # grow | shrink | migrate
    result: str                     # applied | skipped | failed | deferred | needs_room | issued
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class CycleView:
    at_s: float
    hosts: Tuple[HostRow, ...]
    vms: Tuple[VmRow, ...]
    actions: Tuple[ActionRow, ...]
    timings_s: Dict[str, float]
    migrations_in_flight: int
    dry_run: bool

    @property
    def reclaimed_bytes(self) -> int:
        return sum(h.reclaimed_bytes for h in self.hosts)


def report_state(status) -> str:
    if not status.managed:
        return "unmanaged"
    if status.guest_source:
        return "fresh"
    problem = status.report_problem or ""
    if "stale" in problem:
        return "stale"
    if problem and "missing" not in problem:
        return "invalid"
    return "missing"


def _action_rows(report) -> Tuple[ActionRow, ...]:
    result = report.result
    if result is None:
        return ()
    at = report.now_s
    rows = [ActionRow(at, a.vm_id, a.host_id, a.action, "applied", a.reason)
            for a in result.applied]
    rows += [ActionRow(at, a.vm_id, a.host_id, a.action, "skipped", a.reason, why)
             for a, why in result.skipped]
    rows += [ActionRow(at, a.vm_id, a.host_id, a.action, "failed", a.reason, why)
             for a, why in result.failed]
    rows += [ActionRow(at, a.vm_id, a.host_id, a.action, "deferred", a.reason)
             for a in result.deferred]
    rows += [ActionRow(at, n.vm_id, n.host_id, "grow", "needs_room", n.reason)
             for n in report.plan.needs_room + tuple(result.needs_room)]
    rows += [ActionRow(at, o.action.vm_id, o.action.from_host_id, "migrate", o.status,
                       o.action.reason, f"to host {o.action.to_host_id} {o.message}".strip())
             for o in result.migrations]
    return tuple(rows)


def cycle_view(report) -> CycleView:
    obs = report.observation
    applied: Dict[int, int] = {}
    if report.result is not None:
        applied = {a.vm_id: a.to_kib // 1024 for a in report.result.applied}
    reclaimed: Dict[int, int] = {}
    for st in obs.statuses:   # what cvem took: only the VMs it manages count
        if st.managed and st.nominal_kib and st.host_id is not None:
            now_kib = applied.get(st.vm_id, (st.allocated_kib or 0) // 1024) * 1024
            reclaimed[st.host_id] = reclaimed.get(st.host_id, 0) + max(
                st.nominal_kib - now_kib, 0)
    usage_delta: Dict[int, int] = {}
    for vm_id, mib in applied.items():
        raw = obs.raw_vms[vm_id]
        if raw.host_id is not None and raw.memory_mib:
            usage_delta[raw.host_id] = usage_delta.get(raw.host_id, 0) + (mib - raw.memory_mib)
    missing: Dict[int, int] = {}
    for need in report.plan.needs_room + (tuple(report.result.needs_room)
                                          if report.result else ()):
        missing[need.host_id] = missing.get(need.host_id, 0) + need.missing_kib
    views = {h.host_id: h for h in obs.snapshot.hosts}
    hosts = tuple(HostRow(
        host_id=h.host_id, name=h.name, state=h.state,
        physical_bytes=_bytes(views[h.host_id].physical_kib if h.host_id in views
                              else h.total_mem_kib),
        max_mem_bytes=_bytes(h.max_mem_kib),
        allocated_bytes=_bytes(h.mem_usage_kib + usage_delta.get(h.host_id, 0) * 1024),
        reclaimed_bytes=_bytes(reclaimed.get(h.host_id, 0)),
        held_back_bytes=_bytes(obs.lend_extra_kib.get(h.host_id, 0)),
        needs_room_bytes=_bytes(missing.get(h.host_id, 0)))
        for h in sorted(obs.raw_hosts.values(), key=lambda h: h.host_id))
    planned = {a.vm_id: a.to_kib for a in report.plan.actions if isinstance(a, Resize)}
    vms = tuple(VmRow(
        vm_id=s.vm_id, name=s.name, host_id=s.host_id, state=s.state,
        nominal_bytes=_bytes(s.nominal_kib),
        current_bytes=_bytes(applied[s.vm_id] * 1024 if s.vm_id in applied
                             else s.allocated_kib),
        guest_used_bytes=_bytes(s.guest_used_kib),
        target_bytes=_bytes(planned.get(s.vm_id, s.allocated_kib)),
        managed=s.managed, reason=s.reason, report_state=report_state(s))
        for s in obs.statuses)
    return CycleView(at_s=report.now_s, hosts=hosts, vms=vms, actions=_action_rows(report),
                     timings_s=dict(report.timings_s),
                     migrations_in_flight=len(report.migrations_in_flight),
                     dry_run=report.dry_run)
