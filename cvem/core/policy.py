"""The policy contract: what the decision core asks of a sizing rule.

A policy turns one cycle's observations into a proposed allocation per VM. It never
touches an adapter and keeps its memory in the state columns it declares; the shared
guards (:mod:`cvem.core.guards`) and the planner run after it, whatever it proposes.
The rules themselves and the registry that finds them by name live in
:mod:`cvem.policies`, above the core.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from ..errors import ConfigError
from .fleet import FleetObs
from .guards import GuardParams
from .params import build_params

StateColumns = Dict[str, np.ndarray]


@dataclass(frozen=True)
class FrontierKnob:
    """What moves a rule along reclaim against safety, and the settings to try.

    ``param`` names one parameter and ``values`` are numbers; or ``param`` is a tuple of
    names and each value a tuple setting them together (a path through the parameters, for a
    rule whose reclaim and safety are held by different ones). ``values`` run from the most
    cautious setting to the boldest; the rule's shipped setting need not be among them (the
    benchmark runs it anyway). ``cvem bench`` sweeps every policy's knob to draw the frontier
    the issue-11 targets are judged on.
    """

    param: Union[str, Tuple[str, ...]]
    values: Tuple[Any, ...]

    @property
    def names(self) -> Tuple[str, ...]:
        return (self.param,) if isinstance(self.param, str) else tuple(self.param)

    def points(self) -> List[Dict[str, Any]]:
        if isinstance(self.param, str):
            return [{self.param: v} for v in self.values]
        return [dict(zip(self.param, v)) for v in self.values]


def setting_label(point: Mapping[str, Any]) -> str:
    """``name=value,...`` of one knob setting, for tables and legends."""
    return ",".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                    for k, v in point.items())


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
    frontier_knob: ClassVar[Optional[FrontierKnob]] = None

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


def check_frontier_knob(cls: type) -> Optional[FrontierKnob]:
    """The policy class's :class:`FrontierKnob`, checked: a field of its ``Params``, at least
    two distinct values, each one a valid parameter set. None if it declares none."""
    knob = getattr(cls, "frontier_knob", None)
    if knob is None:
        return None
    where = f"policy:{getattr(cls, 'name', cls.__name__)} frontier_knob"
    if not isinstance(knob, FrontierKnob):
        raise ConfigError(f"[{where}] must be a FrontierKnob, got {type(knob).__name__}")
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    unknown = [n for n in knob.names if n not in fields]
    if unknown:
        raise ConfigError(f"[{where}] {', '.join(map(repr, unknown))} is not a parameter; "
                          f"known: {', '.join(sorted(fields))}")
    if not isinstance(knob.param, str) and any(
            not isinstance(v, tuple) or len(v) != len(knob.names) for v in knob.values):
        raise ConfigError(f"[{where}] each value must set all of {', '.join(knob.names)}")
    if len(knob.values) < 2 or len(set(knob.values)) != len(knob.values):
        raise ConfigError(f"[{where}] needs at least two distinct values, got {knob.values!r}")
    for point in knob.points():
        build_params(cls.Params, point, where)
    return knob
