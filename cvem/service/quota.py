"""Quota hold: a grow back never fails because the owner spent the quota a shrink gave back.

OpenNebula 7.4 charges a resize to the VM's *owner* (``VirtualMachineAPI::resize``: user and
group VM quotas of the VM's UID/GID, whoever calls; users and groups of oneadmin are never
checked): ``MEMORY`` always, ``RUNNING_MEMORY`` too for a RUNNING VM. So a shrink by cvem
frees owner quota, and a grow back is refused (``limit of N reached for MEMORY quota``) if the
owner spent it meanwhile. cvem therefore holds what it reclaimed: for every user and group
owning managed VMs,

    limit = base - held,  held = Σ over their managed VMs of (nominal - MEMORY) in MiB

for MEMORY and RUNNING_MEMORY, where ``base`` is the administrator's limit (a number, or the
default quota ``-1`` resolved through ``one.userquota.info``/``one.groupquota.info``; unlimited
``-2`` needs nothing). The owner's headroom (limit - used) is what it would be without cvem.
Limits are lowered *before* a shrink and raised *before* a grow (the planned sizes count), so
there is no window where the owner gains headroom. ``one.user.quota`` replaces the whole VM
quota, so every other limit is written back as read. cvem keeps the base and what it wrote in
its state DB; a limit that differs from what it wrote was changed by an administrator and
becomes the new base. When nothing is held any more the administrator's value (``-1``
included) is written back. Per-cluster VM quotas (7.x ``CLUSTER_IDS``) are left alone.
"""
from __future__ import annotations

import json
import logging
from typing import Dict, Iterable, Mapping, Optional, Tuple

from lxml import etree

from ..core.model import KIB_PER_MIB
from ..errors import AdapterError

LOG = logging.getLogger(__name__)

HELD_KEYS = ("MEMORY", "RUNNING_MEMORY")
UNLIMITED, DEFAULT = "-2", "-1"
ONEADMIN = 0
Owner = Tuple[str, int]      # ("user", uid) or ("group", gid)


def vm_quota_limits(xml_text: str) -> Optional[Dict[str, str]]:
    """The global VM quota limits (no ``_USED``) of a user/group/default-quota document;
    None when it has none or only per-cluster entries."""
    root = etree.fromstring(xml_text.encode() if isinstance(xml_text, str) else xml_text)
    for vm in root.iterfind(".//VM_QUOTA/VM"):
        if vm.find("CLUSTER_IDS") is not None and (vm.findtext("CLUSTER_IDS") or "").strip():
            continue
        return {c.tag: (c.text or "").strip() for c in vm
                if not c.tag.endswith("_USED") and c.tag != "CLUSTER_IDS"}
    return None


def quota_template(limits: Mapping[str, str]) -> str:
    return "VM=[%s]" % ", ".join('%s="%s"' % kv for kv in sorted(limits.items()))


def held_mib(statuses: Iterable, raw_vms: Mapping, planned_mib: Mapping[int, int]
             ) -> Dict[Owner, int]:
    """MiB cvem holds per owner and group once ``planned_mib`` resizes are done."""
    out: Dict[Owner, int] = {}
    for st in statuses:
        if not st.managed or not st.nominal_kib or not st.allocated_kib:
            continue
        vm = raw_vms[st.vm_id]
        size_mib = planned_mib.get(st.vm_id, st.allocated_kib // KIB_PER_MIB)
        held = max(st.nominal_kib // KIB_PER_MIB - size_mib, 0)
        for owner in (("user", vm.uid), ("group", vm.gid)):
            if owner[1] != ONEADMIN:
                out[owner] = out.get(owner, 0) + held
    return out


def target_limits(base: Mapping[str, str], default: Optional[Mapping[str, str]],
                  held: int) -> Dict[str, str]:
    """The limits to write for ``held`` MiB given the administrator's ``base``."""
    out = dict(base)
    if held <= 0:
        return out
    for key in HELD_KEYS:
        value = base.get(key, DEFAULT)
        if value == DEFAULT:
            value = (default or {}).get(key, UNLIMITED) or UNLIMITED
        try:
            number = float(value)
        except ValueError:
            continue
        if number < 0:        # unlimited (or an unset default): nothing to hold
            continue
        out[key] = str(max(int(number) - held, 0))
    return out


class QuotaHolder:
    """Reads and writes owners' VM quotas through the cloud's raw calls; state in the DB."""

    def __init__(self, cloud, store):
        self.cloud, self.store = cloud, store
        self.records: Dict[Owner, Tuple[Dict[str, str], Dict[str, str]]] = store.load_quota_holds()
        self._last_held: Dict[Owner, int] = {}

    def _call(self, method, *args):
        return self.cloud.call_raw(method, *args)

    def hold(self, held: Mapping[Owner, int]) -> None:
        """Bring every owner's limits to base - held (skipping owners whose hold did not
        change since the last cycle and that cvem holds nothing for)."""
        owners = set(held) | set(self.records)
        for owner in sorted(owners):
            amount = held.get(owner, 0)
            if self._last_held.get(owner) == amount:
                continue
            try:
                self._hold_one(owner, amount)
                self._last_held[owner] = amount
            except AdapterError as error:
                LOG.warning("%s %d: cannot hold quota: %s", owner[0], owner[1], error)

    def _hold_one(self, owner: Owner, amount: int) -> None:
        kind, oid = owner
        current = vm_quota_limits(self._call("one.%s.info" % kind, oid))
        if current is None:
            current = {}
        record = self.records.get(owner)
        if record is None or record[1] != current:
            if record is not None:
                LOG.info("%s %d: VM quota changed by an administrator; new base %s", kind, oid,
                         json.dumps(current, sort_keys=True))
            base = current
        else:
            base = record[0]
        default = None
        if any(base.get(k, DEFAULT) == DEFAULT for k in HELD_KEYS):
            default = vm_quota_limits(self._call("one.%squota.info" % kind))
        target = target_limits(base, default, amount)
        if target != current:
            self._call("one.%s.quota" % kind, oid, quota_template(target))
            LOG.info("%s %d quota hold: %d MiB reclaimed by cvem held back (MEMORY %s, "
                     "RUNNING_MEMORY %s; administrator's %s, %s)", kind, oid, amount,
                     target.get("MEMORY"), target.get("RUNNING_MEMORY"),
                     base.get("MEMORY", DEFAULT), base.get("RUNNING_MEMORY", DEFAULT))
        if amount <= 0 and target == base:
            self.records.pop(owner, None)
            self.store.drop_quota_hold(owner)
        else:
            self.records[owner] = (dict(base), dict(target))
            self.store.save_quota_hold(owner, base, target)
