"""The policy contract and the registry.

A policy turns one cycle's observations into a proposed allocation per VM. It never
touches an adapter and keeps its memory in the state columns it declares; the shared
guards (:mod:`cvem.core.guards`) and the planner run after it, whatever it proposes.

Policies are found by name through the ``cloudvamp.policies`` entry-point group (see
setup.cfg), so a site can ship its own in a separate package.
"""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, ClassVar, Dict, Mapping, Optional, Tuple

import numpy as np

from ..core.fleet import FleetObs
from ..core.guards import GuardParams
from ..core.params import build_params
from ..errors import ConfigError

StateColumns = Dict[str, np.ndarray]

_BUILTIN = {
    "none": "cvem.policies.none:NoReclaim",
    "cloudvamp2015": "cvem.policies.cloudvamp2015:Cloudvamp2015",
    "vpa": "cvem.policies.vpa:VpaLike",
    "max-window": "cvem.policies.max_window:MaxWindow",
    "oracle": "cvem.policies.oracle:Oracle",
    "default": "cvem.policies.default:Default",
}


class Policy:
    """Base class. Subclasses set ``name``, ``Params`` and implement :meth:`propose`.

    ``guard_defaults`` are the shared guards' settings this rule was designed with (its
    cooldown, its step); operators can still override them in ``[guards]``.
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


def _registry() -> Dict[str, str]:
    found = dict(_BUILTIN)
    try:
        for ep in entry_points(group="cloudvamp.policies"):
            found[ep.name] = ep.value
    except Exception:  # a broken third-party distribution must not hide the built-ins
        pass
    return found


def available_policies() -> Tuple[str, ...]:
    return tuple(sorted(_registry()))


def policy_class(name: str) -> type:
    target = _registry().get(name)
    if target is None:
        raise ConfigError(f"unknown policy {name!r}; available: {', '.join(available_policies())}")
    module_name, _, attr = target.partition(":")
    return getattr(import_module(module_name), attr)


def load_policy(name: str, values: Optional[Mapping[str, Any]] = None) -> Policy:
    return policy_class(name).from_config(values)
