"""From a strategy's estimate to what the scheduler is offered, and to ``RESERVED_MEM``.

OpenNebula's scheduler places a VM where ``MAX_MEM − MEM_USAGE ≥ MEMORY`` with
``MAX_MEM = TOTAL_MEM − RESERVED_MEM`` and ``MEM_USAGE = Σ MEMORY`` (opennebula.md §1.4).
To offer a host ``capacity − used`` (ScroogeVM's ``config − tier0``) while its managed VMs
hold ``allocated``:

    RESERVED_MEM = base + used − allocated

``base`` is the administrator's own value; a negative result raises ``MAX_MEM`` above the
physical memory (OpenNebula's documented over-commitment). VMs cvem does not manage keep
their full ``MEMORY`` in ``MEM_USAGE`` and never enter ``used`` or ``allocated``.

Guards shared by every strategy that learns from usage samples (so the comparison is of
estimators, not of safety nets):

* *newcomers*: a VM the newest closed window has not seen counts at its nominal size, one
  seen in only part of the history at its observed peak on top (the samples under-count it);
* *take back at once*: the open window's peak usage × (1 + ``takeback_margin``) is a floor,
  so a rise shrinks the offer in the same cycle while growth of the offer waits for the
  next window (hysteresis);
* *ceiling*: never more nominal memory booked than ``max_overcommit`` × capacity.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .base import HostNow, Strategy, Window


@dataclass(frozen=True)
class LendParams:
    """The ``[lend]`` section."""

    strategy: str = field(default="none", metadata={
        "help": "lending strategy (`cvem lending` lists them); none = RESERVED_MEM left to the admin"})
    window_s: float = field(default=1800.0, metadata={
        "min": 10.0, "help": "length of one usage window; estimates change once per window"})
    history_windows: int = field(default=4, metadata={
        "min": 1, "max": 1000, "help": "windows of history a strategy sees (ScroogeVM: 3+1)"})
    min_change_kib: int = field(default=262144, metadata={
        "min": 0, "help": "rewrite RESERVED_MEM only when the scheduler's view moves this much"})
    takeback_margin: float = field(default=0.1, metadata={
        "min": 0.0, "max": 10.0, "help": "open-window peak × (1 + this) is always counted"})
    max_overcommit: float = field(default=3.0, metadata={
        "min": 1.0, "max": 20.0, "help": "at most this × capacity of nominal memory booked"})

    def validate(self) -> None:
        from .base import strategy_class
        strategy_class(self.strategy.strip())   # the error names [lend] strategy


def newcomer_kib(windows: Sequence[Window], host: HostNow) -> float:
    if not windows:
        return float(sum(host.vm_nominal_kib.values()))
    newest = windows[-1].vm_peak_kib
    extra = 0.0
    for vm, nominal in host.vm_nominal_kib.items():
        if vm not in newest:
            extra += nominal
        elif any(vm not in w.vm_peak_kib for w in windows[:-1]):
            extra += max(w.vm_peak_kib.get(vm, 0.0) for w in windows)
    return extra


def scheduler_used_kib(estimate_kib, newcomers_kib, open_peak_kib, host_booked_kib,
                       host_allocated_kib, host_capacity_kib, from_history: bool,
                       params: LendParams):
    """What the scheduler must count as used by a host's managed VMs. Works on floats or on
    numpy arrays (one entry per host, as the simulator calls it); a NaN estimate means no
    opinion yet, and lends nothing."""
    estimate = np.asarray(estimate_kib, dtype=np.float64)
    allocated = np.asarray(host_allocated_kib, dtype=np.float64)
    booked = np.asarray(host_booked_kib, dtype=np.float64)
    used = estimate
    if from_history:
        used = np.maximum(used + newcomers_kib, np.asarray(open_peak_kib) *
                          (1.0 + params.takeback_margin))
    floor = booked - (params.max_overcommit - 1.0) * np.asarray(host_capacity_kib)
    used = np.maximum(used, np.minimum(allocated, floor))
    used = np.minimum(used, np.maximum(booked, allocated))
    used = np.where(np.isnan(estimate), allocated, used)
    return float(used) if used.ndim == 0 else used


def reserved_target_kib(base_kib: int, used_kib: float, allocated_kib: float) -> int:
    return int(round(base_kib + used_kib - allocated_kib))
