"""What a new leader must know to act safely, kept in oned where every front-end reads it.

The acting cvem writes, before it acts and again after, a small JSON record into a
document of its own type in oned's document pool (``one.document.*``, type
:data:`DOCUMENT_TYPE`, name :data:`DOCUMENT_NAME`, owned by cvem's user with permissions
``um-------``). oned replicates its database through Raft, so after a failover the new
leader reads the last record its predecessor wrote. Why a document and not a VM attribute:
USER_TEMPLATE is writable by the guest through OneGate, and OneGate exposes no document
call, so a guest cannot touch this record; VM TEMPLATE attributes can only be changed with
``one.vm.updateconf`` for a fixed list of sections.

What the record holds is what safety needs, nothing that can be rebuilt:

* every VM's cooldown clock (when cvem last changed its size);
* resizes in flight (including the ones about to be sent: written before acting);
* live migrations in flight, the one-hour move log and the per-host migration cooldowns;
* every VM's nominal size (what its owner chose) and the MEMORY cvem expects: once cvem
  has resized a VM, oned no longer shows the former, and a successor without it would take
  MEMORY_MAX (or, confirming a resize in flight, the shrunk size) as the VM's size.

The record names the state DB that wrote it: a node that finds its own record (a restart,
not a failover) has everything in it already, and newer, so it merges nothing -- merging
would re-add resizes it has since settled.

A node that takes over merges it into its own state DB conservatively (later clocks win,
in-flight records are added), then reconciles everything against oned as after a restart.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from typing import Dict, Iterable, Optional, Protocol, Tuple

import numpy as np

from ..core.fleet import FleetHistory
from ..core.guards import LAST_CHANGE_COLUMN
from ..core.migration import InFlight as MigrationInFlight
from ..core.migration import MigrationState
from ..core.model import Resize
from .state import InFlight, StateStore

LOG = logging.getLogger(__name__)

DOCUMENT_TYPE = 1801          # cvem's own document type (OneFlow uses 100-101)
DOCUMENT_NAME = "cvem-handover"
FORMAT = 1


class DocumentStore(Protocol):
    def read_document(self, doc_type: int, name: str) -> Optional[Tuple[int, str]]:
        ...

    def write_document(self, doc_id: Optional[int], doc_type: int, name: str,
                       text: str) -> int:
        ...


# ------------------------------------------------------------------------ record
def build_record(now_s: float, history: FleetHistory, inflight: Iterable[InFlight],
                 migration_state: MigrationState, planned: Iterable[Resize] = (),
                 sizes: Optional[Dict[int, Tuple[int, int]]] = None, writer: str = "") -> dict:
    """``sizes``: each VM's (nominal, expected) KiB (cvem.service.nominal): once cvem has
    resized a VM, oned no longer shows the size its owner chose; ``writer``: the state DB
    that wrote the record (a node never takes over from its own, older, record)."""
    last = history.columns.get(LAST_CHANGE_COLUMN)
    cooldown = {}
    if last is not None:
        for vm_id, t in zip(history.vm_ids.tolist(), np.asarray(last).tolist()):
            if np.isfinite(t):
                cooldown[str(vm_id)] = t
    records = {rec.vm_id: rec for rec in inflight}
    for a in planned:   # about to be sent: a successor must treat them as in flight
        records.setdefault(a.vm_id, InFlight(a.vm_id, a.host_id, a.action, a.from_kib,
                                             a.to_kib, a.reason, "pending", now_s))
    ms = migration_state
    return {
        "format": FORMAT, "saved_at_s": now_s, "cooldown_s": cooldown, "writer": writer,
        "sizes": {str(v): list(ne) for v, ne in sorted((sizes or {}).items())},
        "resizes_in_flight": [asdict(r) for r in records.values()],
        "migrations_in_flight": [asdict(m) for m in ms.in_flight],
        "host_last_migration_s": {str(h): t for h, t in zip(
            np.asarray(ms.host_ids).tolist(), np.asarray(ms.host_last_s).tolist())
            if np.isfinite(t)},
        "moved_at_s": {str(v): t for v, t in zip(np.asarray(ms.moved_vm_ids).tolist(),
                                                 np.asarray(ms.moved_at_s).tolist())},
    }


def encode(record: dict) -> str:
    # '>' only occurs inside JSON strings, where \u003e is the same character; this keeps
    # ']]>' out of the CDATA section oned stores it in.
    return json.dumps(record, sort_keys=True, separators=(",", ":")).replace(">", "\\u003e")


# ------------------------------------------------------------------------- merge
def merge_history(history: FleetHistory, cooldown: Dict[str, float],
                  initial) -> FleetHistory:
    """The local history with every VM's cooldown clock at least the record's."""
    if not cooldown:
        return history
    ids = np.union1d(history.vm_ids, np.array([int(v) for v in cooldown], dtype=np.int64))
    merged = history.aligned(ids, initial)
    col = np.array(merged.columns[LAST_CHANGE_COLUMN], dtype=float, copy=True)
    for i, vm_id in enumerate(merged.vm_ids.tolist()):
        t = cooldown.get(str(vm_id))
        if t is not None and not col[i] >= t:
            col[i] = t
    return merged.with_columns(**{LAST_CHANGE_COLUMN: col})


def merge_migrations(state: MigrationState, record: dict) -> MigrationState:
    flights = {m.vm_id: m for m in state.in_flight}
    for m in record.get("migrations_in_flight", []):
        flights.setdefault(int(m["vm_id"]), MigrationInFlight(**m))
    hosts = dict(zip(np.asarray(state.host_ids).tolist(), np.asarray(state.host_last_s).tolist()))
    for h, t in record.get("host_last_migration_s", {}).items():
        hosts[int(h)] = max(hosts.get(int(h), -np.inf), t)
    moved = dict(zip(np.asarray(state.moved_vm_ids).tolist(),
                     np.asarray(state.moved_at_s).tolist()))
    for v, t in record.get("moved_at_s", {}).items():
        moved[int(v)] = max(moved.get(int(v), -np.inf), t)
    host_ids = np.array(sorted(hosts), dtype=np.int64)
    demand = state.demand_kib
    if not np.array_equal(host_ids, np.asarray(state.host_ids)):
        demand = np.zeros((host_ids.size, 0))   # rebuilt from fresh samples
    return replace(state, host_ids=host_ids,
                   host_last_s=np.array([hosts[h] for h in host_ids.tolist()], dtype=float),
                   demand_kib=demand,
                   times_s=state.times_s if demand is state.demand_kib else np.zeros(0),
                   moved_vm_ids=np.array(sorted(moved), dtype=np.int64),
                   moved_at_s=np.array([moved[v] for v in sorted(moved)], dtype=float),
                   in_flight=tuple(sorted(flights.values(), key=lambda m: (m.started_s,
                                                                           m.vm_id))))


def merge_sizes(sizes: Dict[int, Tuple[int, int]], record: dict) -> Dict[int, Tuple[int, int]]:
    """The predecessor's nominal sizes: it acted last, so its records win."""
    return {int(v): (int(ne[0]), int(ne[1])) for v, ne in record.get("sizes", {}).items()
            if int(v) not in sizes or sizes[int(v)] != (int(ne[0]), int(ne[1]))}


