"""``none``: no reclaim. Every VM keeps its nominal size — the status quo baseline."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.policy import Policy


class NoReclaim(Policy):
    """Description: proposes the nominal size (MEMORY_MAX) for every VM.

    Inputs: nominal sizes only. Parameters: none. Limitations: reclaims nothing by design;
    it is the reference every other policy's savings and shortfalls are measured against.
    """

    name = "none"
    # Follow the nominal size exactly, even when it changes by less than a resize step.
    guard_defaults = {"min_step_kib": 0, "min_step_ratio": 0.0}

    @dataclass(frozen=True)
    class Params:
        pass

    def propose(self, obs, state):
        return obs.nominal_kib.astype(np.float64), state
