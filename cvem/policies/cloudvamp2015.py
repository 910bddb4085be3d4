"""``cloudvamp2015``: the original CloudVAMP rule (FGCS 2016, grycap/cloudvamp HEAD 2017).

Source: ``shared/reference/cloudvamp.md`` §2.5. Keep the guest's free share near
``mem_over_pct`` (30 %): nothing happens inside a ±``mem_margin_pct`` band; outside it the new
size is used / (1 − 0.30). When free memory falls to ``min_free_kib`` or less, the VM grows
halfway back to its original size, and on the third consecutive hit straight to it.

Only the rule is kept. Its implementation bugs are not: the escalation counter resets when
free memory recovers (B2), a starving guest is never dropped from management (B1), the first
change does not wait a cooldown (B3), and a failed change is not recorded as done.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.policy import FrontierKnob, Policy


class Cloudvamp2015(Policy):
    """Description: free-share band with used/(1−r) resizing and emergency growth.

    Inputs: guest used memory and the current allocation.
    Parameters: ``mem_over_pct``, ``mem_margin_pct``, ``min_free_kib``.
    Limitations: reacts to one sample, keeps no history; its 30 % free target is too small
    for spiky guests and too large for steady ones (see the benchmark).
    """

    name = "cloudvamp2015"
    # the free share it keeps in each guest, from cautious to bold (shipped: 30 %)
    frontier_knob = FrontierKnob("mem_over_pct", (70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 10.0))
    # The original's knobs: COOLDOWN 10 s, MEM_DIFF_TO_CHANGE 1 MiB, MEM_MIN 256 MiB, and no
    # floor or shrink limit beyond the band itself.
    guard_defaults = {"cooldown_s": 10.0, "min_step_kib": 1024, "min_step_ratio": 0.0,
                      "max_shrink_ratio": 1.0, "floor_kib": 0, "min_size_kib": 262144}

    @dataclass(frozen=True)
    class Params:
        mem_over_pct: float = field(default=30.0, metadata={
            "min": 1.0, "max": 90.0, "help": "target share of guest memory left free (MEM_OVER)"})
        mem_margin_pct: float = field(default=5.0, metadata={
            "min": 0.0, "max": 40.0, "help": "dead band around it, percentage points"})
        min_free_kib: int = field(default=20000, metadata={
            "min": 0, "help": "free memory at or below which emergency growth starts"})

    def initial_state(self):
        return {"hits": np.zeros(1, dtype=np.int8)}

    def propose(self, obs, state):
        p = self.params
        alloc = obs.allocated_kib.astype(np.float64)
        nominal = obs.nominal_kib.astype(np.float64)
        used = np.minimum(obs.used_kib, alloc)
        free = alloc - used
        free_pct = np.where(alloc > 0, 100.0 * free / np.maximum(alloc, 1.0), 0.0)
        ratio = p.mem_over_pct / 100.0
        in_band = np.abs(free_pct - p.mem_over_pct) <= p.mem_margin_pct
        target = np.where(in_band, alloc, used / (1.0 - ratio))

        hits = state["hits"]
        emergency = (free <= p.min_free_kib) & np.isfinite(used)
        third = emergency & (hits >= 2)
        halfway = used + (nominal - used) * 0.5
        target = np.where(emergency, np.where(third, nominal, halfway), target)
        new_hits = np.where(emergency, np.where(third, 0, hits + 1), 0).astype(np.int8)
        return target, {"hits": new_hits}
