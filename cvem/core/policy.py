"""The policy contract: what the decision core asks of a sizing rule.

A policy turns one cycle's observations into a proposed allocation per VM. It never
touches an adapter and keeps its memory in the state columns it declares; the shared
guards (:mod:`cvem.core.guards`) and the planner run after it, whatever it proposes.
The rules themselves and the registry that finds them by name live in
:mod:`cvem.policies`, above the core.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple

import numpy as np

from .fleet import FleetObs
from .guards import GuardParams
from .params import build_params

StateColumns = Dict[str, np.ndarray]


class Policy:
    """Base class. Subclasses set ``name``, ``Params`` and implement :meth:`propose`.

    ``guard_defaults`` are the shared guards' settings this rule was designed with (its
    cooldown, its step); operators can still override them in ``[guards]``.
    ``simulation_only`` marks a rule that reads the future (the oracle): the simulator
    gives it the future need, the service refuses it.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type]
    guard_defaults: ClassVar[Mapping[str, Any]] = {}
    simulation_only: ClassVar[bool] = False

    def __init__(self, params: Any = None):
        self.params = params if params is not None else build_params(self.Params, {}, self.name)

    @classmethod
    def from_config(cls, values: Optional[Mapping[str, Any]] = None) -> "Policy":
        return cls(build_params(cls.Params, values or {}, f"policy:{cls.name}"))

    def guard_params(self, overrides: Optional[Mapping[str, Any]] = None) -> GuardParams:
        merged = dict(self.guard_defaults)
        merged.update(overrides or {})
        return build_params(GuardParams, merged, "guards")

    def initial_state(self) -> StateColumns:
        """State for one new VM: arrays of shape (1, ...)."""
        return {}

    def propose(self, obs: FleetObs, state: StateColumns) -> Tuple[np.ndarray, StateColumns]:
        raise NotImplementedError
