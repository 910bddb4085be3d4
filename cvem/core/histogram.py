"""Exponentially bucketed, exponentially decaying histograms, one row per VM.

The shape of Kubernetes VPA's memory histograms (``shared/reference/style.md`` §2): buckets
grow by a fixed ratio from a first bucket size, a sample's weight doubles every half-life so
recent samples count more, and the reference time is moved forward (rescaling all weights)
before the exponent could overflow.
"""
from __future__ import annotations

import numpy as np

MAX_DECAY_EXPONENT = 50.0


def bucket_edges_kib(first_bucket_kib: float, ratio: float, max_kib: float) -> np.ndarray:
    """Edges e[0]=0 < e[1] < ...; bucket i covers [e[i], e[i+1])."""
    edges = [0.0]
    i = 1
    while edges[-1] < max_kib:
        edges.append(first_bucket_kib * (ratio ** i - 1.0) / (ratio - 1.0))
        i += 1
    return np.asarray(edges)


def bucket_of(values_kib: np.ndarray, edges_kib: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(edges_kib, values_kib, side="right") - 1
    return np.clip(idx, 0, edges_kib.size - 2)


def decay_weight(times_s: np.ndarray, reference_s: np.ndarray, half_life_s: float) -> np.ndarray:
    return np.exp2((times_s - reference_s) / half_life_s)


def rebase(weights: np.ndarray, reference_s: np.ndarray, now_s: float, half_life_s: float):
    """Move the reference of rows whose exponent grew large to ``now_s``."""
    exponent = (now_s - reference_s) / half_life_s
    far = exponent > MAX_DECAY_EXPONENT
    if far.any():
        weights = weights.copy()
        weights[far] *= np.exp2(-exponent[far])[:, None]
        reference_s = np.where(far, now_s, reference_s)
    return weights, reference_s


def percentile_kib(weights: np.ndarray, edges_kib: np.ndarray, q: float) -> np.ndarray:
    """Per row, the upper edge of the bucket where the cumulative weight reaches ``q``.

    Rows with no weight give NaN.
    """
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1]
    idx = np.argmax(cum >= (q * total)[:, None], axis=1)
    out = edges_kib[idx + 1]
    return np.where(total > 0, out, np.nan)
