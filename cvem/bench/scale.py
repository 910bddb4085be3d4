"""``cvem bench scale``: time one full control cycle on a large generated cloud.

Each size runs in a fresh Python process so its peak memory is its own:

* ``parse_s``: the project's lxml parser on the three documents a cycle reads
  (``vmpool.infoextended``, ``hostpool.info``, ``vmpool.monitoring``);
* ``parse_pyone_s``: pyone's typed bindings (generateDS) on the same documents, in another
  process — the alternative the project does not use;
* ``observe_s``: managed-VM selection and guest-report validation into a Snapshot;
* ``decide_plan_s``: policy, guards and planner on that snapshot (steady state: the second
  cycle, once every VM has history); ``decide_plan_first_s`` is the first cycle;
* ``peak_rss_mb``: the process's peak resident memory for parse + observe + decide + plan
  (the generated XML strings included).
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from typing import Dict, List


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure_cycle(vms: int, hosts: int) -> Dict[str, float]:
    from ..adapters import one_xml
    from ..config import ServiceParams
    from ..core.decide import Decider, decide
    from ..core.fleet import FleetHistory
    from ..policies import load_policy
    from ..ports import CloudRead
    from ..service.observe import observe
    from .pool_xml import generate_pool

    vm_xml, host_xml, mon_xml = generate_pool(vms, hosts)
    xml_mb = (len(vm_xml) + len(host_xml) + len(mon_xml)) / 1e6
    t0 = time.perf_counter()
    raw_vms = one_xml.parse_vm_pool(vm_xml)
    raw_hosts = one_xml.parse_host_pool(host_xml)
    monitoring = one_xml.parse_monitoring(mon_xml)
    parse_s = time.perf_counter() - t0
    del vm_xml, host_xml, mon_xml

    params = ServiceParams()
    read = CloudRead(vms=raw_vms, hosts=raw_hosts, monitoring=monitoring)
    now_s = 1795425474.0
    t0 = time.perf_counter()
    observation = observe(read, params, {}, now_s)
    observe_s = time.perf_counter() - t0
    decider = Decider(load_policy("default"))
    t0 = time.perf_counter()
    plan, history = decide(observation.snapshot, FleetHistory(), decider)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan, history = decide(observation.snapshot, history, decider)
    steady_s = time.perf_counter() - t0
    managed = len(observation.snapshot.vms)
    return {"vms": vms, "hosts": hosts, "managed_vms": managed, "xml_mb": round(xml_mb, 1),
            "parse_s": round(parse_s, 3), "observe_s": round(observe_s, 3),
            "decide_plan_s": round(steady_s, 3), "decide_plan_first_s": round(first_s, 3),
            "actions": len(plan.actions), "peak_rss_mb": round(_peak_rss_mb(), 1)}


def measure_pyone_parse(vms: int, hosts: int) -> Dict[str, float]:
    import pyone.bindings as bindings
    from .pool_xml import generate_pool

    vm_xml, host_xml, mon_xml = generate_pool(vms, hosts)
    t0 = time.perf_counter()
    for doc in (vm_xml, host_xml, mon_xml):
        bindings.parseString(doc.encode(), silence=True)
    return {"parse_pyone_s": round(time.perf_counter() - t0, 3),
            "peak_rss_pyone_mb": round(_peak_rss_mb(), 1)}


def run_in_child(kind: str, vms: int, hosts: int, timeout_s: float = 900.0) -> Dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "cvem.bench.scale", kind, str(vms), str(hosts)],
                         capture_output=True, text=True, timeout=timeout_s, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"scale worker {kind} {vms}/{hosts} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def scale_series(sizes: List[int], hosts_per_vm: float = 0.1, with_pyone: bool = True):
    rows = []
    for n in sizes:
        hosts = max(1, int(round(n * hosts_per_vm)))
        row = run_in_child("cycle", n, hosts)
        if with_pyone:
            row.update(run_in_child("pyone", n, hosts))
        rows.append(row)
    return rows


def linearity(rows) -> Dict[str, float]:
    """Time per VM at the largest size over time per VM at the smallest (1.0 = linear)."""
    if len(rows) < 2:
        return {}
    small, big = rows[0], rows[-1]
    out = {}
    for key in ("parse_s", "observe_s", "decide_plan_s"):
        if small[key] > 0:
            out[key] = round((big[key] / big["vms"]) / (small[key] / small["vms"]), 2)
    return out


if __name__ == "__main__":
    kind, vms, hosts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    result = measure_cycle(vms, hosts) if kind == "cycle" else measure_pyone_parse(vms, hosts)
    print(json.dumps(result))
