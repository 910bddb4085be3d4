"""Per-VM memory of levels by time of day: "at this time of day, this VM needed this much".

One row per VM, one column per ``slot_s`` slot of the day. Each cell holds a level and when
it was recorded; a level's weight halves every ``half_life_s`` when read, so a level that
recurs each day stays held around that time of day and one that stops recurring fades.
Everything read back was recorded in the past: the floor for a slot "ahead" is what the VM
needed at that time of day on earlier days (or earlier today).
"""
from __future__ import annotations

import numpy as np


def slot_of_day(now_s: float, slot_s: float) -> int:
    return int((now_s % 86400.0) // slot_s)


def record_daily(levels_kib: np.ndarray, recorded_s: np.ndarray, now_s: float, slot_s: float,
                 half_life_s: float, values_kib: np.ndarray, rows: np.ndarray):
    """Fold ``values_kib`` into this slot of the VMs in ``rows`` (a boolean column).

    The slot keeps the larger of its decayed level and the new value, stamped ``now_s``.
    Returns new (levels, recorded) arrays; the inputs are not modified.
    """
    col = slot_of_day(now_s, slot_s)
    levels, recorded = levels_kib.copy(), recorded_s.copy()
    held = decayed(levels[rows, col], recorded[rows, col], now_s, half_life_s)
    levels[rows, col] = np.fmax(held, values_kib[rows])
    recorded[rows, col] = now_s
    return levels, recorded


def decayed(levels_kib: np.ndarray, recorded_s: np.ndarray, now_s: float,
            half_life_s: float) -> np.ndarray:
    age = np.maximum(now_s - recorded_s, 0.0)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(recorded_s), levels_kib * np.exp2(-age / half_life_s), 0.0)


def daily_floor(levels_kib: np.ndarray, recorded_s: np.ndarray, now_s: float, slot_s: float,
                half_life_s: float, before_s: float, ahead_s: float) -> np.ndarray:
    """Per VM, the largest decayed level recorded in the slots from ``before_s`` before to
    ``ahead_s`` after the current time of day (0 where none)."""
    slots = levels_kib.shape[1]
    col = slot_of_day(now_s, slot_s)
    back = int(np.ceil(before_s / slot_s))
    fwd = int(np.ceil(ahead_s / slot_s))
    cols = [(col + j) % slots for j in range(-back, fwd + 1)]
    return decayed(levels_kib[:, cols], recorded_s[:, cols], now_s, half_life_s).max(axis=1)
