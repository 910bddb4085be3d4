"""Shared arithmetic of the host-level balloon rules (MoM, Proxmox).

Both rules look at how full each *host* is, not at each guest's history. A host's memory in
use is taken as the sum of its guests' allocations: a Linux guest fills what it is given with
page cache, so its resident memory grows to its balloon size (the reason both tools exist).
Both evaluate every ``evaluation_s`` (10 s); one of cloudvamp's control periods runs as many
evaluations as fit in it.
"""
from __future__ import annotations

import numpy as np


def host_used_kib(obs, alloc_kib: np.ndarray) -> np.ndarray:
    """[host] memory in use on each host: the sum of its guests' allocations."""
    return np.bincount(obs.host_index, weights=alloc_kib, minlength=obs.hosts.size)


def host_total_kib(obs) -> np.ndarray:
    """[host] the memory guests may use: physical minus the host reserve."""
    hosts = obs.hosts
    total = hosts.usable_kib if hosts.usable_kib is not None else hosts.capacity_kib
    return total.astype(np.float64)


def evaluations(state, now_s: float, evaluation_s: float) -> int:
    """How many of the rule's evaluations fit since the last cycle (1 on the first)."""
    last = state["last_s"]
    known = np.isfinite(last)
    if not known.any():
        return 1
    period_s = now_s - float(np.nanmax(last))
    return int(max(1, min(round(period_s / evaluation_s), 1000)))


def used_or_alloc(obs) -> np.ndarray:
    """The guest's used memory, or its allocation when it has not reported."""
    return np.where(np.isfinite(obs.used_kib), obs.used_kib, obs.allocated_kib.astype(np.float64))
