"""``mom``: the oVirt Memory Overcommitment Manager's default balloon rules.

Source: ``shared/reference/peers.md`` §3.2 (MoM ``doc/balloon.rules`` and vdsm's
``02-balloon.policy``). Every evaluation (10 s), with host_free = the host's free share:

* **host under pressure** (free < 20 %): every guest shrinks toward
  used + guest_free × current, where guest_free = 20 % × free ÷ 20 % (at or below 5 % free,
  free − 5 %, i.e. negative: the guest is pushed to swap), never below the balloon minimum,
  by at most 5 % of its current size per evaluation;
* **otherwise** every guest grows by 5 % of its current size per evaluation, up to its maximum;
* changes smaller than 0.25 % of the current size are skipped.

A host's used memory is the sum of its guests' allocations (:mod:`.host_rules`). MoM looks at
the host, not at the guest's history: on hosts with room it gives every guest its full size.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.policy import FrontierKnob, Policy
from .host_rules import evaluations, host_total_kib, host_used_kib, used_or_alloc


class MomDefault(Policy):
    """Description: oVirt MoM's default balloon rules (host-pressure driven, ±5 % per 10 s).

    Inputs: guest used, host memory. Parameters: see ``Params``. Limitations: reclaims only
    while a host has under 20 % free; grows every guest again once it has more.
    """

    name = "mom"
    # the host free share below which guests shrink, from cautious to bold (shipped: 0.20)
    frontier_knob = FrontierKnob("pressure_threshold", (0.1, 0.2, 0.4, 0.6, 0.8, 0.95))

    @dataclass(frozen=True)
    class Params:
        pressure_threshold: float = field(default=0.20, metadata={
            "min": 0.0, "max": 1.0, "help": "host free share below which guests shrink"})
        critical_threshold: float = field(default=0.05, metadata={
            "min": 0.0, "max": 1.0, "help": "at or below this, guests are pushed to swap"})
        guest_free_ratio: float = field(default=0.20, metadata={
            "min": 0.0, "max": 1.0, "help": "free memory left in a guest at the threshold"})
        max_change_ratio: float = field(default=0.05, metadata={
            "min": 0.0, "max": 1.0, "help": "largest change per evaluation, × current"})
        min_change_ratio: float = field(default=0.0025, metadata={
            "min": 0.0, "max": 1.0, "help": "smaller changes are skipped, × current"})
        balloon_min_ratio: float = field(default=0.0, metadata={
            "min": 0.0, "max": 1.0, "help": "guaranteed memory, × maximum"})
        evaluation_s: float = field(default=10.0, metadata={
            "min": 1.0, "help": "MoM's policy interval"})

    def initial_state(self):
        return {"last_s": np.full(1, np.nan)}

    def propose(self, obs, state):
        p = self.params
        cur = obs.allocated_kib.astype(np.float64)
        nominal = obs.nominal_kib.astype(np.float64)
        used = used_or_alloc(obs)
        balloon_min = p.balloon_min_ratio * nominal
        total = host_total_kib(obs)
        for _ in range(evaluations(state, obs.now_s, p.evaluation_s)):
            free = (total - host_used_kib(obs, cur)) / np.maximum(total, 1.0)
            host_free = free[obs.host_index]
            pressured = host_free < p.pressure_threshold
            guest_free = np.where(host_free <= p.critical_threshold,
                                  host_free - 0.05,
                                  p.guest_free_ratio * host_free / max(p.pressure_threshold, 1e-9))
            floor = np.maximum(balloon_min, used + guest_free * cur)
            shrunk = np.maximum(cur * (1.0 - p.max_change_ratio), floor)
            grown = np.minimum(cur * (1.0 + p.max_change_ratio), nominal)
            new = np.where(pressured, np.minimum(shrunk, nominal), grown)
            big_enough = np.abs(new - cur) >= p.min_change_ratio * cur
            cur = np.where(big_enough, new, cur)
        return cur, {"last_s": np.full(obs.size, obs.now_s)}
