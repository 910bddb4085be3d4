"""``max-window``: trailing maximum of guest need over a window, plus a margin.

Source: Autopilot's S_max moving-window recommender and the "trailing max 24 h + 10 %" arm
of ``shared/reference/peers.md`` §5.1 and §7.2 (72.4 % reclaimed, 0.19 % intervals short on
the Bitbrains VMs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.slot_ring import max_over, record_slot_max
from ..core.policy import FrontierKnob, Policy


class MaxWindow(Policy):
    """Description: allocation = max(need over the last ``window_s``) × (1 + margin).

    Inputs: guest need (used + swapped deficit). Parameters: ``window_s``, ``margin_ratio``,
    ``slots`` (time resolution of the window). Limitations: a surge larger than anything in
    the window is short until the next cycle; a one-off peak holds memory for a whole window.
    """

    name = "max-window"
    # the margin above the window's maximum, from cautious to bold (shipped: 0.10)
    frontier_knob = FrontierKnob("margin_ratio", (0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.0))

    @dataclass(frozen=True)
    class Params:
        window_s: float = field(default=86400.0, metadata={"min": 60.0, "help": "window length"})
        margin_ratio: float = field(default=0.10, metadata={"min": 0.0, "max": 2.0,
                                                            "help": "margin above the max"})
        slots: int = field(default=288, metadata={"min": 1, "max": 10000,
                                                  "help": "maxima kept per window"})

    def initial_state(self):
        return {"ring": np.full((1, self.params.slots), np.nan, dtype=np.float32),
                "last_slot": np.full(1, -1, dtype=np.int64)}

    def propose(self, obs, state):
        p = self.params
        slot_s = p.window_s / p.slots
        slot = int(obs.now_s // slot_s)
        need = obs.need_kib()
        # Slots that fell out of the window since each VM's last sample are forgotten.
        ring, new_last = record_slot_max(state["ring"], state["last_slot"], slot, need,
                                         np.isfinite(need))
        peak = max_over(ring, slice(None))
        target = np.where(np.isfinite(peak), peak * (1.0 + p.margin_ratio),
                          obs.nominal_kib.astype(np.float64))
        return target, {"ring": ring, "last_slot": new_last}
