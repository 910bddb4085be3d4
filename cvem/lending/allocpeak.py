"""``allocpeak``: cloudvamp's own lending strategy.

ScroogeVM's estimators read what the guests *use*. On a cloud where cloudvamp sizes the
VMs, what a host must be able to give is what cloudvamp *allocates*: usage plus the policy's
surge margin, and grows back toward nominal after a shortfall. Counting usage lets the
scheduler fill memory the policy will ask for minutes later, which then takes a live
migration (measured: ``cvem bench lend``). So this strategy counts, per host, the peak of
the Σ of its managed VMs' allocations over the last ``peak_windows`` windows (a day at the
default 30-minute window, so daily peaks are remembered), times ``1 + margin_ratio``; VMs the
history has not seen count at nominal (:mod:`cvem.lending.target`). It keeps its own ring of
window peaks, so the day-long memory does not depend on ``[lend] history_windows``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

import numpy as np

from .base import Estimate, Strategy


@dataclass(frozen=True)
class AllocPeakParams:
    peak_windows: int = field(default=48, metadata={
        "min": 1, "max": 10000, "help": "windows over which the allocation peak is kept"})
    margin_ratio: float = field(default=0.3, metadata={
        "min": 0.0, "max": 2.0, "help": "added to the peak, × the peak"})


class AllocPeak(Strategy):
    """cloudvamp's own: the day's peak of Σ allocation (what the policy hands out) × 1.3."""

    name = "allocpeak"
    Params = AllocPeakParams
    from_history = True

    def estimate(self, windows, host, state, history_windows):
        ring: Tuple[float, ...] = state if isinstance(state, tuple) else ()
        if windows:
            w = windows[-1]
            series = w.alloc_samples_kib if w.alloc_samples_kib is not None else w.samples_kib
            if len(series):
                ring = (ring + (float(np.max(series)),))[-self.params.peak_windows:]
        if not ring:
            return Estimate(None, ring)
        return Estimate(max(ring) * (1.0 + self.params.margin_ratio), ring)
