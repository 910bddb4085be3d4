"""Mann–Kendall trend test: is a series monotonically rising or falling?

Non-parametric (no normality assumption, robust to the spiky memory series of real hosts):
S = Σ_{i<j} sign(x_j − x_i), its variance under "no trend" is n(n−1)(2n+5)/18 minus a
correction for tied groups, and Z = (S ∓ 1)/√Var is compared with the standard normal.
Reference: Mann (1945), Kendall (1975); Hipel & McLeod, *Time Series Modelling of Water
Resources* §23.3. Used by the ``scroogevm`` lending strategy to judge a host's stability
where ScroogeVM itself fits an LSTM.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrendTest:
    s: int
    z: float
    p_value: float        # two-sided
    n: int

    def trend(self, alpha: float) -> int:
        """+1 rising, −1 falling, 0 no significant trend at level ``alpha``."""
        if self.p_value >= alpha:
            return 0
        return 1 if self.s > 0 else -1


def mann_kendall(values, max_points: int = 64) -> TrendTest:
    """The test on ``values`` (oldest first). Longer series are averaged down to
    ``max_points`` consecutive blocks first: the test is O(n²) and block means keep the
    trend while damping the autocorrelation of densely sampled series."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size > max_points:
        edges = np.linspace(0, x.size, max_points + 1).astype(np.int64)
        x = np.add.reduceat(x, edges[:-1]) / np.diff(edges)
    n = int(x.size)
    if n < 3:
        return TrendTest(0, 0.0, 1.0, n)
    diff = np.sign(x[None, :] - x[:, None])
    s = int(np.triu(diff, k=1).sum())
    _, counts = np.unique(x, return_counts=True)
    ties = counts[counts > 1].astype(np.float64)
    var = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0
    if var <= 0:
        return TrendTest(s, 0.0, 1.0, n)
    z = (s - 1) / math.sqrt(var) if s > 0 else (s + 1) / math.sqrt(var) if s < 0 else 0.0
    p = math.erfc(abs(z) / math.sqrt(2.0))
    return TrendTest(s, z, p, n)
