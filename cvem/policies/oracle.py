"""``oracle``: knows the demand of the period it sizes. Simulation only: the physical limit.

Source: the benchmark definition in ``shared/reference/peers.md`` §8.2 — "the oracle knowing
demand(t) and using the same floor and a 5% margin". No real controller can do this; it bounds
what any policy can reclaim on a workload, so ``oracle_efficiency_pct`` is measured against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field


from ..core.policy import Policy
from ..errors import PolicyError


class Oracle(Policy):
    """Description: allocation = next period's demand × (1 + margin).

    Inputs: ``FleetObs.future_need_kib``, which only the simulator provides.
    Parameters: ``margin_ratio``. Limitations: refuses to run on a real cloud.
    """

    name = "oracle"
    simulation_only = True
    # The oracle needs no hysteresis, cooldown or gradual shrink: it is never wrong.
    guard_defaults = {"floor_kib": 0, "min_size_kib": 0, "min_step_kib": 0,
                      "min_step_ratio": 0.0, "cooldown_s": 0.0, "max_shrink_ratio": 1.0}

    @dataclass(frozen=True)
    class Params:
        margin_ratio: float = field(default=0.05, metadata={
            "min": 0.0, "max": 1.0, "help": "headroom above the known demand"})

    def propose(self, obs, state):
        if obs.future_need_kib is None:
            raise PolicyError("the oracle policy needs future demand: it runs only in "
                              "`cvem simulate`/`cvem bench`")
        return obs.future_need_kib * (1.0 + self.params.margin_ratio), state
