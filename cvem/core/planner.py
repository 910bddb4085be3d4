"""Turn per-VM targets into ordered, host-feasible allocation changes.

Order within a cycle (per host):

0. grows that fit in the host's room right now (MAX_MEM - MEM_USAGE, and physical free minus
   reserve) — urgent ones (guest under pressure or below its floor) first; they never wait
   behind a shrink;
1. shrinks — they give room back;
2. grows that only fit once the shrinks are done;
and what still does not fit is granted partially (a partial grow now beats none) and the
rest is reported as *needing room*, which overload protection turns into migrations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fleet import HostColumns

PHASE_GROW_NOW, PHASE_SHRINK, PHASE_GROW_AFTER_SHRINK, PHASE_NONE = 0, 1, 2, -1


@dataclass(frozen=True)
class PlanColumns:
    """Planner output, one entry per VM."""

    granted_kib: np.ndarray   # int64, the allocation each VM gets this cycle
    phase: np.ndarray         # int8, PHASE_* (PHASE_NONE when unchanged)
    missing_kib: np.ndarray   # int64, grow that did not fit (needs room)


def _group_cumsum(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each new group; ``groups`` must be sorted."""
    total = np.cumsum(values)
    if values.size == 0:
        return total
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    base = np.r_[0, total[starts[1:] - 1]]
    lengths = np.diff(np.r_[starts, values.size])
    return total - np.repeat(base, lengths)


def host_room_kib(hosts: HostColumns) -> np.ndarray:
    """What a host can still give to grows: the tighter of oned's and physical room."""
    return np.maximum(np.minimum(hosts.capacity_kib - hosts.allocated_kib,
                                 hosts.physical_room_kib), 0)


def plan_columns(host_index: np.ndarray, allocated_kib: np.ndarray, target_kib: np.ndarray,
                 urgent: np.ndarray, room_kib: np.ndarray) -> PlanColumns:
    n = allocated_kib.shape[0]
    delta = target_kib - allocated_kib
    granted = allocated_kib.copy()
    phase = np.full(n, PHASE_NONE, dtype=np.int8)
    missing = np.zeros(n, dtype=np.int64)

    shrink = delta < 0
    granted[shrink] = target_kib[shrink]
    phase[shrink] = PHASE_SHRINK
    released = np.bincount(host_index[shrink], weights=-delta[shrink],
                           minlength=room_kib.shape[0]).astype(np.int64)

    grow_idx = np.flatnonzero(delta > 0)
    if grow_idx.size:
        # Urgent first, then the smallest grows (more guests satisfied per KiB), then by VM.
        order = np.lexsort((grow_idx, delta[grow_idx], ~urgent[grow_idx], host_index[grow_idx]))
        g = grow_idx[order]
        h = host_index[g]
        d = delta[g]
        cum = _group_cumsum(d, h)
        before = cum - d
        now_room = room_kib[h]
        total_room = now_room + released[h]
        fits_now = cum <= now_room
        give = np.clip(total_room - before, 0, d)
        granted[g] = allocated_kib[g] + give
        phase[g] = np.where(fits_now, PHASE_GROW_NOW,
                            np.where(give > 0, PHASE_GROW_AFTER_SHRINK, PHASE_NONE))
        missing[g] = d - give
    return PlanColumns(granted_kib=granted, phase=phase, missing_kib=missing)
