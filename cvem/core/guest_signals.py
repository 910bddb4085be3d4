"""How the decision core reads a guest's memory figures: the one path the service and the
simulator share, so a policy sees the same thing in both.

A guest reports (through the publisher in ``onegate/``) its used memory, its swap in use, its
swap-in rate and its PSI ``full avg10``. It never reports how much memory it *lacks*: a guest
that is short shows used ≈ its allocation, and only its pressure signals tell. The core reads:

* ``used``: the reported figure, when the report is valid;
* ``pressure``: swapping in faster than ``swap_in_kib_s`` or PSI full above ``psi_full_avg10``
  percent — the guest is waiting for memory now, whatever its used figure says;
* ``deficit``: under pressure, the swap in use (memory it had to push out is memory it lacks);
  otherwise nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PressureThresholds:
    psi_full_avg10: float = 1.0       # percent of time every task stalled on memory
    swap_in_kib_s: float = 256.0      # a guest pulling pages back faster than this is short


def read_guest_figures(valid: np.ndarray, used_kib: np.ndarray, swap_used_kib: np.ndarray,
                       swap_in_kib_s: np.ndarray, psi_full_avg10: np.ndarray,
                       thresholds: PressureThresholds = PressureThresholds()):
    """(used, report_ok, pressure, deficit) columns from per-guest figures.

    ``valid`` says a report exists and is fresh; a used figure that is not a finite
    non-negative number makes it invalid too. ``psi_full_avg10`` is NaN when the guest has no
    PSI. Invalid reports read as used NaN, no pressure, no deficit.
    """
    used = np.asarray(used_kib, dtype=np.float64)
    ok = np.asarray(valid, dtype=bool) & np.isfinite(used) & (used >= 0)
    swap_in = np.nan_to_num(np.asarray(swap_in_kib_s, dtype=np.float64), nan=0.0)
    psi = np.nan_to_num(np.asarray(psi_full_avg10, dtype=np.float64), nan=0.0)
    pressure = ok & ((swap_in > thresholds.swap_in_kib_s) | (psi > thresholds.psi_full_avg10))
    swapped = np.nan_to_num(np.asarray(swap_used_kib, dtype=np.float64), nan=0.0)
    deficit = np.where(pressure, np.maximum(swapped, 0.0), 0.0)
    return np.where(ok, used, np.nan), ok, pressure, deficit
