"""Lending: set each managed host's ``RESERVED_MEM`` from the chosen lending strategy.

Live ``one.vm.resize`` shrinks already lower a host's ``MEM_USAGE``, so with the strategy
``none`` every byte resizing frees is schedulable and cvem leaves ``RESERVED_MEM`` alone.
Any other strategy (:mod:`cvem.lending`) decides per host how much the managed VMs will use
(``used``), and cvem writes (merge-mode ``one.host.update``; ``MAX_MEM`` follows at once)

    RESERVED_MEM = base + used − allocated        (cvem.lending.target)

so the scheduler sees ``capacity − used`` free whatever the VMs' current sizes. Negative
values lend memory beyond what resizing freed (``MAX_MEM`` > physical); values above the
base hold memory back for grows (``fixed``, the old ``lend_ratio``).

``base`` is the administrator's own value, kept in ``CLOUDVAMP_BASE_RESERVED_MEM`` the first
time cvem manages the host (``UNSET`` when the host had none). Only hosts with at least one
managed VM are touched, and only managed VMs enter ``used`` and ``allocated``: unmanaged VMs
keep their whole ``MEMORY`` in ``MEM_USAGE``. A host that loses its last managed VM, or the
strategy ``none``, gets its base value back once.

Order within a cycle: before grows ``RESERVED_MEM`` is lowered by the grows planned on the
host (so oned's enforced resize accepts them); after the applier it is set to the target,
written only when it moved by ``min_change_kib`` or more (no flapping, few writes).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

from .. import keys
from ..core.model import KIB_PER_MIB
from ..lending.base import HostNow
from ..lending.target import reserved_target_kib
from ..lending.tracker import LendTracker
from ..ports import RawHost
from .observe import Observation, parse_reserved_kib

LOG = logging.getLogger(__name__)
UNSET = "UNSET"


def reclaimed_kib_by_host(statuses, allocated_mib: Optional[Mapping[int, int]] = None
                          ) -> Dict[int, int]:
    """Σ (nominal − MEMORY) per host over the *managed* VMs (``observe.VmStatus``; nominal
    is the size the owner chose, never MEMORY_MAX), for ``cvem status``."""
    out: Dict[int, int] = {}
    allocated_mib = allocated_mib or {}
    for st in statuses:
        if not st.managed or st.host_id is None or not st.nominal_kib or not st.allocated_kib:
            continue
        kib = allocated_mib.get(st.vm_id, st.allocated_kib // KIB_PER_MIB) * KIB_PER_MIB
        out[st.host_id] = out.get(st.host_id, 0) + max(st.nominal_kib - kib, 0)
    return out


def base_text(host: RawHost) -> str:
    """The administrator's RESERVED_MEM: kept aside by cvem, else the current value."""
    return host.template.get(keys.HOST_BASE_RESERVED_MEM, "").strip() \
        or host.reserved_mem.strip() or UNSET


def base_kib(host: RawHost) -> Optional[int]:
    text = base_text(host)
    return parse_reserved_kib("" if text == UNSET else text, host.total_mem_kib)


@dataclass(frozen=True)
class ManagedLoad:
    """The managed VMs of one cycle, as the tracker and the targets need them."""

    vm_host: Mapping[int, int]
    vm_used_kib: Mapping[int, float]
    hosts: Mapping[int, HostNow]


def managed_load(obs: Observation, allocated_mib: Optional[Mapping[int, int]] = None
                 ) -> ManagedLoad:
    """Managed VMs per host; a VM without a usable report counts at its allocation."""
    allocated_mib = allocated_mib or {}
    vm_host: Dict[int, int] = {}
    used: Dict[int, float] = {}
    nominal: Dict[int, Dict[int, float]] = {}
    allocated: Dict[int, float] = {}
    for st in obs.statuses:
        if not st.managed or st.host_id is None or st.host_id not in obs.raw_hosts \
                or not st.nominal_kib or not st.allocated_kib:
            continue
        alloc = allocated_mib.get(st.vm_id, st.allocated_kib // KIB_PER_MIB) * KIB_PER_MIB
        vm_host[st.vm_id] = st.host_id
        used[st.vm_id] = float(st.guest_used_kib if st.guest_used_kib is not None else alloc)
        nominal.setdefault(st.host_id, {})[st.vm_id] = float(st.nominal_kib)
        allocated[st.host_id] = allocated.get(st.host_id, 0.0) + alloc
    hosts: Dict[int, HostNow] = {}
    for host_id, vms in nominal.items():
        raw = obs.raw_hosts[host_id]
        base = base_kib(raw)
        if base is None:
            LOG.warning("host %d: cannot read RESERVED_MEM base %r; not lending on it",
                        host_id, base_text(raw))
            continue
        hosts[host_id] = HostNow(booked_kib=sum(vms.values()), allocated_kib=allocated[host_id],
                                 capacity_kib=float(raw.total_mem_kib - base),
                                 vm_nominal_kib=vms)
    return ManagedLoad(vm_host, used, hosts)


def host_updates(obs: Observation, tracker: LendTracker, load: ManagedLoad,
                 grows_kib: Optional[Mapping[int, int]] = None,
                 written: Optional[Mapping[int, str]] = None) -> Dict[int, Dict[str, str]]:
    """{host_id: attributes to merge}. With ``grows_kib`` (host -> Σ planned grows) only
    lowers, by at least those grows; without, brings every host to its target."""
    written = written or {}
    off = tracker.strategy.name == "none"
    updates: Dict[int, Dict[str, str]] = {}
    for host_id, raw in obs.raw_hosts.items():
        kept = raw.template.get(keys.HOST_BASE_RESERVED_MEM, "").strip()
        now = load.hosts.get(host_id)
        if off or now is None:
            if kept and grows_kib is None:   # lending was on here: the admin's value, once
                updates[host_id] = {"RESERVED_MEM": "" if kept == UNSET else kept,
                                    keys.HOST_BASE_RESERVED_MEM: ""}
            continue
        current_text = written.get(host_id, raw.reserved_mem).strip()
        current = parse_reserved_kib(current_text, raw.total_mem_kib)
        base = int(raw.total_mem_kib - now.capacity_kib)
        target = reserved_target_kib(base, tracker.used_kib(host_id, now), now.allocated_kib)
        attrs: Dict[str, str] = {}
        if grows_kib is not None:
            grow = grows_kib.get(host_id, 0)
            if grow and current is not None:
                attrs["RESERVED_MEM"] = str(min(target, current - grow))
        else:
            if not kept:
                attrs[keys.HOST_BASE_RESERVED_MEM] = base_text(raw)
            if current is None or abs(target - current) >= max(tracker.params.min_change_kib, 1) \
                    or (not kept and target != current):
                attrs["RESERVED_MEM"] = str(target)
        if attrs:
            updates[host_id] = attrs
    return updates
