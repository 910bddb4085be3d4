"""What a simulated guest reports at the end of a period: the publisher's figures
(``onegate/cloudvamp-publisher``), never the memory it lacks.

A guest that needs ``demand`` but holds ``allocation`` < demand cannot use more than it has:
the part of its working set that does not fit is in swap, and it keeps pulling those pages
back and pushing others out. So it reports

* ``used`` = min(demand, allocation) (MemTotal − MemAvailable; the balloon shrinks MemTotal);
* ``swap_used`` = what does not fit (SwapTotal − SwapFree at the sample);
* ``swap_in`` / ``swap_out`` rates, in KiB/s over the period as the publisher computes them
  from ``pswpin``/``pswpout``: a short guest touches its whole working set, so each period it
  pages in at least the part that is out (and as much out); pages swapped out earlier come
  back once there is room again, and newly short memory goes out;
* PSI ``full avg10`` = the share of its working set that is not resident, in percent (a task
  that touches a page in swap stalls; scaled so a guest missing 5 % of its memory stalls ~5 %
  of the time); ``some`` twice that, at most 100.

With ``swap=False`` the guest has no swap device: swap figures stay 0 and only PSI tells
(what it lacks is then invisible: its page cache and, at worst, its processes are lost).

The service reads these through :func:`cvem.core.guest_signals.read_guest_figures`, like
the figures a real guest publishes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GuestFigures:
    used_kib: np.ndarray
    swap_used_kib: np.ndarray
    swap_in_kib_s: np.ndarray
    swap_out_kib_s: np.ndarray
    psi_some_avg10: np.ndarray
    psi_full_avg10: np.ndarray


def guest_figures(demand_kib: np.ndarray, alloc_kib: np.ndarray, swap_before_kib: np.ndarray,
                  period_s: float, swap: bool = True) -> GuestFigures:
    """Each guest's report for a period in which it needed ``demand_kib`` and held
    ``alloc_kib``, its swap holding ``swap_before_kib`` at the start."""
    demand = np.asarray(demand_kib, dtype=np.float64)
    alloc = np.asarray(alloc_kib, dtype=np.float64)
    lacking = np.maximum(demand - alloc, 0.0)
    psi_full = np.minimum(100.0 * lacking / np.maximum(demand, 1.0), 100.0)
    if swap:
        swapped = lacking
        before = np.asarray(swap_before_kib, dtype=np.float64)
        swap_in = (lacking + np.maximum(before - swapped, 0.0)) / period_s
        swap_out = (lacking + np.maximum(swapped - before, 0.0)) / period_s
    else:
        swapped = swap_in = swap_out = np.zeros_like(demand)
    return GuestFigures(used_kib=np.minimum(demand, alloc), swap_used_kib=swapped,
                        swap_in_kib_s=swap_in, swap_out_kib_s=swap_out,
                        psi_some_avg10=np.minimum(2.0 * psi_full, 100.0),
                        psi_full_avg10=psi_full)
