"""The lending strategies of ScroogeVM's comparison (peers.md §2.2), in memory terms, plus
``none`` and ``fixed`` (cloudvamp's lend factor). Each returns the managed VMs' expected use
of the host; the scheduler is offered the capacity minus it (:mod:`cvem.lending.target`).
``scroogevm`` itself lives in :mod:`cvem.lending.scroogevm`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .base import Estimate, HostNow, Strategy, Window, all_samples


@dataclass(frozen=True)
class NoParams:
    pass


class NoLending(Strategy):
    """The scheduler sees what resizing frees (``MAX_MEM − Σ MEMORY``), nothing more."""

    name = "none"
    Params = NoParams
    from_history = False
    per_cycle = True

    def estimate(self, windows, host, state, history_windows):
        return Estimate(host.allocated_kib, state)


@dataclass(frozen=True)
class FixedParams:
    lend_ratio: float = field(default=0.5, metadata={
        "min": 0.0, "max": 1.0,
        "help": "share of the memory resizing freed (nominal − MEMORY) offered to the scheduler"})


class Fixed(Strategy):
    """cloudvamp's lend factor (the 2015 original's ``$O``): hold back ``1 − lend_ratio`` of
    what resizing freed so grows find room without migrations."""

    name = "fixed"
    Params = FixedParams
    from_history = False
    per_cycle = True

    def estimate(self, windows, host, state, history_windows):
        freed = max(host.booked_kib - host.allocated_kib, 0.0)
        return Estimate(host.allocated_kib + (1.0 - self.params.lend_ratio) * freed, state)


@dataclass(frozen=True)
class PercentileParams:
    percentile: float = field(default=90.0, metadata={
        "min": 0.0, "max": 100.0, "help": "percentile of the host's usage samples (ScroogeVM: 90)"})


class _SampleStatistic(Strategy):
    """A strategy that is one statistic of every usage sample in the history."""

    from_history = True

    def statistic_kib(self, samples_kib: np.ndarray) -> float:
        raise NotImplementedError

    def estimate(self, windows, host, state, history_windows):
        x = all_samples(windows)
        if x.size == 0:
            return Estimate(None, state)
        return Estimate(self.statistic_kib(x), state)


class Percentile(_SampleStatistic):
    """ScroogeVM ``percentile``: the P-th percentile of every usage sample in the history."""

    name = "percentile"
    Params = PercentileParams

    def statistic_kib(self, samples_kib):
        return float(np.percentile(samples_kib, self.params.percentile))


@dataclass(frozen=True)
class NSigmaParams:
    n_sigma: float = field(default=5.0, metadata={
        "min": 0.0, "max": 20.0, "help": "mean + n·σ of the usage samples (Google's N-sigma: 5)"})


def _n_sigma_kib(samples_kib: np.ndarray, n_sigma: float) -> float:
    return float(samples_kib.mean() + n_sigma * samples_kib.std())


class NSigma(_SampleStatistic):
    """``nsigma`` (Bashir et al., EuroSys'21): mean + nσ of every sample in the history."""

    name = "nsigma"
    Params = NSigmaParams

    def statistic_kib(self, samples_kib):
        return _n_sigma_kib(samples_kib, self.params.n_sigma)


@dataclass(frozen=True)
class BorgParams:
    ratio: float = field(default=1.1, metadata={
        "min": 1.0, "max": 10.0, "help": "booked memory ÷ ratio is counted as used (Borg: 1.1)"})


class Borg(Strategy):
    """``borg``: a static oversubscription ratio on booked (nominal) memory."""

    name = "borg"
    Params = BorgParams
    from_history = False
    per_cycle = True

    def estimate(self, windows, host, state, history_windows):
        return Estimate(host.booked_kib / self.params.ratio, state)


def _vm_peaks(windows: Sequence[Window], host: HostNow):
    """Σ over the host's VMs of their peak over the history (VMs with no peak: 0; the
    target layer counts newcomers separately)."""
    peak = {}
    for w in windows:
        for vm, p in w.vm_peak_kib.items():
            if p > peak.get(vm, -1.0):
                peak[vm] = p
    return float(sum(peak.get(vm, 0.0) for vm in host.vm_nominal_kib))


class RcLike(Strategy):
    """``rclike`` (Resource-Central-like): Σ of each VM's peak (p100) memory over the history;
    the full booked size until the history is full."""

    name = "rclike"
    Params = NoParams
    from_history = True

    def estimate(self, windows, host, state, history_windows):
        if len(windows) < history_windows:
            return Estimate(host.booked_kib, state)
        return Estimate(_vm_peaks(windows, host), state)


class MaxPeak(Strategy):
    """``maxpeak``: the larger of ``nsigma`` and ``rclike``."""

    name = "maxpeak"
    Params = NSigmaParams
    from_history = True

    def estimate(self, windows, host, state, history_windows):
        x = all_samples(windows)
        if len(windows) < history_windows or x.size == 0:
            return Estimate(host.booked_kib, state)
        return Estimate(max(_n_sigma_kib(x, self.params.n_sigma), _vm_peaks(windows, host)), state)


@dataclass(frozen=True)
class DoaParams:
    threshold_ratio: float = field(default=0.95, metadata={
        "min": 0.0, "max": 1.0, "help": "a window whose peak stays below this share of capacity "
                                        "lets the host lend more"})
    step_ratio: float = field(default=0.05, metadata={
        "min": 0.0, "max": 1.0, "help": "additive decrease of 'seen as used', × capacity"})
    jump_ratio: float = field(default=0.5, metadata={
        "min": 0.0, "max": 1.0, "help": "increase of 'seen as used' after a hot window, × capacity"})
    max_ratio: float = field(default=3.0, metadata={
        "min": 1.0, "max": 10.0, "help": "never count less than booked ÷ max_ratio as used"})


class Doa(Strategy):
    """ScroogeVM ``doa``: reactive additive increase of oversubscription. Starts at booked
    (1:1); each quiet window (peak < threshold × capacity) counts capacity × step less as
    used, each hot window capacity × jump more; bounded by [booked ÷ max_ratio, booked]."""

    name = "doa"
    Params = DoaParams
    from_history = False

    def estimate(self, windows, host, state: Any, history_windows):
        p = self.params
        seen = host.booked_kib if state is None else float(state)
        if windows:
            peak = float(np.max(windows[-1].samples_kib)) if len(windows[-1].samples_kib) else 0.0
            if peak < p.threshold_ratio * host.capacity_kib:
                seen -= p.step_ratio * host.capacity_kib
            else:
                seen += p.jump_ratio * host.capacity_kib
        seen = float(np.clip(seen, host.booked_kib / p.max_ratio, host.booked_kib))
        return Estimate(seen, seen)
