"""Per-VM rings of time-slot maxima (the "peak need in each slot" both max-window and the
default policy's time-of-day habits keep)."""
from __future__ import annotations

import numpy as np


def record_slot_max(ring: np.ndarray, last_slot: np.ndarray, slot: int, values: np.ndarray,
                    seen: np.ndarray):
    """Advance every VM's ring to absolute slot number ``slot`` and fold ``values`` in.

    Slots each VM skipped since its ``last_slot`` are cleared (NaN) so old maxima drop out;
    a VM seen for the first time (``last_slot < 0``) starts empty. Returns the new ring and
    the new last-slot column; the inputs are not modified.
    """
    width = ring.shape[1]
    ring = ring.copy()
    gap = slot - last_slot
    for g in np.unique(gap[gap > 0]):
        rows = np.flatnonzero(gap == g)
        if g >= width or np.any(last_slot[rows] < 0):
            ring[rows] = np.nan
        else:
            ring[np.ix_(rows, np.arange(slot - g + 1, slot + 1) % width)] = np.nan
    col = slot % width
    ring[seen, col] = np.fmax(ring[seen, col], values[seen])
    return ring, np.full_like(last_slot, slot)


def max_over(ring: np.ndarray, cols) -> np.ndarray:
    """Per VM, the largest recorded value in ``cols`` (NaN when all are empty)."""
    window = ring[:, cols]
    with np.errstate(all="ignore"):
        peak = np.where(np.isnan(window), -np.inf, window).max(axis=1)
    return np.where(np.isfinite(peak), peak, np.nan)
