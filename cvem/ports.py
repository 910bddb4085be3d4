"""The ports between cvem's service and the outside world (``typing.Protocol``s), and the
plain records that cross them.

The real adapter is :class:`cvem.adapters.one.OneCloud` (pyone + lxml over XML-RPC); the
tests drive the same service through a fake oned over real XML-RPC, so the service never
knows which it talks to. Records hold what oned says, unvalidated and in oned's units
(MEMORY in MiB, host figures in KiB); :mod:`cvem.service.observe` turns them into the
core's :class:`~cvem.core.model.Snapshot` and decides which VMs are managed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Protocol, Sequence

from .errors import ActionFailed, AdapterError


@dataclass(frozen=True)
class RawVm:
    """One VM as ``one.vmpool.infoextended`` / ``one.vm.info`` describe it."""

    vm_id: int
    name: str
    uid: int
    gid: int
    uname: str
    gname: str
    state: int
    lcm_state: int
    memory_mib: Optional[int]          # TEMPLATE/MEMORY (None: missing or malformed)
    memory_max_mib: Optional[int]      # TEMPLATE/MEMORY_MAX
    resize_mode: str                   # TEMPLATE/MEMORY_RESIZE_MODE ('' = BALLOONING)
    host_id: Optional[int]             # last HISTORY/HID
    host_name: str
    vm_mad: str                        # last HISTORY/VM_MAD
    cluster_id: Optional[int]          # last HISTORY/CID
    opt_out: str = ""                  # CLOUDVAMP: the strictest of TEMPLATE, CONTEXT, USER_TEMPLATE
    user: Mapping[str, str] = field(default_factory=dict)     # USER_TEMPLATE CLOUDVAMP_*
    monitoring: Mapping[str, str] = field(default_factory=dict)  # MONITORING (vm.info only)


@dataclass(frozen=True)
class RawHost:
    host_id: int
    name: str
    state: int
    vm_mad: str
    im_mad: str
    cluster_id: int
    total_mem_kib: int
    max_mem_kib: int
    mem_usage_kib: int
    reserved_mem: str                  # TEMPLATE/RESERVED_MEM as written ('' if absent)
    template: Mapping[str, str] = field(default_factory=dict)  # CLOUDVAMP_* keys of TEMPLATE
    free_memory_kib: Optional[int] = None  # MONITORING/CAPACITY/FREE_MEMORY (may be stale)


@dataclass(frozen=True)
class CloudRead:
    """Everything one cycle reads from oned."""

    vms: Sequence[RawVm]
    hosts: Sequence[RawHost]
    monitoring: Mapping[int, Mapping[str, str]]   # vm_id -> last MONITORING record
    timings_s: Dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------- failures
class Unreachable(AdapterError):
    """oned did not answer (connection refused, timeout, HTTP error): retry later."""


class AuthFailed(AdapterError):
    """oned refused the session (code 256): stop the cycle, back off, tell the operator."""


class OneCallFailed(ActionFailed):
    """oned answered an action with an error reply. ``kind`` classifies it:

    ``busy`` (state HOTPLUG_RESIZE/MIGRATE...: retry next cycle), ``state`` (another state
    that forbids the action), ``no_room`` (fit test failed), ``missing`` (no such object),
    ``unsupported`` (driver without live resize), ``authorization``, ``api``, ``internal``.
    """

    def __init__(self, message: str, code: int, kind: str):
        super().__init__(message)
        self.message, self.code, self.kind = message, code, kind


TRANSIENT_LCM_NAMES = ("HOTPLUG_RESIZE", "MIGRATE", "HOTPLUG", "HOTPLUG_SNAPSHOT",
                       "HOTPLUG_NIC", "HOTPLUG_SAVEAS", "DISK_SNAPSHOT", "DISK_RESIZE",
                       "BOOT", "PROLOG_MIGRATE", "SAVE_MIGRATE")


def classify_failure(message: str, code: int) -> str:
    """Map an oned error reply (text, code) to a :class:`OneCallFailed` kind."""
    if code == 0x0400:
        return "missing"
    if code == 0x0200:
        return "authorization"
    if code == 0x1000:
        return "api"
    if code == 0x2000:
        return "internal"
    if "Not enough memory" in message or "does not fit" in message:
        return "no_room"
    if "not supported by driver" in message:
        return "unsupported"
    if "in state " in message or "for state " in message:
        state = message.rsplit(" ", 1)[-1].strip(". ")
        return "busy" if state in TRANSIENT_LCM_NAMES else "state"
    return "state" if code == 0x0800 else "internal"


# -------------------------------------------------------------------------- ports
class ClusterReader(Protocol):
    def read_cloud(self) -> CloudRead:
        """The VM pool (full bodies), the host pool and the last monitoring records."""

    def vm_info(self, vm_id: int) -> RawVm:
        """One VM, fresh (raises OneCallFailed kind ``missing`` if it is gone)."""


class MemoryActuator(Protocol):
    def resize_memory(self, vm_id: int, memory_mib: int, enforce: bool) -> None:
        """``one.vm.resize(id, "MEMORY=<MiB>", enforce)``."""

    def update_vm_attributes(self, vm_id: int, attrs: Mapping[str, str]) -> None:
        """Merge-mode ``one.vm.update(id, attrs, 1)`` of USER_TEMPLATE."""


class HostTuner(Protocol):
    def update_host_attributes(self, host_id: int, attrs: Mapping[str, str]) -> None:
        """Merge-mode ``one.host.update(id, attrs, 1)`` of the host TEMPLATE."""


class Migrator(Protocol):
    def migrate(self, vm_id: int, host_id: int, live: bool = True,
                enforce: bool = True) -> None:
        """``one.vm.migrate(id, host, live, enforce, -1, 0)`` (asynchronous)."""


class Cloud(ClusterReader, MemoryActuator, HostTuner, Migrator, Protocol):
    """Everything the service needs from OpenNebula."""
