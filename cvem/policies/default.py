"""``default``: cloudvamp's own policy — grow fast, shrink slowly, learn each VM's habits.

Design (measurements and plots in docs/policy.md):

* **Level**: a decaying peak of the guest's need. It follows any rise at once and decays
  toward the current need with half-life ``peak_half_life_s``, so memory is given back
  gradually after a burst instead of at the first quiet sample (Autopilot/VPA: rise quickly,
  decay slowly).
* **Surge margin, learned per VM**: a high quantile (``surge_quantile``, p99.7) of the rises
  of need between two cycles, from a histogram whose weights halve every
  ``surge_half_life_s``. Quiet cycles count as zero rises, so a guest that jumps by 2 GiB
  every few hours keeps 2 GiB of headroom while a guest that did it once a month does not
  hold it for weeks. A shortfall (the guest had to swap) teaches it directly:
  ``deficit_weight`` × the deficit is recorded as a rise. ``surge_quantile=1.0`` uses the
  decaying maximum instead; 0.999 is the cautious setting (half the shortfalls, ~4 points
  less reclaim on the Bitbrains traces).
* **Habit (time of day)**: enterprise guests repeat their day and their week (backups, batch
  windows, business hours). The policy keeps the peak need of every ``habit_slot_s`` slot of
  the last ``habit_days`` days and, at each cycle, holds at least the highest of them for the
  coming ``habit_lookahead_s`` at the same time of day, so memory is in place before a known
  daily job starts instead of one period after.
* **Proportional margin**: ``margin_ratio`` of the need on top, for small noise.

Target = max(level, habit, need × (1 + margin_ratio) + surge_weight × surge). The shared
guards then apply the floor, ceiling, pressure growth, gradual shrink, cooldown and step.
Nothing here is per-VM configuration: every VM starts from the same parameters and learns
its own margins from what it does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.histogram import bucket_edges_kib, bucket_of, percentile_kib, rebase
from .base import Policy


class Default(Policy):
    """Description: decaying peak, per-VM learned surge margin and time-of-day habits.

    Inputs: guest need (used + swapped deficit), pressure. Parameters: see ``Params``.
    Limitations: a VM's first surge larger than anything it did before is short for one
    cycle (as for every causal policy); a new VM has no habits for its first day.
    """

    name = "default"
    guard_defaults = {"cooldown_s": 60.0, "max_shrink_ratio": 0.25}

    @dataclass(frozen=True)
    class Params:
        peak_half_life_s: float = field(default=3600.0, metadata={
            "min": 0.0, "help": "how fast the level decays toward current need"})
        surge_half_life_s: float = field(default=7 * 86400.0, metadata={
            "min": 1.0, "help": "how long a learned surge size is remembered"})
        surge_weight: float = field(default=1.0, metadata={
            "min": 0.0, "max": 10.0, "help": "headroom per learned surge"})
        margin_ratio: float = field(default=0.10, metadata={
            "min": 0.0, "max": 2.0, "help": "headroom as a fraction of need"})
        surge_quantile: float = field(default=0.997, metadata={
            "min": 0.5, "max": 1.0,
            "help": "quantile of the decaying histogram of rises used as surge margin "
                    "(1.0: the decaying maximum)"})
        rise_window_s: float = field(default=300.0, metadata={
            "min": 1.0, "help": "rises are aggregated per window (largest one kept)"})
        deficit_weight: float = field(default=1.5, metadata={
            "min": 0.0, "max": 10.0, "help": "surge learned from a shortfall, × deficit"})
        habit_days: int = field(default=7, metadata={
            "min": 0, "max": 28, "help": "days of time-of-day peaks remembered (0: off)"})
        habit_slot_s: float = field(default=1800.0, metadata={
            "min": 60.0, "max": 86400.0, "help": "time-of-day resolution of habits"})
        habit_lookahead_s: float = field(default=1800.0, metadata={
            "min": 0.0, "max": 43200.0, "help": "how far ahead habits are provisioned"})

        def validate(self):
            from ..errors import ConfigError
            if 86400.0 % self.habit_slot_s:
                raise ConfigError("habit_slot_s must divide a day (86400 s)")

    def __init__(self, params=None):
        super().__init__(params)
        p = self.params
        self.slots_per_day = int(86400 // p.habit_slot_s)
        self.ring_slots = max(1, p.habit_days * self.slots_per_day)
        # Rises from 1 MiB up to 1 TiB, 10 % per bucket; bucket 0 holds "no rise".
        self.rise_edges_kib = bucket_edges_kib(1024.0, 1.10, 2.0 ** 30)

    def initial_state(self):
        return {"level_kib": np.full(1, np.nan), "surge_kib": np.zeros(1),
                "last_need_kib": np.full(1, np.nan), "last_s": np.full(1, np.nan),
                "habit": np.full((1, self.ring_slots), np.nan, dtype=np.float32),
                "habit_slot": np.full(1, -1, dtype=np.int64),
                "rise_hist": np.zeros((1, self.rise_edges_kib.size - 1)),
                "rise_ref_s": np.full(1, np.nan),
                "rise_window_start_s": np.full(1, -np.inf),
                "rise_window_bucket": np.full(1, -1, dtype=np.int64)}

    def _habit(self, obs, need, seen, ring, last_slot):
        """Record this cycle's need in its slot; return the habit peak ahead (NaN if none)."""
        p = self.params
        slot = int(obs.now_s // p.habit_slot_s)
        ring = ring.copy()
        gap = slot - last_slot
        for g in np.unique(gap[gap > 0]):
            rows = np.flatnonzero(gap == g)
            if g >= self.ring_slots or np.any(last_slot[rows] < 0):
                ring[rows] = np.nan
            else:
                ring[np.ix_(rows, np.arange(slot - g + 1, slot + 1) % self.ring_slots)] = np.nan
        col = slot % self.ring_slots
        ring[seen, col] = np.fmax(ring[seen, col], need[seen])
        ahead = int(np.ceil(p.habit_lookahead_s / p.habit_slot_s))
        cols = [(slot - d * self.slots_per_day + j) % self.ring_slots
                for d in range(1, p.habit_days + 1) for j in range(0, ahead + 1)]
        with np.errstate(all="ignore"):
            window = ring[:, cols]
            peak = np.where(np.isnan(window), -np.inf, window).max(axis=1)
        peak = np.where(np.isfinite(peak), peak, np.nan)
        return peak, ring, np.full_like(last_slot, slot)

    def _record_rises(self, now, rise, rows_mask, hist, ref, window):
        """Keep one sample per VM and ``rise_window_s``: the largest rise in that window.

        Aggregating per window (as VPA does with peaks) makes the quantile mean the same
        thing whatever the control period: "miss the largest rise of at most 0.3 % of
        5-minute windows", not "of 0.3 % of cycles", which at 10 s would be 30× more often.
        """
        p = self.params
        start, bucket = window[0].copy(), window[1].copy()
        ref = np.where(np.isnan(ref), now, ref)
        hist, ref = rebase(hist, ref, now, p.surge_half_life_s)
        hist = hist.copy()
        rows = np.flatnonzero(rows_mask)
        if rows.size:
            fresh = now >= start[rows] + p.rise_window_s
            start[rows[fresh]] = now
            bucket[rows[fresh]] = -1
            new_bucket = bucket_of(rise[rows], self.rise_edges_kib)
            higher = new_bucket > bucket[rows]
            r = rows[higher]
            weight = np.exp2((start[r] - ref[r]) / p.surge_half_life_s)
            had = bucket[r] >= 0
            hist[r[had], bucket[r[had]]] -= weight[had]
            hist[r, new_bucket[higher]] += weight
            bucket[r] = new_bucket[higher]
            np.maximum(hist, 0.0, out=hist)
        return hist, ref, (start, bucket)

    def propose(self, obs, state):
        p = self.params
        now = obs.now_s
        need = obs.need_kib()
        seen = np.isfinite(need)
        dt = np.where(np.isfinite(state["last_s"]), now - state["last_s"], 0.0)
        dt = np.maximum(dt, 0.0)

        level = state["level_kib"]
        decayed = need + (level - need) * np.exp2(-dt / p.peak_half_life_s) \
            if p.peak_half_life_s > 0 else need
        level = np.where(seen, np.fmax(need, np.where(np.isfinite(level), decayed, need)), level)

        rise = np.where(np.isfinite(state["last_need_kib"]) & seen,
                        need - state["last_need_kib"], 0.0)
        learned = np.where(obs.pressure, np.fmax(np.maximum(rise, 0.0),
                                                 p.deficit_weight * obs.deficit_kib),
                           np.maximum(rise, 0.0))
        hist, ref = state["rise_hist"], state["rise_ref_s"]
        window = (state["rise_window_start_s"], state["rise_window_bucket"])
        if p.surge_quantile < 1.0:
            hist, ref, window = self._record_rises(now, learned,
                                                   seen & np.isfinite(state["last_need_kib"]),
                                                   hist, ref, window)
            surge = np.nan_to_num(percentile_kib(hist, self.rise_edges_kib, p.surge_quantile))
        else:
            surge = state["surge_kib"] * np.exp2(-dt / p.surge_half_life_s)
            surge = np.fmax(surge, learned)

        target = np.fmax(level, need * (1.0 + p.margin_ratio) + p.surge_weight * surge)
        new_state = {"level_kib": level, "surge_kib": surge,
                     "last_need_kib": np.where(seen, need, state["last_need_kib"]),
                     "last_s": np.where(seen, now, state["last_s"]),
                     "habit": state["habit"], "habit_slot": state["habit_slot"],
                     "rise_hist": hist, "rise_ref_s": ref,
                     "rise_window_start_s": window[0], "rise_window_bucket": window[1]}
        if p.habit_days > 0:
            habit, ring, slot = self._habit(obs, need, seen, state["habit"], state["habit_slot"])
            target = np.fmax(target, habit)
            new_state["habit"], new_state["habit_slot"] = ring, slot
        target = np.where(seen, target, obs.nominal_kib.astype(np.float64))
        return target, new_state
