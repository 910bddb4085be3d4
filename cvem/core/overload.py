"""Host overload detection: pluggable detectors over each host's memory-demand history.

A host is *overloaded* when either

* the grows it owes (the planner's ``missing_kib``: grows that did not fit in its physical free
  memory minus the reserve, nor in oned's MAX_MEM − MEM_USAGE) are not zero — a guest is
  waiting for memory the host cannot give (handled in :mod:`cvem.core.migration`); or
* a detector forecasts that its guests' total demand exceeds what it may hold.

The detectors are OpenStack Neat's (``shared/reference/peers.md`` §4.2), moved from CPU
utilisation to memory demand. They read the host's demand history (Σ guest need per host,
one sample per control cycle, oldest first, NaN where unknown) and return a forecast and a
limit per host; ``forecast − limit`` is what the host must shed.

* ``threshold`` (Neat THR): the last demand against ``ratio`` × usable physical memory.
* ``mad`` / ``iqr`` (Neat MAD/IQR): an adaptive limit ``1 − safety × MAD`` (or × IQR) of the
  host's utilisation history; a host whose demand swings widely is declared overloaded earlier.
  Paper safety parameters: MAD 2.5, IQR 1.5.
* ``local-regression`` (Neat LR): a linear fit over the last ``length`` samples extrapolated to
  now + the host's migration time; overloaded if ``safety`` × prediction ≥ usable memory
  (paper: 1.2). It migrates *before* the host runs out, by as much as a migration takes.

Pure functions over numpy columns: no clock, no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import numpy as np

from ..errors import ConfigError
from .params import build_params


@dataclass(frozen=True)
class ThresholdParams:
    ratio: float = field(default=1.0, metadata={
        "min": 0.1, "max": 2.0,
        "help": "overloaded when demand exceeds this fraction of usable physical memory"})


@dataclass(frozen=True)
class MadParams:
    safety: float = field(default=2.5, metadata={
        "min": 0.0, "max": 100.0, "help": "limit = 1 − safety × MAD(utilisation) (Neat: 2.5)"})
    min_samples: int = field(default=12, metadata={
        "min": 3, "help": "no adaptive limit before this many samples (Neat's limit)"})


@dataclass(frozen=True)
class IqrParams:
    safety: float = field(default=1.5, metadata={
        "min": 0.0, "max": 100.0, "help": "limit = 1 − safety × IQR(utilisation) (Neat: 1.5)"})
    min_samples: int = field(default=12, metadata={
        "min": 4, "help": "no adaptive limit before this many samples"})


@dataclass(frozen=True)
class LocalRegressionParams:
    safety: float = field(default=1.2, metadata={
        "min": 0.5, "max": 10.0, "help": "overloaded if safety × forecast ≥ usable (Neat: 1.2)"})
    length: int = field(default=10, metadata={
        "min": 2, "max": 1000, "help": "samples in the linear fit"})


DETECTORS: Dict[str, type] = {
    "threshold": ThresholdParams,
    "mad": MadParams,
    "iqr": IqrParams,
    "local-regression": LocalRegressionParams,
}


@dataclass(frozen=True)
class Detector:
    name: str
    params: Any


def load_detector(name: str, values: Optional[Mapping[str, Any]] = None) -> Detector:
    """A detector by name with validated parameters (``[overload:<name>]`` in the config)."""
    cls = DETECTORS.get(name)
    if cls is None:
        raise ConfigError(f"unknown overload detector {name!r}; choose from "
                          f"{', '.join(sorted(DETECTORS))}")
    return Detector(name=name, params=build_params(cls, values or {}, f"overload:{name}"))


@dataclass(frozen=True)
class HostLoad:
    """Detector output, one entry per host."""

    forecast_kib: np.ndarray   # float64: the demand the detector expects
    limit_kib: np.ndarray      # float64: what the host may hold before it is overloaded

    @property
    def overloaded(self) -> np.ndarray:
        return self.forecast_kib > self.limit_kib

    @property
    def excess_kib(self) -> np.ndarray:
        """What the host must shed to get back under its limit (0 when it is not over)."""
        return np.maximum(self.forecast_kib - self.limit_kib, 0.0)


def _newest(history_kib: np.ndarray) -> np.ndarray:
    """This cycle's sample of each row. NaN (some guest's need unknown now) means no
    forecast: an older sample must not stand in for a host whose guests went silent."""
    if history_kib.shape[1] == 0:
        return np.full(history_kib.shape[0], np.nan)
    return history_kib[:, -1]


def detect(detector: Detector, history_kib: np.ndarray, times_s: np.ndarray,
           usable_kib: np.ndarray, horizon_s: np.ndarray) -> HostLoad:
    """Forecast and limit per host.

    ``history_kib`` [host, samples] oldest first (NaN = unknown), ``times_s`` [samples] when
    each sample was taken, ``usable_kib`` [host] physical minus reserve, ``horizon_s`` [host]
    how far ahead to look (the host's migration time; used by ``local-regression``).
    A host without this cycle's sample is never overloaded by forecast (its grows still
    count).
    """
    usable = np.asarray(usable_kib, dtype=np.float64)
    p = detector.params
    last = _newest(history_kib)
    no_data = ~np.isfinite(last)
    last = np.where(no_data, 0.0, last)
    inf = np.full(usable.shape, np.inf)
    if detector.name == "threshold":
        limit = p.ratio * usable
        return HostLoad(last, np.where(no_data, inf, limit))
    safe_usable = np.maximum(usable, 1.0)
    if detector.name in ("mad", "iqr"):
        util = history_kib / safe_usable[:, None]
        count = np.isfinite(util).sum(axis=1)
        enough = count >= p.min_samples
        limit = np.full(usable.shape, np.inf)
        if enough.any():
            u = util[enough]
            with np.errstate(all="ignore"):
                if detector.name == "mad":
                    med = np.nanmedian(u, axis=1)
                    spread = np.nanmedian(np.abs(u - med[:, None]), axis=1)
                else:
                    q75, q25 = np.nanpercentile(u, [75, 25], axis=1)
                    spread = q75 - q25
            limit_ratio = np.clip(1.0 - p.safety * spread, 0.0, 1.0)
            limit[enough] = limit_ratio * usable[enough]
        return HostLoad(last, limit)
    if detector.name == "local-regression":
        n = min(p.length, history_kib.shape[1])
        y = history_kib[:, -n:] if n else history_kib
        x = np.asarray(times_s[-n:], dtype=np.float64) if n else np.zeros(0)
        ok = np.isfinite(y)
        cnt = ok.sum(axis=1)
        fit = cnt >= 2
        forecast = last.copy()
        if fit.any() and n:
            xs = np.where(ok, x[None, :], 0.0)
            ys = np.where(ok, y, 0.0)
            mx = xs.sum(axis=1) / np.maximum(cnt, 1)
            my = ys.sum(axis=1) / np.maximum(cnt, 1)
            dx = np.where(ok, x[None, :] - mx[:, None], 0.0)
            dy = np.where(ok, y - my[:, None], 0.0)
            var = (dx * dx).sum(axis=1)
            slope = np.where(var > 0, (dx * dy).sum(axis=1) / np.where(var > 0, var, 1.0), 0.0)
            at = x[-1] + np.asarray(horizon_s, dtype=np.float64)
            pred = my + slope * (at - mx)
            # A forecast never goes below what the host holds now: a falling trend must not
            # hide a host that is already over.
            forecast = np.where(fit, np.maximum(pred, last), last)
        return HostLoad(p.safety * forecast, np.where(no_data, inf, usable))
    raise ConfigError(f"unknown overload detector {detector.name!r}")
