"""Run several policies on one workload and cloud, and fill in cross-policy figures."""
from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, List, Mapping, Optional

import numpy as np

from ..errors import ConfigError
from ..policies.base import load_policy
from .engine import CloudConfig, RunResult, prepare, simulate
from .workloads import Workload

DEFAULT_POLICIES = ("none", "cloudvamp2015", "mom", "proxmox", "vpa", "max-window", "oracle",
                    "default")


def parse_policy_list(text: str) -> List[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise ConfigError("--policies needs at least one policy name")
    return names


def run_suite(workload: Workload, policies: Iterable[str], cloud: CloudConfig = CloudConfig(),
              policy_params: Optional[Mapping[str, Mapping[str, str]]] = None,
              progress: Optional[Callable[[str, int], None]] = None) -> Dict[str, RunResult]:
    # Placement and admission are decided once, so every policy runs on the same VMs.
    admitted = prepare(workload, cloud)
    results: Dict[str, RunResult] = {}
    names = list(policies)
    instances = [load_policy(n, (policy_params or {}).get(n)) for n in names]  # fail early
    for name, policy in zip(names, instances):
        tick = (lambda t, _n=name: progress(_n, t)) if progress else None
        results[name] = simulate(workload, policy, cloud, progress=tick, admitted=admitted)
    oracle = results.get("oracle")
    if oracle is None and results:
        oracle = simulate(workload, load_policy("oracle"), cloud, admitted=admitted)
    for r in results.values():
        o = oracle.metrics["reclaimed_pct"]
        r.metrics["oracle_efficiency_pct"] = (100.0 * r.metrics["reclaimed_pct"] / o
                                              if o > 0 else math.nan)
    return results


def workload_summary(workload: Workload, cloud: CloudConfig) -> Dict[str, object]:
    admitted = prepare(workload, cloud)
    placement = admitted.placement
    return {"name": workload.name, "vms": workload.vms, "hosts": placement.hosts,
            "migrations": cloud.migrations,
            "migration_bandwidth_mib_s": round(cloud.migration_bandwidth_kib_s / 1024, 1),
            **{k: v for k, v in admitted.info.items() if isinstance(v, (int, float, str))},
            "steps": workload.steps, "step_s": workload.step_s,
            "days": round(workload.steps * workload.step_s / 86400.0, 3),
            "host_physical_gib": round(placement.physical_kib / 2**20, 2),
            # hosts sized to a VM larger than the standard host
            "hosts_sized_to_vm": int(np.count_nonzero(
                placement.capacity_kib > placement.physical_kib - placement.reserve_kib)),
            "host_reserve_gib": round(placement.reserve_kib / 2**20, 2),
            **{k: v for k, v in workload.info.items() if isinstance(v, (int, float, str))}}
