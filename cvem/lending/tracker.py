"""Per-host usage windows and strategy state, carried from cycle to cycle.

The one stateful piece of lending, shared by the service and the simulator: each cycle it
takes the managed VMs' used memory (KiB, ``now`` passed in), adds the host sums to the open
window, and when the window closes (``now`` crosses a multiple of ``window_s``) runs the
strategy once per host on the closed history. :meth:`used_kib` then gives what the scheduler
must count as used, per host, through :func:`cvem.lending.target.scheduler_used_kib`.
Strategies that only read bookkeeping (``none``, ``fixed``, ``borg``) are evaluated every
cycle, as the lend factor always was.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Mapping, Optional

import numpy as np

from .base import HostNow, Strategy, Window
from .target import LendParams, newcomer_kib, scheduler_used_kib


@dataclass
class _Host:
    windows: Deque[Window]
    samples: List[float] = field(default_factory=list)
    alloc_samples: List[float] = field(default_factory=list)
    peaks: Dict[int, float] = field(default_factory=dict)
    state: Any = None
    estimate_kib: Optional[float] = None


class LendTracker:
    def __init__(self, strategy: Strategy, params: LendParams):
        self.strategy = strategy
        self.params = params
        self.hosts: Dict[int, _Host] = {}
        self.window_index: Optional[int] = None

    def _host(self, host_id: int) -> _Host:
        h = self.hosts.get(host_id)
        if h is None:
            h = self.hosts[host_id] = _Host(deque(maxlen=self.params.history_windows))
        return h

    def observe(self, now_s: float, vm_host: Mapping[int, int], vm_used_kib: Mapping[int, float],
                hosts_now: Mapping[int, HostNow]) -> None:
        """One cycle: ``vm_host``/``vm_used_kib`` for the managed VMs (unknown use: their
        allocation), ``hosts_now`` for the managed hosts."""
        index = int(math.floor(now_s / self.params.window_s))
        if self.window_index is not None and index != self.window_index:
            self._close(hosts_now)
        self.window_index = index
        sums: Dict[int, float] = {}
        for vm, host_id in vm_host.items():
            used = float(vm_used_kib.get(vm, 0.0))
            sums[host_id] = sums.get(host_id, 0.0) + used
            h = self._host(host_id)
            if used > h.peaks.get(vm, -1.0):
                h.peaks[vm] = used
        for host_id, now in hosts_now.items():
            h = self._host(host_id)
            h.samples.append(sums.get(host_id, 0.0))
            h.alloc_samples.append(now.allocated_kib)
        for gone in set(self.hosts) - set(hosts_now):
            del self.hosts[gone]   # no managed VM left: its history no longer describes it

    def _close(self, hosts_now: Mapping[int, HostNow]) -> None:
        for host_id, h in self.hosts.items():
            if h.samples:
                h.windows.append(Window(np.asarray(h.samples, dtype=np.float64), dict(h.peaks),
                                        np.asarray(h.alloc_samples, dtype=np.float64)))
            h.samples, h.alloc_samples, h.peaks = [], [], {}
            now = hosts_now.get(host_id)
            if now is not None and not self.strategy.per_cycle:
                est = self.strategy.estimate(tuple(h.windows), now, h.state,
                                             self.params.history_windows)
                h.estimate_kib, h.state = est.used_kib, est.state

    def used_kib(self, host_id: int, now: HostNow) -> float:
        """What the scheduler must count as used by ``host_id``'s managed VMs now."""
        h = self._host(host_id)
        windows = tuple(h.windows)
        if self.strategy.per_cycle:
            estimate = self.strategy.estimate(windows, now, h.state,
                                              self.params.history_windows).used_kib
        else:
            estimate = h.estimate_kib
        open_peak = max(h.samples) if h.samples else 0.0
        newcomers = newcomer_kib(windows, now) if self.strategy.from_history else 0.0
        return scheduler_used_kib(math.nan if estimate is None else estimate, newcomers,
                                  open_peak, now.booked_kib, now.allocated_kib,
                                  now.capacity_kib, self.strategy.from_history, self.params)