def merge_inflight(store: StateStore, record: dict) -> int:
    local = store.load_inflight()
    added = 0
    for r in record.get("resizes_in_flight", []):
        if int(r["vm_id"]) not in local:
            store.record_inflight(InFlight(**r))
            added += 1
    return added


# ------------------------------------------------------------------------ oned side
class Handover:
    """Reads and writes the record in oned; writes only when it changed."""

    def __init__(self, documents: DocumentStore):
        self.documents = documents
        self._doc_id: Optional[int] = None
        self._last_text: Optional[str] = None

    def load(self) -> Optional[dict]:
        found = self.documents.read_document(DOCUMENT_TYPE, DOCUMENT_NAME)
        if found is None:
            return None
        self._doc_id, text = found
        self._last_text = text
        if not text:
            return None
        try:
            record = json.loads(text)
        except ValueError as error:
            LOG.warning("handover document %d unreadable (%s); starting from the local "
                        "state DB", self._doc_id, error)
            return None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            LOG.warning("handover document %d is not a cvem record of format %d; starting "
                        "from the local state DB", self._doc_id, FORMAT)
            return None
        return record

    def save(self, record: dict) -> bool:
        text = encode(dict(record, saved_at_s=0))   # unchanged content: no write
        if text == self._last_text:
            return False
        if self._doc_id is None:
            found = self.documents.read_document(DOCUMENT_TYPE, DOCUMENT_NAME)
            self._doc_id = found[0] if found else None
        self._doc_id = self.documents.write_document(self._doc_id, DOCUMENT_TYPE,
                                                     DOCUMENT_NAME, encode(record))
        self._last_text = text
        return True
