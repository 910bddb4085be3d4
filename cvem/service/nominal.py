"""Each VM's nominal size: what its owner deployed it at or last resized it to.

In OpenNebula MEMORY *is* the VM's size; MEMORY_MAX is only the ceiling of a hot resize (a VM
created at 4 GiB with MEMORY_MAX 8 GiB is a 4 GiB VM). cvem shrinks and grows MEMORY, so
after its first resize MEMORY no longer says what the owner chose. The nominal size is kept
where neither the guest nor OneGate can write: cvem's state DB (table ``vm_sizes``: nominal
and the MEMORY cvem expects, i.e. the last size it saw or confirmed itself).

* First sight: MEMORY is the nominal size — unless oned's history shows that the last
  resize (``ACTION=35``) was made by cvem's own user (its state DB was lost): then the size
  the owner chose is unknown and MEMORY_MAX, the ceiling the owner allowed, is taken, with a
  warning. A VM never migrated or resized (history ``SEQ`` 0) needs no look-up.
* Later: MEMORY differs from what cvem expects while none of its resizes is in flight:
  someone else (the owner, an admin) resized the VM. That is the new nominal size.

A driver that fails a resize leaves MEMORY at the old value, which cvem still expects:
nothing changes. Pure functions; the service reads and saves the records.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Mapping, Optional, Set, Tuple

from ..core.model import KIB_PER_MIB
from ..ports import RawVm

LOG = logging.getLogger(__name__)

RESIZE_ACTION = 35    # VMActions::RESIZE_ACTION, the ACTION of a history record a resize closed


@dataclass
class SizeUpdate:
    nominal_kib: Dict[int, int] = field(default_factory=dict)          # every sized VM
    changed: Dict[int, Tuple[int, int]] = field(default_factory=dict)  # to save
    gone: Tuple[int, ...] = ()
    pending: Set[int] = field(default_factory=set)   # first seen, look-up left for later


def last_resizer_is(records: Iterable[Tuple[int, int]], uid: int) -> bool:
    """``records``: (ACTION, UID) of a VM's history records, oldest first."""
    resizes = [u for action, u in records if action == RESIZE_ACTION]
    return bool(resizes) and resizes[-1] == uid


def settle_sizes(vms: Iterable[RawVm], records: Mapping[int, Tuple[int, int]],
                 busy: Set[int], cvem_uid: Optional[int],
                 history_of: Optional[Callable[[int], Iterable[Tuple[int, int]]]] = None,
                 max_lookups: int = 20, outside: Set[int] = frozenset()) -> SizeUpdate:
    """Nominal sizes of ``vms`` from the saved ``records`` (vm_id -> (nominal, expected));
    ``busy``: VMs with a resize of cvem in flight (their MEMORY is cvem's doing);
    ``history_of(vm_id)``: (ACTION, UID) of its history records (``one.vm.info``), called at
    most ``max_lookups`` times; ``outside``: VMs outside cvem's users/groups/clusters
    filters, never sized nor looked up (another cvem with the same oned user may manage
    them: their resizes are not a lost state DB), their records kept as they are."""
    out = SizeUpdate()
    seen = set()
    lookups = 0
    for vm in vms:
        seen.add(vm.vm_id)
        if vm.vm_id in outside:
            continue
        rec = records.get(vm.vm_id)
        memory = vm.memory_mib * KIB_PER_MIB if vm.memory_mib else None
        settled = vm.state == 3 and vm.lcm_state == 3 and vm.vm_id not in busy
        if rec is not None:
            nominal, expected = rec
            if settled and memory and memory != expected:
                LOG.info("vm=%d MEMORY %d MiB set outside cvem (was %d MiB): nominal size now "
                         "%d MiB", vm.vm_id, memory // KIB_PER_MIB, expected // KIB_PER_MIB,
                         memory // KIB_PER_MIB)
                nominal = memory
                out.changed[vm.vm_id] = (memory, memory)
            out.nominal_kib[vm.vm_id] = nominal
            continue
        if not settled or not memory:
            continue
        nominal = memory
        if vm.history_seq and cvem_uid is not None and history_of is not None:
            if lookups >= max_lookups:
                out.pending.add(vm.vm_id)
                continue
            lookups += 1
            if last_resizer_is(history_of(vm.vm_id), cvem_uid):
                ceiling = (vm.memory_max_mib or 0) * KIB_PER_MIB
                nominal = max(memory, ceiling)
                LOG.warning("vm=%d last resized by cvem's user but not in its state DB (lost?): "
                            "nominal size unknown, taking MEMORY_MAX %d MiB", vm.vm_id,
                            nominal // KIB_PER_MIB)
        out.nominal_kib[vm.vm_id] = nominal
        out.changed[vm.vm_id] = (nominal, memory)
    out.gone = tuple(sorted(set(records) - seen))
    return out


def confirmed(records: Mapping[int, Tuple[int, int]], vm_id: int,
              memory_kib: int) -> Dict[int, Tuple[int, int]]:
    """The record once cvem's own resize of ``vm_id`` to ``memory_kib`` is seen done; none
    when cvem holds no size for the VM (a resize learnt from another node's handover record
    without sizes): its MEMORY now is cvem's doing, not the owner's size, so the VM is left
    to first sight (the history look-up), never given its shrunk MEMORY as its size."""
    if vm_id not in records:
        return {}
    return {vm_id: (records[vm_id][0], memory_kib)}
