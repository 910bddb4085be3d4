"""The lend factor: offer the scheduler only a fraction of the memory cloudvamp reclaimed.

Live ``one.vm.resize`` shrinks lower a host's ``MEM_USAGE`` at once, so by default *all*
reclaimed memory becomes schedulable. With ``lend_ratio`` < 1 cvem holds the rest back
by raising the host's ``RESERVED_MEM`` (merge-mode ``one.host.update``; ``MAX_MEM`` follows
immediately), so grows back toward nominal find room without migrations:

    RESERVED_MEM = base + (1 - lend_ratio) x reclaimed_kib
    reclaimed_kib = sum over the host's VMs cvem manages of (nominal - MEMORY)

Only memory cvem reclaimed counts: the nominal size is what the owner deployed or last
resized the VM to (:mod:`cvem.service.nominal`), never MEMORY_MAX, and VMs and hosts cvem
does not manage are never counted nor touched (a host that stops being managed gets its
administrator's value back).

``base`` is the administrator's own value, kept in ``CLOUDVAMP_BASE_RESERVED_MEM`` the
first time cvem manages the host (``UNSET`` when the host had none). The planner sees the
held-back memory as room (``MAX_MEM`` + held). Before grows the reservation is lowered,
after shrinks it is raised. Setting ``lend_ratio = 1.0`` again restores the base value and
stops managing the host. See docs/operations.md.
"""
from __future__ import annotations

import logging
from typing import Container, Dict, Iterable, Mapping, Optional

from .. import keys
from ..core.model import KIB_PER_MIB
from ..ports import RawHost
from .observe import parse_reserved_kib

LOG = logging.getLogger(__name__)
UNSET = "UNSET"


def reclaimed_kib_by_host(statuses: Iterable, allocated_mib: Optional[Mapping[int, int]] = None
                          ) -> Dict[int, int]:
    """Σ (nominal − MEMORY) per host over the *managed* VMs (``observe.VmStatus``);
    ``allocated_mib`` overrides MEMORY for VMs resized this cycle."""
    out: Dict[int, int] = {}
    allocated_mib = allocated_mib or {}
    for st in statuses:
        if not st.managed or st.host_id is None or not st.nominal_kib or not st.allocated_kib:
            continue
        kib = allocated_mib.get(st.vm_id, st.allocated_kib // KIB_PER_MIB) * KIB_PER_MIB
        out[st.host_id] = out.get(st.host_id, 0) + max(st.nominal_kib - kib, 0)
    return out


def host_updates(hosts: Mapping[int, RawHost], reclaimed: Mapping[int, int],
                 lend_ratio: float, current_reserved: Optional[Mapping[int, str]] = None,
                 only_lower: bool = False, managed: Optional[Container[int]] = None
                 ) -> Dict[int, Dict[str, str]]:
    """{host_id: attributes to merge} bringing RESERVED_MEM to its lend target; hosts not
    in ``managed`` (None: all) only get their administrator's value back."""
    current_reserved = current_reserved or {}
    updates: Dict[int, Dict[str, str]] = {}
    for host in hosts.values():
        base_attr = host.template.get(keys.HOST_BASE_RESERVED_MEM, "").strip()
        current_text = current_reserved.get(host.host_id, host.reserved_mem).strip()
        if lend_ratio >= 1.0 or (managed is not None and host.host_id not in managed):
            if base_attr:  # lending was on: give the administrator's value back, once
                restore = "" if base_attr == UNSET else base_attr
                updates[host.host_id] = {"RESERVED_MEM": restore,
                                         keys.HOST_BASE_RESERVED_MEM: ""}
            continue
        base_text = base_attr or current_text or UNSET
        base_kib = parse_reserved_kib("" if base_text == UNSET else base_text,
                                      host.total_mem_kib)
        if base_kib is None:
            LOG.warning("host %d: cannot read RESERVED_MEM base %r; lend factor not applied",
                        host.host_id, base_text)
            continue
        target = base_kib + int((1.0 - lend_ratio) * reclaimed.get(host.host_id, 0))
        current_kib = parse_reserved_kib(current_text, host.total_mem_kib)
        attrs: Dict[str, str] = {}
        if not base_attr:
            attrs[keys.HOST_BASE_RESERVED_MEM] = base_text
        if current_text != str(target) and not (only_lower and current_kib is not None
                                                 and target >= current_kib):
            attrs["RESERVED_MEM"] = str(target)
        if "RESERVED_MEM" in attrs or (attrs and not only_lower):
            updates[host.host_id] = attrs
    return updates
