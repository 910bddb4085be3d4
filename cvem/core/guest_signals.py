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

import math
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


# ------------------------------------------------------------ freshness from the probe
# The publisher writes on change (onegate/: a deadband on used memory, pressure at once) and
# otherwise only a long heartbeat, because each OneGate PUT is a write to oned. So an
# unchanged report is not a dead one: the host probe's balloon statistics (libvirt
# memoryStats with a stats period: ``available`` = guest MemTotal, ``usable`` = MemAvailable,
# ``last_update``) say whether the guest's use is still what the report says.
REPORT_FRESH = "fresh"                # its sequence changed within stale_after_s
REPORT_CORROBORATED = "corroborated"  # unchanged, but fresh probe figures agree with it
REPORT_MOVED = "moved"                # unchanged, and fresh probe figures moved away from it
REPORT_STALE = "stale"                # too old, or no fresh probe figures to judge it by


@dataclass(frozen=True)
class Corroboration:
    """How far the probe's used figure may be from a report's to agree with it, and how
    long an unchanged report may be kept current by the probe (past ``stale_after_s``)."""

    agree_kib: float = 128 * 1024   # 2 × the publisher's default deadband (64 MiB) ...
    agree_ratio: float = 0.04       # ... or 2 × its 2 % of MemTotal
    max_age_s: float = 3900.0       # 2 × the publisher's 1800 s heartbeat + 300 s


def report_freshness(report_age_s: float, stale_after_s: float, probe_fresh: bool,
                     report_used_kib: float, probe_used_kib: float, total_kib: float,
                     rules: Corroboration = Corroboration()) -> str:
    """One of the ``REPORT_*`` verdicts for an in-guest report ``report_age_s`` old (on
    cvem's clock, since its sequence last changed).

    A live publisher sends any move of used memory past its deadband at once, so a report
    the probe still agrees with (within the larger of ``agree_kib`` and ``agree_ratio`` of
    the guest's MemTotal, twice the publisher's deadband to absorb the two sampling times)
    is current. One the probe disagrees with comes from a publisher that stayed silent or
    died: it must never drive a shrink (see :func:`hold_shrinks`).
    """
    if report_age_s <= stale_after_s:
        return REPORT_FRESH
    if report_age_s > rules.max_age_s or not probe_fresh:
        return REPORT_STALE
    if not (math.isfinite(report_used_kib) and math.isfinite(probe_used_kib)):
        return REPORT_STALE
    tolerance_kib = max(rules.agree_kib, rules.agree_ratio * max(total_kib, 0.0))
    if abs(report_used_kib - probe_used_kib) <= tolerance_kib:
        return REPORT_CORROBORATED
    return REPORT_MOVED


def hold_shrinks(verdict: str) -> bool:
    """Whether a report with this verdict may only grow its VM, never shrink it."""
    return verdict == REPORT_MOVED
