"""The lending-strategy contract and the registry.

A strategy estimates, per host, how much memory the VMs cloudvamp manages there will use
("tier0" in ScroogeVM's words). The scheduler is then offered the host's capacity minus that
estimate (:mod:`cvem.lending.target` turns it into ``RESERVED_MEM``). Strategies are pure:
they see the host's closed usage windows (oldest first) and its present bookkeeping, and
keep what they must remember in a small per-host state they return. They run once per
closed window, never between, which is what keeps the scheduler's view from flapping.

Strategies are found by name through the ``cloudvamp.lending`` entry-point group (see
setup.cfg), like policies, so a site can ship its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..core.params import build_params
from ..plugins import PluginRegistry


@dataclass(frozen=True)
class Window:
    """One closed window of a host: the Σ of its managed VMs' used memory at every sample,
    each VM's peak within the window, and the Σ of their allocations (MEMORY) at every
    sample (KiB)."""

    samples_kib: np.ndarray
    vm_peak_kib: Mapping[int, float] = field(default_factory=dict)
    alloc_samples_kib: Optional[np.ndarray] = None


@dataclass(frozen=True)
class HostNow:
    """A host's bookkeeping when a window closes (KiB, managed VMs only)."""

    booked_kib: float       # Σ nominal (MEMORY_MAX) of the managed VMs
    allocated_kib: float    # Σ current MEMORY of the managed VMs (what MEM_USAGE counts)
    capacity_kib: float     # TOTAL_MEM − the administrator's own RESERVED_MEM
    vm_nominal_kib: Mapping[int, float] = field(default_factory=dict)  # managed VMs on it now


@dataclass(frozen=True)
class Estimate:
    used_kib: Optional[float]   # None: no opinion yet (the scheduler keeps today's view)
    state: Any = None


class Strategy:
    """Base class. Subclasses set ``name``, ``Params`` and implement :meth:`estimate`."""

    name: ClassVar[str] = ""
    Params: ClassVar[type]
    # True: the estimate comes from usage samples, so VMs the history has not seen yet are
    # added on top (:func:`cvem.lending.target.newcomer_kib`).
    from_history: ClassVar[bool] = True
    # True: a function of today's bookkeeping alone, evaluated every cycle (not per window).
    per_cycle: ClassVar[bool] = False

    def __init__(self, params: Any = None):
        self.params = params if params is not None else build_params(self.Params, {}, self.name)

    @classmethod
    def from_config(cls, values: Optional[Mapping[str, Any]] = None) -> "Strategy":
        return cls(build_params(cls.Params, values or {}, f"lend:{cls.name}"))

    def estimate(self, windows: Sequence[Window], host: HostNow, state: Any,
                 history_windows: int) -> Estimate:
        """The managed VMs' expected use of the host; ``history_windows`` is how many
        windows make a full history (``windows`` holds at most that many)."""
        raise NotImplementedError


def all_samples(windows: Sequence[Window]) -> np.ndarray:
    if not windows:
        return np.zeros(0)
    return np.concatenate([np.asarray(w.samples_kib, dtype=np.float64) for w in windows])


_BUILTIN = {
    "none": "cvem.lending.strategies:NoLending",
    "fixed": "cvem.lending.strategies:Fixed",
    "percentile": "cvem.lending.strategies:Percentile",
    "doa": "cvem.lending.strategies:Doa",
    "scroogevm": "cvem.lending.scroogevm:ScroogeVm",
    "nsigma": "cvem.lending.strategies:NSigma",
    "borg": "cvem.lending.strategies:Borg",
    "rclike": "cvem.lending.strategies:RcLike",
    "maxpeak": "cvem.lending.strategies:MaxPeak",
    "allocpeak": "cvem.lending.allocpeak:AllocPeak",
}


_REGISTRY = PluginRegistry("cloudvamp.lending", _BUILTIN,
                           "[lend] strategy: unknown lending strategy {name}; available: {available}")


def available_strategies() -> Tuple[str, ...]:
    return _REGISTRY.names()


def strategy_class(name: str) -> type:
    return _REGISTRY.load_class(name)


def load_strategy(name: str, values: Optional[Mapping[str, Any]] = None) -> Strategy:
    return strategy_class(name).from_config(values)
