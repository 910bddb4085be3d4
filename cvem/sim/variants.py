"""Workload variants of the benchmark definition (peers.md §8.1)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .workloads import Workload

PAGE_CACHE_FACTOR = 1.5


def page_cache_inflated(workload: Workload, factor: float = PAGE_CACHE_FACTOR) -> Workload:
    """Set A′: every demand × ``factor`` (a page-cache model: Bitbrains "usage" looks like
    active memory), capped at the VM's provisioned size."""
    demand = np.minimum(workload.demand_kib.astype(np.float64) * factor,
                        workload.nominal_kib).astype(np.float32)
    return replace(workload, name=f"{workload.name}:A'x{factor:g}", demand_kib=demand,
                   info=dict(workload.info, page_cache_factor=factor))
