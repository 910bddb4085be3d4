"""``default``: cloudvamp's own policy — grow fast, shrink slowly, learn each VM's surges.

Design (see docs/policy.md for the measurements behind it):

* **Level**: a decaying peak of the guest's need. It follows any rise at once and decays
  toward the current need with half-life ``peak_half_life_s``, so memory is given back
  gradually after a burst instead of at the first quiet sample.
* **Surge margin, learned per VM**: the largest rise of need between two cycles, kept as a
  decaying maximum with half-life ``surge_half_life_s``. A guest that jumps by 2 GiB now and
  then keeps 2 GiB of headroom; a flat one keeps almost none. A shortfall (the guest swapped)
  teaches it directly: the deficit becomes a surge of that size.
* **Proportional margin**: ``margin_ratio`` of the need on top, for the small noise the surge
  estimate has not seen yet.

Target = max(level, need × (1 + margin_ratio) + surge_weight × surge). The shared guards then
apply the floor, ceiling, pressure growth, gradual shrink, cooldown and minimum step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import Policy


class Default(Policy):
    """Description: decaying peak plus a per-VM learned surge margin.

    Inputs: guest need (used + swapped deficit), pressure. Parameters: see ``Params``.
    Limitations: a VM's first surge larger than anything it did before is short for one
    cycle (as for every causal policy); history lives in cvem's state database.
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
        deficit_weight: float = field(default=1.5, metadata={
            "min": 0.0, "max": 10.0, "help": "surge learned from a shortfall, × deficit"})

    def initial_state(self):
        return {"level_kib": np.full(1, np.nan), "surge_kib": np.zeros(1),
                "last_need_kib": np.full(1, np.nan), "last_s": np.full(1, np.nan)}

    def propose(self, obs, state):
        p = self.params
        now = obs.now_s
        need = obs.need_kib()
        seen = np.isfinite(need)
        dt = np.where(np.isfinite(state["last_s"]), now - state["last_s"], 0.0)
        dt = np.maximum(dt, 0.0)

        level = state["level_kib"]
        if p.peak_half_life_s > 0:
            decay = np.exp2(-dt / p.peak_half_life_s)
            decayed = need + (level - need) * decay
        else:
            decayed = need
        level = np.where(seen, np.fmax(need, np.where(np.isfinite(level), decayed, need)), level)

        rise = np.where(np.isfinite(state["last_need_kib"]) & seen,
                        need - state["last_need_kib"], 0.0)
        surge = state["surge_kib"] * np.exp2(-dt / p.surge_half_life_s)
        surge = np.fmax(surge, np.maximum(rise, 0.0))
        surge = np.where(obs.pressure, np.fmax(surge, p.deficit_weight * obs.deficit_kib), surge)

        target = np.fmax(level, need * (1.0 + p.margin_ratio) + p.surge_weight * surge)
        target = np.where(seen, target, obs.nominal_kib.astype(np.float64))
        new_state = {"level_kib": level, "surge_kib": surge,
                     "last_need_kib": np.where(seen, need, state["last_need_kib"]),
                     "last_s": np.where(seen, now, state["last_s"])}
        return target, new_state
