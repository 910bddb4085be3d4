"""``default``: cloudvamp's own policy — grow fast, shrink slowly, learn each VM's margins.

Design (measurements and plots in docs/policy.md):

* **Level**: a decaying peak of the guest's need. It follows any rise at once and decays
  toward the current need with half-life ``peak_half_life_s``, so memory is given back
  gradually after a burst instead of at the first quiet sample (Autopilot/VPA: rise quickly,
  decay slowly).
* **Surge margin, learned per VM**: a decaying histogram of the rises of need (one sample
  per ``rise_window_s``: the window's largest rise, quiet windows count as zero; weights
  halve every ``surge_half_life_s``). A shortfall (the guest had to swap) teaches it
  directly: ``deficit_weight`` × the deficit is recorded as a rise.
* **Margin chosen by cost, per VM** (Autopilot's recommender picks the limit that minimises
  overrun + slack cost, peers.md §5.1): from its histogram each VM takes the margin *m* that
  minimises *m* + ``shortfall_cost_gib`` × P(rise > *m*), i.e. one missed window is worth
  ``shortfall_cost_gib`` GiB of headroom held for one window. With one price for the whole
  fleet this is the Lagrangian optimum of "least memory held for a given number of short
  windows": a VM whose large rises are rare but huge stops paying for them at every cycle,
  a VM whose rises are frequent and moderate gets them covered. ``surge_quantile`` is a
  floor under it (never less than the VM's p99 rise), so no VM is given up on. With
  ``shortfall_cost_gib = 0`` the margin is that quantile alone; ``surge_quantile = 1.0``
  uses a decaying maximum instead.
* **Activity (volatility clustering)**: large rises come in clusters. On the Bitbrains VMs a
  rise above a VM's p99 is 5–7× likelier in the hour after the VM moved by half that much
  than after a quiet hour. Each VM therefore keeps two rise histograms, one for "active"
  cycles (its decaying maximum of ``|Δneed|``, half-life ``activity_half_life_s``, exceeds
  ``activity_threshold`` × its ``surge_quantile`` rise) and one for quiet cycles; a rise is
  recorded in the histogram of the regime in force when the allocation was decided, and the
  margin is chosen from the current regime's histogram (plus ``activity_pool`` × the other
  one, so a rarely seen regime is not estimated from a handful of samples).
* **Proportional margin**: ``margin_ratio`` of the need on top. On the traces it buys fewer
  shortfalls per GiB than a larger absolute margin does (rises grow with the need).
* **Habit (time of day)**, off by default (``habit_days = 0``): the peak need of every
  ``habit_slot_s`` slot of the last ``habit_days`` days, held ``habit_lookahead_s`` ahead.
  Once margins are chosen by cost, it no longer moves the frontier on the Bitbrains VMs (it
  trades reclaim for shortfall at the same rate the cost does), so it is left to sites
  whose guests run strict daily jobs.

* **Starved levels are remembered** (``starved_half_life_s``): when a guest reports
  pressure with a deficit above ``starved_min_ratio`` of its need (or 256 MiB), the level it
  needed (used + swapped) becomes a floor, × (1 + ``starved_margin_ratio``), decaying with
  that half-life. A guest is not starved twice at the same level: most severe shortfalls on
  the traces are at a level the VM had already reached, and a VM that starved once at a
  level tends to go back there. Held 5 days: the reclaim/safety knob (shorter: more reclaim,
  more severe shortfalls).
* **Starved levels by time of day** (``starved_daily_*``): the same level is also held,
  with a half-life of ``starved_daily_half_life_s`` (14 days), from ``starved_daily_before_s``
  before to ``starved_daily_after_s`` after the time of day at which the guest starved, on
  every later day. Recurring peaks (cron, backups, batch) are met shortly *before* they come
  back (PRESS-style signatures, Gong et al. 2010) without holding the level all day long;
  with it, the continuous memory above can be shorter for the same safety.
* **Hysteresis band** (``shrink_band_ratio``, ``grow_headroom_ratio``): the allocation is
  held while it lies between the target and target × (1 + band); outside, it goes to
  target × (1 + headroom). One resize then lasts while the need wanders inside the band
  (each resize is an oned history record and a driver call), and the slack inside the band
  absorbs part of the next rise. On a host with less than ``tight_room_ratio`` of its memory
  unallocated the band narrows to the headroom: slack is free only while the host has room.

Target = max(level, habit, starved floors, need × (1 + margin_ratio) + surge_weight × surge),
then the band. The shared guards then apply the floor, ceiling, pressure growth, gradual
shrink, cooldown and step.
Nothing here is per-VM configuration: every VM starts from the same parameters and learns
its own margins from what it does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.daily_memory import daily_floor, record_daily
from ..core.histogram import bucket_edges_kib, bucket_of, rebase
from ..core.slot_ring import max_over, record_slot_max
from ..core.policy import FrontierKnob, Policy

_DAY_S = 86400.0


class Default(Policy):
    """Description: decaying peak, per-VM surge margin chosen by cost, activity regimes.

    Inputs: guest need (used + swapped deficit), pressure. Parameters: see ``Params``.
    Limitations: a VM's first surge larger than anything it did before is short for one
    cycle (as for every causal policy); a new VM has no habits for its first day.
    """

    name = "default"
    guard_defaults = {"cooldown_s": 60.0, "max_shrink_ratio": 0.25}
    # From cautious to bold: a dearer short window; then the shipped point; then shorter
    # memory of starved levels (continuous, then by time of day), no band, a cheaper short
    # window and smaller margins; last no margin, no surge and no decaying peak at all (a
    # follower of the last need, whose shortfall is beyond cloudvamp2015's). No one parameter
    # spans the arms' shortfalls (the remembered levels hold most of the reclaim, the price
    # most of the safety), so the knob is a path through them.
    frontier_knob = FrontierKnob(
        ("shortfall_cost_gib", "starved_half_life_s", "starved_daily_half_life_s",
         "shrink_band_ratio", "grow_headroom_ratio", "margin_ratio", "surge_weight",
         "peak_half_life_s"),
        ((30000.0, 5 * _DAY_S, 14 * _DAY_S, 0.4, 0.1, 0.5, 1.0, 3600.0),
         (8000.0, 5 * _DAY_S, 14 * _DAY_S, 0.4, 0.1, 0.2, 1.0, 3600.0),
         (2000.0, 5 * _DAY_S, 14 * _DAY_S, 0.4, 0.1, 0.2, 1.0, 3600.0),
         (450.0, 5 * _DAY_S, 14 * _DAY_S, 0.4, 0.1, 0.2, 1.0, 3600.0),      # shipped
         (450.0, _DAY_S, 14 * _DAY_S, 0.4, 0.1, 0.2, 1.0, 3600.0),
         (450.0, 0.0, 14 * _DAY_S, 0.4, 0.1, 0.2, 1.0, 3600.0),
         (450.0, 0.0, 0.0, 0.4, 0.1, 0.2, 1.0, 3600.0),
         (450.0, 0.0, 0.0, 0.0, 0.0, 0.2, 1.0, 3600.0),
         (150.0, 0.0, 0.0, 0.0, 0.0, 0.15, 1.0, 3600.0),
         (50.0, 0.0, 0.0, 0.0, 0.0, 0.1, 1.0, 3600.0),
         (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3600.0),
         (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)))

    @dataclass(frozen=True)
    class Params:
        peak_half_life_s: float = field(default=3600.0, metadata={
            "min": 0.0, "help": "how fast the level decays toward current need"})
        surge_half_life_s: float = field(default=7 * 86400.0, metadata={
            "min": 1.0, "help": "how long a learned surge size is remembered"})
        surge_weight: float = field(default=1.0, metadata={
            "min": 0.0, "max": 10.0, "help": "headroom per learned surge"})
        margin_ratio: float = field(default=0.20, metadata={
            "min": 0.0, "max": 2.0, "help": "headroom as a fraction of need"})
        shortfall_cost_gib: float = field(default=450.0, metadata={
            "min": 0.0, "max": 1.0e6,
            "help": "GiB of headroom (held one window) worth one short window: the risk "
                    "knob; each VM takes the margin minimising margin + cost × P(rise > "
                    "margin) (0: the surge_quantile alone)"})
        surge_quantile: float = field(default=0.99, metadata={
            "min": 0.5, "max": 1.0,
            "help": "smallest quantile of the VM's rises its margin may take (with "
                    "shortfall_cost_gib = 0: the quantile used; 1.0: the decaying maximum)"})
        activity_half_life_s: float = field(default=3600.0, metadata={
            "min": 0.0, "help": "memory of recent movement that marks a VM active (0: off)"})
        activity_threshold: float = field(default=0.25, metadata={
            "min": 0.0, "max": 10.0,
            "help": "active when recent movement exceeds this × the VM's surge_quantile rise"})
        activity_pool: float = field(default=0.3, metadata={
            "min": 0.0, "max": 1.0,
            "help": "weight of the other regime's rises in the current regime's histogram"})
        rise_window_s: float = field(default=300.0, metadata={
            "min": 1.0, "help": "rises are aggregated per window (largest one kept)"})
        deficit_weight: float = field(default=1.5, metadata={
            "min": 0.0, "max": 10.0, "help": "surge learned from a shortfall, × deficit"})
        starved_half_life_s: float = field(default=5 * 86400.0, metadata={
            "min": 0.0,
            "help": "how long a level at which the guest was short stays held (0: off): a "
                    "guest is not starved twice at the same level"})
        starved_min_ratio: float = field(default=0.10, metadata={
            "min": 0.0, "max": 1.0,
            "help": "a level is remembered only when the guest lacked more than this "
                    "fraction of it (or 256 MiB)"})
        starved_margin_ratio: float = field(default=0.10, metadata={
            "min": 0.0, "max": 2.0, "help": "headroom above a remembered starved level"})
        starved_daily_half_life_s: float = field(default=14 * 86400.0, metadata={
            "min": 0.0,
            "help": "how long a starved level stays held around the same time of day, on "
                    "later days (0: off): recurring peaks (cron, backups, batch) are met "
                    "before they starve the guest again, without holding the level all day"})
        starved_daily_slot_s: float = field(default=1800.0, metadata={
            "min": 60.0, "max": 86400.0, "help": "time-of-day resolution of starved levels"})
        starved_daily_before_s: float = field(default=7200.0, metadata={
            "min": 0.0, "max": 43200.0,
            "help": "a starved level is held from this long before its time of day"})
        starved_daily_after_s: float = field(default=7200.0, metadata={
            "min": 0.0, "max": 43200.0,
            "help": "... until this long after it"})
        grow_headroom_ratio: float = field(default=0.10, metadata={
            "min": 0.0, "max": 2.0,
            "help": "a resize goes to the target plus this fraction, so the next need not "
                    "follow at once (fewer resizes)"})
        shrink_band_ratio: float = field(default=0.40, metadata={
            "min": 0.0, "max": 5.0,
            "help": "hold the allocation while it is at most this fraction above the "
                    "target (0: follow the target)"})
        tight_room_ratio: float = field(default=0.30, metadata={
            "min": 0.0, "max": 1.0,
            "help": "a host with less unallocated memory than this share is tight: the band "
                    "narrows to the headroom there"})
        habit_days: int = field(default=0, metadata={
            "min": 0, "max": 28, "help": "days of time-of-day peaks remembered (0: off)"})
        habit_slot_s: float = field(default=1800.0, metadata={
            "min": 60.0, "max": 86400.0, "help": "time-of-day resolution of habits"})
        habit_lookahead_s: float = field(default=1800.0, metadata={
            "min": 0.0, "max": 43200.0, "help": "how far ahead habits are provisioned"})

        def validate(self):
            from ..errors import ConfigError
            if 86400.0 % self.habit_slot_s:
                raise ConfigError("habit_slot_s must divide a day (86400 s)")
            if 86400.0 % self.starved_daily_slot_s:
                raise ConfigError("starved_daily_slot_s must divide a day (86400 s)")

    def __init__(self, params=None):
        super().__init__(params)
        p = self.params
        self.slots_per_day = int(86400 // p.habit_slot_s)
        self.ring_slots = max(1, p.habit_days * self.slots_per_day)
        self.daily_slots = int(86400 // p.starved_daily_slot_s) \
            if p.starved_daily_half_life_s > 0 else 1
        # Rises from 1 MiB up to 1 TiB, 10 % per bucket; bucket 0 holds "no rise".
        self.rise_edges_kib = bucket_edges_kib(1024.0, 1.10, 2.0 ** 30)
        self.n_buckets = self.rise_edges_kib.size - 1

    def initial_state(self):
        return {"level_kib": np.full(1, np.nan), "surge_kib": np.zeros(1),
                "last_need_kib": np.full(1, np.nan), "last_s": np.full(1, np.nan),
                "habit": np.full((1, self.ring_slots), np.nan, dtype=np.float32),
                "habit_slot": np.full(1, -1, dtype=np.int64),
                # Two histograms side by side: quiet regime, then active regime.
                "rise_hist": np.zeros((1, 2 * self.n_buckets)),
                "rise_ref_s": np.full(1, np.nan),
                "rise_window_start_s": np.full(1, -np.inf),
                "rise_window_bucket": np.full(1, -1, dtype=np.int64),
                "rise_window_regime": np.zeros(1, dtype=np.int64),
                "activity_kib": np.zeros(1), "regime": np.zeros(1, dtype=np.int64),
                "starved_kib": np.zeros(1),
                "starved_daily_kib": np.zeros((1, self.daily_slots)),
                "starved_daily_s": np.full((1, self.daily_slots), -np.inf)}

    def _habit(self, obs, need, seen, ring, last_slot):
        """Record this cycle's need in its slot; return the habit peak ahead (NaN if none)."""
        p = self.params
        slot = int(obs.now_s // p.habit_slot_s)
        ring, new_last = record_slot_max(ring, last_slot, slot, need, seen)
        ahead = int(np.ceil(p.habit_lookahead_s / p.habit_slot_s))
        cols = [(slot - d * self.slots_per_day + j) % self.ring_slots
                for d in range(1, p.habit_days + 1) for j in range(0, ahead + 1)]
        return max_over(ring, cols), ring, new_last

    def _record_rises(self, now, rise, rows_mask, hist, ref, window, regime):
        """Keep one sample per VM and ``rise_window_s``: the largest rise in that window.

        The sample goes to the histogram of ``regime`` (0 quiet, 1 active) as it was when
        the window started, i.e. when the allocation that had to absorb the rise was chosen.

        Aggregating per window (as VPA does with peaks) makes the quantile mean the same
        thing whatever the control period: "miss the largest rise of at most 0.3 % of
        5-minute windows", not "of 0.3 % of cycles", which at 10 s would be 30× more often.
        """
        p = self.params
        start, bucket, win_regime = window[0].copy(), window[1].copy(), window[2].copy()
        ref = np.where(np.isnan(ref), now, ref)
        hist, ref = rebase(hist, ref, now, p.surge_half_life_s)
        hist = hist.copy()
        rows = np.flatnonzero(rows_mask)
        if rows.size:
            fresh = now >= start[rows] + p.rise_window_s
            start[rows[fresh]] = now
            bucket[rows[fresh]] = -1
            win_regime[rows[fresh]] = regime[rows[fresh]]
            new_bucket = bucket_of(rise[rows], self.rise_edges_kib) + \
                win_regime[rows] * self.n_buckets
            higher = new_bucket > bucket[rows]
            r = rows[higher]
            weight = np.exp2((start[r] - ref[r]) / p.surge_half_life_s)
            had = bucket[r] >= 0
            hist[r[had], bucket[r[had]]] -= weight[had]
            hist[r, new_bucket[higher]] += weight
            bucket[r] = new_bucket[higher]
            np.maximum(hist, 0.0, out=hist)
        return hist, ref, (start, bucket, win_regime)

    def _quantile(self, cum, q):
        """Per row, the upper edge of the bucket where the cumulative weight ``cum`` reaches
        ``q`` of its total (as :func:`percentile_kib`, on a precomputed cumsum)."""
        total = cum[:, -1]
        edge = self.rise_edges_kib[np.argmax(cum >= (q * total)[:, None], axis=1) + 1]
        return np.where(total > 0, edge, np.nan)

    def _cost_margin(self, cum):
        """Per row, the bucket edge m minimising m + shortfall_cost × P(rise > m).

        ``cum`` is the row's cumulative histogram. P(rise > m) = 1 − cum/total, so the
        argmin is that of m × total − cost × cum (rows with weight). Never below the
        ``surge_quantile`` rise; NaN for rows without samples.
        """
        p = self.params
        edges = self.rise_edges_kib
        total = cum[:, -1]
        cost = edges[None, 1:] * total[:, None] - (p.shortfall_cost_gib * 1048576.0) * cum
        margin = edges[np.argmin(cost, axis=1) + 1]
        return np.fmax(margin, self._quantile(cum, p.surge_quantile))

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
        window = (state["rise_window_start_s"], state["rise_window_bucket"],
                  state["rise_window_regime"])
        activity, regime = state["activity_kib"], state["regime"]
        if p.surge_quantile < 1.0:
            hist, ref, window = self._record_rises(now, learned,
                                                   seen & np.isfinite(state["last_need_kib"]),
                                                   hist, ref, window, regime)
            cum_quiet = np.cumsum(hist[:, :self.n_buckets], axis=1)
            cum_active = np.cumsum(hist[:, self.n_buckets:], axis=1)
            cum = cum_quiet + cum_active
            if p.activity_half_life_s > 0:
                activity = np.where(seen, np.fmax(activity * np.exp2(-dt / p.activity_half_life_s),
                                                  np.abs(rise)), activity)
                usual = np.nan_to_num(self._quantile(cum, p.surge_quantile), nan=np.inf)
                regime = (activity > p.activity_threshold * usual).astype(np.int64)
                # this regime's rises, plus a little of the other's
                w_active = np.where(regime == 1, 1.0, p.activity_pool)[:, None]
                w_quiet = np.where(regime == 1, p.activity_pool, 1.0)[:, None]
                cum = cum_quiet * w_quiet + cum_active * w_active
            if p.shortfall_cost_gib > 0:
                surge = np.nan_to_num(self._cost_margin(cum))
            else:
                surge = np.nan_to_num(self._quantile(cum, p.surge_quantile))
        else:
            surge = state["surge_kib"] * np.exp2(-dt / p.surge_half_life_s)
            surge = np.fmax(surge, learned)

        target = np.fmax(level, need * (1.0 + p.margin_ratio) + p.surge_weight * surge)
        starved = state["starved_kib"]
        daily = (state["starved_daily_kib"], state["starved_daily_s"])
        hungry = obs.pressure & seen & ((obs.deficit_kib > p.starved_min_ratio * need)
                                        | (obs.deficit_kib > 256 * 1024.0))
        if p.starved_half_life_s > 0:
            starved = starved * np.exp2(-dt / p.starved_half_life_s)
            starved = np.where(hungry, np.fmax(starved, need), starved)
            target = np.fmax(target, starved * (1.0 + p.starved_margin_ratio))
        if p.starved_daily_half_life_s > 0:
            daily = self._starved_daily(now, need, hungry, daily)
            floor = daily_floor(*daily, now, p.starved_daily_slot_s, p.starved_daily_half_life_s,
                                p.starved_daily_before_s, p.starved_daily_after_s)
            target = np.fmax(target, floor * (1.0 + p.starved_margin_ratio))
        new_state = {"level_kib": level, "surge_kib": surge,
                     "last_need_kib": np.where(seen, need, state["last_need_kib"]),
                     "last_s": np.where(seen, now, state["last_s"]),
                     "habit": state["habit"], "habit_slot": state["habit_slot"],
                     "rise_hist": hist, "rise_ref_s": ref,
                     "rise_window_start_s": window[0], "rise_window_bucket": window[1],
                     "rise_window_regime": window[2], "activity_kib": activity,
                     "regime": regime, "starved_kib": starved,
                     "starved_daily_kib": daily[0], "starved_daily_s": daily[1]}
        if p.habit_days > 0:
            habit, ring, slot = self._habit(obs, need, seen, state["habit"], state["habit_slot"])
            target = np.fmax(target, habit)
            new_state["habit"], new_state["habit_slot"] = ring, slot
        target = self._with_hysteresis(target, obs.allocated_kib.astype(np.float64),
                                       self._host_tight(obs))
        target = np.where(seen, target, obs.nominal_kib.astype(np.float64))
        return target, new_state

    def _starved_daily(self, now, need, hungry, daily):
        """Record the need of starved guests in their time-of-day slot."""
        if not hungry.any():
            return daily
        p = self.params
        return record_daily(*daily, now, p.starved_daily_slot_s, p.starved_daily_half_life_s,
                            need, hungry)

    def _with_hysteresis(self, target, alloc, tight):
        """Hold the allocation inside [target, target × (1 + shrink_band)]; outside it, go to
        target × (1 + grow_headroom). Each resize is an oned history record and a driver
        call: a band makes one resize last while the need wanders inside it. On a ``tight``
        host the band narrows to the headroom: slack is free only while the host has room."""
        p = self.params
        if p.shrink_band_ratio <= 0 and p.grow_headroom_ratio <= 0:
            return target
        band = np.where(tight, min(p.grow_headroom_ratio, p.shrink_band_ratio),
                        p.shrink_band_ratio)
        inside = (alloc >= target) & (alloc <= target * (1.0 + band))
        return np.where(inside, alloc, target * (1.0 + p.grow_headroom_ratio))

    def _host_tight(self, obs):
        """[vm] True where the VM's host has less than ``tight_room_ratio`` of its usable
        memory unallocated (unknown hosts are never tight)."""
        hosts = obs.hosts
        if hosts is None or hosts.usable_kib is None or not hosts.size:
            return np.zeros(obs.size, dtype=bool)
        usable = hosts.usable_kib.astype(np.float64)
        room = usable - hosts.allocated_kib.astype(np.float64)
        tight = room < self.params.tight_room_ratio * usable
        return tight[obs.host_index]
