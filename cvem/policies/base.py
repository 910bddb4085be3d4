"""The policy registry: built-in rules and site plug-ins, found by name.

The contract they implement, :class:`~cvem.core.policy.Policy`, lives in the decision core
(re-exported here for plug-ins written against this module).

Policies are found by name through the ``cloudvamp.policies`` entry-point group (see
setup.cfg), so a site can ship its own in a separate package.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

from ..core.policy import Policy, StateColumns  # noqa: F401  (the contract, re-exported)
from ..plugins import PluginRegistry

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


_REGISTRY = PluginRegistry("cloudvamp.policies", _BUILTIN,
                           "unknown policy {name}; available: {available}")


def available_policies() -> Tuple[str, ...]:
    return _REGISTRY.names()


def policy_class(name: str) -> type:
    return _REGISTRY.load_class(name)


def load_policy(name: str, values: Optional[Mapping[str, Any]] = None) -> Policy:
    return policy_class(name).from_config(values)
