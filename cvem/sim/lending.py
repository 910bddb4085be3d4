"""Lending in the simulated cloud: the service's strategies and targets, vectorized over hosts.

Per period it takes what the controller saw (the guests' last reports), keeps each host's
open window of Σ used samples and each VM's window peak, and when a window closes runs the
strategy once per host (:meth:`cvem.lending.base.Strategy.estimate`, the same code the
service runs). After the balloons moved it sets each host's lent memory (``base −
RESERVED_MEM``) to ``allocated − used`` (:func:`cvem.lending.target.scheduler_used_kib`),
rewriting it only when it moved by ``min_change_kib``, as the service does. The scheduler
(:mod:`cvem.sim.scheduler`) then sees ``usable + lent − MEM_USAGE`` free.
"""
from __future__ import annotations

import math
from collections import deque
from typing import List

import numpy as np

from ..lending.base import HostNow, Strategy, Window
from ..lending.target import LendParams, newcomer_kib, scheduler_used_kib


class SimLending:
    def __init__(self, strategy: Strategy, params: LendParams, n_host: int, n_rows: int,
                 usable_kib: np.ndarray):
        self.strategy, self.params = strategy, params
        self.usable = usable_kib.astype(np.float64)
        self.windows: List[deque] = [deque(maxlen=params.history_windows) for _ in range(n_host)]
        self.states: list = [None] * n_host
        self.estimate = np.full(n_host, np.nan)
        self.newcomers = np.zeros(n_host)
        self.lent = np.zeros(n_host)
        self.samples: List[np.ndarray] = []
        self.alloc_samples: List[np.ndarray] = []
        self.vm_peak = np.full(n_rows, -1.0)
        self.window_index = None
        self.writes = 0

    # ------------------------------------------------------------------ per period
    def observe(self, now_s: float, host_of: np.ndarray, used_kib: np.ndarray,
                alloc_kib: np.ndarray, nominal_kib: np.ndarray) -> None:
        """``used_kib``: the live VMs' last reports (NaN: none yet, counted at allocation)."""
        n = used_kib.size
        index = int(math.floor(now_s / self.params.window_s))
        if self.window_index is not None and index != self.window_index:
            self._close(host_of[:n], alloc_kib[:n], nominal_kib[:n])
        self.window_index = index
        used = np.where(np.isnan(used_kib), alloc_kib[:n], used_kib)
        self.samples.append(np.bincount(host_of[:n], weights=used, minlength=self.usable.size))
        self.alloc_samples.append(np.bincount(host_of[:n], weights=alloc_kib[:n],
                                              minlength=self.usable.size))
        np.maximum(self.vm_peak[:n], used, out=self.vm_peak[:n])

    def _host_now(self, h: int, on_h: np.ndarray, alloc, nominal) -> HostNow:
        vms = {int(v): float(nominal[v]) for v in on_h}
        return HostNow(booked_kib=sum(vms.values()), allocated_kib=float(alloc[on_h].sum()),
                       capacity_kib=float(self.usable[h]), vm_nominal_kib=vms)

    def _close(self, host_of, alloc, nominal) -> None:
        if not self.samples:
            return
        mat = np.vstack(self.samples)          # [period, host]
        amat = np.vstack(self.alloc_samples)
        self.samples, self.alloc_samples = [], []
        n = host_of.size
        order = np.argsort(host_of, kind="stable")
        bounds = np.searchsorted(host_of[order], np.arange(self.usable.size + 1))
        for h in range(self.usable.size):
            on_h = order[bounds[h]:bounds[h + 1]]
            peaks = {int(v): float(self.vm_peak[v]) for v in on_h if self.vm_peak[v] >= 0}
            self.windows[h].append(Window(mat[:, h].copy(), peaks, amat[:, h].copy()))
            now = self._host_now(h, on_h, alloc, nominal)
            if not self.strategy.per_cycle:
                est = self.strategy.estimate(tuple(self.windows[h]), now, self.states[h],
                                             self.params.history_windows)
                self.estimate[h] = np.nan if est.used_kib is None else est.used_kib
                self.states[h] = est.state
            self.newcomers[h] = (newcomer_kib(tuple(self.windows[h]), now)
                                 if self.strategy.from_history else 0.0)
        self.vm_peak[:n] = -1.0

    def arrived(self, host: int, nominal_kib: float) -> None:
        """A VM deployed or migrated onto ``host``: unseen by its history, it counts at its
        nominal size until a window closes with it (cvem.lending.target)."""
        if self.strategy.from_history:
            self.newcomers[host] += nominal_kib

    def update_lent(self, host_of: np.ndarray, alloc_kib: np.ndarray,
                    nominal_kib: np.ndarray) -> None:
        """After the balloons moved: bring each host's lent memory to its target."""
        n_host = self.usable.size
        booked = np.bincount(host_of, weights=nominal_kib, minlength=n_host)
        allocated = np.bincount(host_of, weights=alloc_kib, minlength=n_host)
        estimate = self.estimate
        if self.strategy.per_cycle:
            estimate = np.array([
                self.strategy.estimate((), HostNow(booked[h], allocated[h], self.usable[h]),
                                       None, self.params.history_windows).used_kib
                for h in range(n_host)], dtype=np.float64)
        open_peak = self.samples[-1] if self.samples else np.zeros(n_host)
        if len(self.samples) > 1:
            open_peak = np.max(np.vstack(self.samples), axis=0)
        used = scheduler_used_kib(estimate, self.newcomers, open_peak, booked, allocated,
                                  self.usable, self.strategy.from_history, self.params)
        target = allocated - used
        change = np.abs(target - self.lent) >= max(self.params.min_change_kib, 1)
        self.writes += int(change.sum())
        self.lent = np.where(change, target, self.lent)
