"""Plain frozen dataclasses describing what cvem sees and what it decides.

Adapters (pyone/lxml for oned, the probes' MONITORING keys, OneGate USER_TEMPLATE) build a
:class:`Snapshot`; the core turns it into columns (:mod:`cvem.core.fleet`) and returns a
:class:`Plan` of actions. All sizes are KiB integers, all times Unix seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

KIB_PER_MIB = 1024
KIB_PER_GIB = 1024 * 1024


@dataclass(frozen=True)
class GuestReport:
    """Validated guest memory figures, from OneGate (preferred) or the host probe.

    ``used_kib`` is what the guest cannot give up without swapping
    (MemTotal - MemAvailable). ``sampled_at_s`` is on cvem's clock: when cvem first saw
    this report (a new sequence number), so a guest with a wrong clock cannot look fresh.
    """

    used_kib: int
    total_kib: int
    sampled_at_s: float
    source: str = "onegate"
    swap_used_kib: int = 0
    swap_in_kib_s: float = 0.0
    swap_out_kib_s: float = 0.0
    psi_some_avg10: Optional[float] = None
    psi_full_avg10: Optional[float] = None
    # False: an unchanged report the host probe's statistics no longer agree with; it may
    # grow the VM (used is the larger of the two), never shrink it
    shrink_ok: bool = True
    seq: Optional[int] = None


@dataclass(frozen=True)
class HostView:
    """One hypervisor as OpenNebula and the host probe describe it."""

    host_id: int
    name: str
    physical_kib: int          # real RAM (probe MemTotal, else HOST_SHARE/TOTAL_MEM)
    max_mem_kib: int           # HOST_SHARE/MAX_MEM: what the scheduler may allocate
    mem_usage_kib: int         # HOST_SHARE/MEM_USAGE: sum of allocated VM MEMORY
    physical_free_kib: Optional[int] = None  # monitored; safety only, never capacity
    reserve_kib: int = 0       # physical memory cloudvamp keeps free on the host
    cluster_id: int = 0
    enabled: bool = True       # MONITORED and not DISABLED/OFFLINE/ERROR
    live_resize: bool = True   # its VM_MAD resizes live: a possible migration target


@dataclass(frozen=True)
class VmView:
    """One managed VM."""

    vm_id: int
    host_id: int
    nominal_kib: int           # MEMORY_MAX: never grow above it
    allocated_kib: int         # MEMORY: current allocation (balloon target)
    guest: Optional[GuestReport] = None
    balloon_actual_kib: Optional[int] = None
    report_problem: Optional[str] = None  # why the guest report was rejected, if it was
    # balloon above the target cloudvamp set: the guest deflated it itself (deflate-on-OOM)
    self_deflated_kib: int = 0


@dataclass(frozen=True)
class Snapshot:
    now_s: float
    hosts: Tuple[HostView, ...]
    vms: Tuple[VmView, ...]


@dataclass(frozen=True)
class Resize:
    """Set a VM's memory allocation (``one.vm.resize`` MEMORY, in MiB on the wire)."""

    vm_id: int
    host_id: int
    from_kib: int
    to_kib: int
    reason: str
    phase: int = 0  # 0 grow into free room, 1 shrink, 2 grow into room shrinks freed

    @property
    def is_grow(self) -> bool:
        return self.to_kib > self.from_kib

    @property
    def action(self) -> str:
        return "grow" if self.is_grow else "shrink"


@dataclass(frozen=True)
class NeedsRoom:
    """A grow (or part of it) that does not fit on its host: overload protection's input."""

    vm_id: int
    host_id: int
    missing_kib: int
    urgent: bool
    reason: str


@dataclass(frozen=True)
class Migrate:
    vm_id: int
    from_host_id: int
    to_host_id: int
    reason: str
    phase: int = 3


@dataclass(frozen=True)
class Plan:
    """Ordered actions for one cycle: grows into free room, shrinks, grows after shrinks."""

    actions: Tuple[object, ...] = ()
    needs_room: Tuple[NeedsRoom, ...] = ()
    skipped: Tuple[Tuple[int, str], ...] = field(default=())

    def resizes(self):
        return tuple(a for a in self.actions if isinstance(a, Resize))
