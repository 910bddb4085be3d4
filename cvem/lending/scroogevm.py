"""ScroogeVM's own strategy (Jacquet, Ledoux, Rouvoy, IEEE TSUSC 2024; peers.md §2.2–2.3):
the managed VMs' use is mean + k·σ of every sample of the history, with a per-host k kept
between windows in [k_min, k_max] (start k_init). A *stable* host gets k − k_down (lend
more), an unstable host whose mean rose since the previous window gets k + k_up (lend less),
an unstable host whose mean fell keeps k.

Stability: ScroogeVM fits a small LSTM and calls a host stable when the new window is as
predictable as the history. We use a documented statistical test instead: the host is
stable when the Mann–Kendall test (:mod:`cvem.core.trend`) finds no monotone trend in the
whole history at level ``alpha`` *and* the newest window's mean lies within ``band_sigma``
standard deviations of the older windows' mean — no drift, no level shift. As in ScroogeVM,
a host is never stable before its history is full.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.trend import mann_kendall
from ..errors import ConfigError
from .base import Estimate, Strategy, all_samples

MIB_KIB = 1024.0


@dataclass(frozen=True)
class ScroogeParams:
    k_init: float = field(default=3.5, metadata={"min": 0.0, "help": "k of a new host"})
    k_min: float = field(default=2.0, metadata={"min": 0.0, "help": "lower bound of k"})
    k_max: float = field(default=5.0, metadata={"min": 0.0, "help": "upper bound of k"})
    k_down: float = field(default=0.1, metadata={"min": 0.0, "help": "k decrease when stable"})
    k_up: float = field(default=0.2, metadata={"min": 0.0, "help": "k increase when rising"})
    alpha: float = field(default=0.05, metadata={
        "min": 0.0001, "max": 0.5, "help": "Mann–Kendall significance level for a trend"})
    band_sigma: float = field(default=1.0, metadata={
        "min": 0.0, "help": "newest window's mean within this many σ of the older ones"})

    def validate(self) -> None:
        if not self.k_min <= self.k_init <= self.k_max:
            raise ConfigError(f"[lend:scroogevm] k_init={self.k_init} must lie in "
                              f"[k_min={self.k_min}, k_max={self.k_max}]")


@dataclass(frozen=True)
class ScroogeState:
    k: float
    previous_mean_kib: float = math.nan
    stable: bool = False


def is_stable(windows, alpha: float, band_sigma: float) -> bool:
    older = all_samples(windows[:-1])
    newest = np.asarray(windows[-1].samples_kib, dtype=np.float64)
    if older.size == 0 or newest.size == 0:
        return False
    if mann_kendall(np.r_[older, newest]).trend(alpha) != 0:
        return False
    return abs(newest.mean() - older.mean()) <= band_sigma * older.std() + MIB_KIB


class ScroogeVm(Strategy):
    """ScroogeVM's own: mean + k·σ, k stepped by a Mann–Kendall stability test."""

    name = "scroogevm"
    Params = ScroogeParams
    from_history = True

    def estimate(self, windows, host, state, history_windows):
        p = self.params
        st = state if isinstance(state, ScroogeState) else ScroogeState(p.k_init)
        x = all_samples(windows)
        if x.size == 0:
            return Estimate(None, st)
        mean = float(np.asarray(windows[-1].samples_kib, dtype=np.float64).mean())
        k = st.k
        stable = len(windows) >= history_windows and is_stable(windows, p.alpha, p.band_sigma)
        if stable:
            k -= p.k_down
        elif math.isfinite(st.previous_mean_kib) and mean > st.previous_mean_kib + MIB_KIB:
            k += p.k_up   # ScroogeVM rounds the previous mean up before comparing
        k = float(np.clip(k, p.k_min, p.k_max))
        used = float(x.mean() + k * x.std())
        return Estimate(used, ScroogeState(k, mean, stable))
