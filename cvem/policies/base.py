"""The policy registry: built-in rules and site plug-ins, found by name.

The contract they implement, :class:`~cvem.core.policy.Policy`, lives in the decision core
(re-exported here for plug-ins written against this module).

Policies are found by name through the ``cloudvamp.policies`` entry-point group (see
setup.cfg), so a site can ship its own in a separate package.
"""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Dict, Mapping, Optional, Tuple

from ..core.policy import Policy, StateColumns  # noqa: F401  (the contract, re-exported)
from ..errors import ConfigError

_BUILTIN = {
    "none": "cvem.policies.none:NoReclaim",
    "cloudvamp2015": "cvem.policies.cloudvamp2015:Cloudvamp2015",
    "vpa": "cvem.policies.vpa:VpaLike",
    "max-window": "cvem.policies.max_window:MaxWindow",
    "oracle": "cvem.policies.oracle:Oracle",
    "default": "cvem.policies.default:Default",
    "mom": "cvem.policies.mom:MomDefault",
    "proxmox": "cvem.policies.proxmox:ProxmoxAutoBalloon",
}


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
