"""The reclaim/safety frontier as pure functions over metric rows.

A *row* is one simulated operating point of one policy, a mapping with at least
``policy``, ``reclaimed_pct``, ``oracle_efficiency_pct``, ``shortfall_interval_pct`` and
``severe_events`` (plus, for display, ``param``, ``value``, ``shipped``,
``avoidable_severe``, ``resizes_per_vm_hour``). Nothing here runs a simulation, so the
benchmark's claims ("the fewest severe events any swept point reaches at 85 % of the
oracle", "default dominates vpa at vpa's own shortfall") can be tested on hand-made rows.
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

Row = Mapping[str, object]

SHORT = "shortfall_interval_pct"
RECLAIM = "reclaimed_pct"
OF_ORACLE = "oracle_efficiency_pct"
SEVERE = "severe_events"


def rows_of(rows: Iterable[Row], policy: str) -> List[Row]:
    return [r for r in rows if r["policy"] == policy]


def envelope(rows: Sequence[Row]) -> List[Row]:
    """The points no other point beats on both reclaim and shortfall (the upper-left
    envelope), by rising shortfall. Ties on shortfall keep the higher reclaim."""
    ordered = sorted(rows, key=lambda r: (float(r[SHORT]), -float(r[RECLAIM])))
    out: List[Row] = []
    for r in ordered:
        if not out or float(r[RECLAIM]) > float(out[-1][RECLAIM]):
            out.append(r)
    return out


def _between(x: float, x0: float, x1: float, y0: float, y1: float) -> float:
    if x1 == x0:
        return max(y0, y1)
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def at_shortfall(rows: Sequence[Row], short_pct: float) -> Optional[Dict[str, float]]:
    """Reclaim, share of the oracle and severe events interpolated (linearly in shortfall)
    on the envelope of ``rows`` at ``short_pct``; None when the envelope does not reach that
    shortfall (below its most cautious point or above its boldest one)."""
    env = envelope(rows)
    if not env:
        return None
    xs = [float(r[SHORT]) for r in env]
    if short_pct < xs[0] or short_pct > xs[-1]:
        return None
    for lo, hi in zip(env, env[1:] + env[-1:]):
        x0, x1 = float(lo[SHORT]), float(hi[SHORT])
        if x0 <= short_pct <= x1:
            return {k: _between(short_pct, x0, x1, float(lo[k]), float(hi[k]))
                    for k in (RECLAIM, OF_ORACLE, SEVERE)}
    return None  # pragma: no cover  (the range check above makes this unreachable)


def dominance(own_rows: Sequence[Row], other: Row) -> Dict[str, object]:
    """Does the frontier of ``own_rows`` dominate ``other`` at ``other``'s own shortfall?

    ``interpolated``: the envelope's reclaim and severe events at that shortfall;
    ``dominates``: at least as much reclaim and no more severe events there (None when
    the envelope does not reach it, with ``reach`` saying which way it falls short);
    ``witness``: a swept point that beats ``other`` on shortfall, reclaim and severe
    events at once, without interpolation (None if there is none).
    """
    short = float(other[SHORT])
    found = at_shortfall(own_rows, short)
    out: Dict[str, object] = {"arm": other["policy"], "short_pct": short,
                              "arm_reclaimed_pct": float(other[RECLAIM]),
                              "arm_severe": float(other[SEVERE]), "interpolated": found,
                              "dominates": None, "reach": "reached"}
    witnesses = [r for r in own_rows
                 if float(r[SHORT]) <= short and float(r[RECLAIM]) >= float(other[RECLAIM])
                 and float(r[SEVERE]) <= float(other[SEVERE])]
    out["witness"] = max(witnesses, key=lambda r: float(r[RECLAIM])) if witnesses else None
    if found is not None:
        out["dominates_reclaim"] = bool(found[RECLAIM] >= float(other[RECLAIM]))
        out["dominates_severe"] = bool(found[SEVERE] <= float(other[SEVERE]))
        out["dominates"] = bool(out["dominates_reclaim"] and out["dominates_severe"])
    if out["witness"] is not None:
        # a real operating point at no more shortfall beats it: that is dominance whatever
        # the straight line between two swept points says
        out["dominates"] = True
    elif found is None:
        xs = [float(r[SHORT]) for r in own_rows]
        out["reach"] = ("not reached: the sweep's most cautious point is bolder"
                        if xs and short < min(xs) else
                        "not reached: the sweep's boldest point is more cautious")
    return out


def severe_at_reclaim(rows: Sequence[Row], of_oracle_pct: float) -> Optional[float]:
    """Severe events interpolated at exactly ``of_oracle_pct`` of the oracle, between the
    two swept points around it on the lower envelope (the fewest severe events for at least
    that reclaim); None outside the swept reclaim."""
    ordered = sorted(rows, key=lambda r: float(r[OF_ORACLE]))
    lower: List[Row] = []
    for r in reversed(ordered):        # from the boldest: keep points with fewer events
        if not lower or float(r[SEVERE]) < float(lower[-1][SEVERE]):
            lower.append(r)
    lower.reverse()
    for lo, hi in zip(lower, lower[1:]):
        x0, x1 = float(lo[OF_ORACLE]), float(hi[OF_ORACLE])
        if x0 <= of_oracle_pct <= x1:
            return _between(of_oracle_pct, x0, x1, float(lo[SEVERE]), float(hi[SEVERE]))
    if lower and float(lower[0][OF_ORACLE]) >= of_oracle_pct:
        return None if float(lower[0][OF_ORACLE]) > of_oracle_pct else float(lower[0][SEVERE])
    return None


def fewest_severe_at(rows: Sequence[Row], min_of_oracle_pct: float) -> Optional[Row]:
    """The row with the fewest severe events among those at or above ``min_of_oracle_pct``
    of the oracle's reclaim (ties: more reclaim); None if no row gets there."""
    able = [r for r in rows if float(r[OF_ORACLE]) >= min_of_oracle_pct]
    if not able:
        return None
    return min(able, key=lambda r: (float(r[SEVERE]), -float(r[RECLAIM])))


def target_bound(rows: Sequence[Row], min_of_oracle_pct: float = 85.0,
                 reference: str = "vpa") -> Dict[str, object]:
    """What bounds the "≥ ``min_of_oracle_pct`` % of the oracle with no more severe events
    than ``reference``" target: per policy and over all, the fewest severe events a swept
    point reaches at that reclaim, against the reference policy's shipped count."""
    ref = [r for r in rows_of(rows, reference) if r.get("shipped")]
    ref_severe = float(ref[0][SEVERE]) if ref else math.nan
    per_policy, interpolated = {}, {}
    for name in dict.fromkeys(r["policy"] for r in rows):
        per_policy[name] = fewest_severe_at(rows_of(rows, name), min_of_oracle_pct)
        interpolated[name] = severe_at_reclaim(rows_of(rows, name), min_of_oracle_pct)
    best = fewest_severe_at([r for r in rows if r["policy"] != "oracle"], min_of_oracle_pct)
    return {"min_of_oracle_pct": min_of_oracle_pct, "reference": reference,
            "reference_severe": ref_severe, "per_policy": per_policy,
            "interpolated_severe": interpolated, "best": best,
            "met": bool(best is not None and float(best[SEVERE]) <= ref_severe)}
