"""``cvem bench real``: whole cvem cycles (read, decide, apply, show) against a real oned.

For a *test* OpenNebula with the dummy drivers (the project's oned test bed): it creates a
cluster of its own with hosts on the live-resize VM_MAD ``dummylive``, N VMs (1 GiB, placed
with ``enforce=false``), publishes one guest report per VM the way the OneGate publisher does
(one ``one.vm.update`` each), runs cvem's Service on that cluster, then deletes everything.

Reported per size: the first cycle (every show attribute written, the shrinks of idle guests)
and a steady cycle (fresh reports, nothing new to show), each split into read / decide /
apply / show, with the number of resizes and attribute writes; the measured cost of one
``one.vm.update``; and the write budget per 1,000 VMs that publishers and cvem put on oned.
"""
from __future__ import annotations

import tempfile
import time
import xmlrpc.client
from pathlib import Path
from typing import Callable, Dict, List

from lxml import etree

KIB_PER_MIB = 1024
VM_MEMORY_MIB = 1024
VMS_PER_HOST = 250
DESIGN_RESIZES_PER_VM_HOUR = 1.5     # docs/policy.md, the default policy on the traces
HISTORY_RECORD_BYTES = 480           # one.vm.info growth per resize, measured on oned 7.4


# oned on sqlite under write load (measured on the test bed): "database is locked" while it
# looks the user up reads as an authentication failure, or an update is refused; retried
TRANSIENT = ("couldn't be authenticated", "Cannot update")


class Bed:
    def __init__(self, endpoint: str, session: str):
        self.endpoint, self.session = endpoint, session
        self.proxy = xmlrpc.client.ServerProxy(endpoint)

    def rpc(self, method, *args):
        for attempt in range(6):
            answer = getattr(self.proxy, method)(self.session, *args)
            # oned on sqlite under write load: "database is locked" while it looks the user
            # up reads as an authentication failure (measured on the test bed); retry
            if answer[0] or not any(m in str(answer[1]) for m in TRANSIENT):
                break
            time.sleep(0.2 * (attempt + 1))
        if not answer[0]:
            raise RuntimeError(f"{method}: {answer[1]}")
        return answer[1]

    def states(self, cluster_id: int) -> Dict[int, str]:
        pool = etree.fromstring(self.rpc("one.vmpool.info", -2, -1, -1, -1).encode())
        return {int(vm.findtext("ID")): vm.findtext("STATE") + "/" + vm.findtext("LCM_STATE")
                for vm in pool.iterfind("VM")
                if vm.findtext("HISTORY_RECORDS/HISTORY/CID") == str(cluster_id)}


def _wait(predicate, what, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")


def _build(bed: Bed, vms: int, say: Callable[[str], None]):
    name = "cvem-bench-%d" % time.time_ns()
    cluster_id = bed.rpc("one.cluster.allocate", name)
    pool = etree.fromstring(bed.rpc("one.datastorepool.info").encode())
    for ds in pool.iterfind("DATASTORE"):
        bed.rpc("one.cluster.adddatastore", cluster_id, int(ds.findtext("ID")))
    hosts = [bed.rpc("one.host.allocate", f"{name}-h{i}", "dummy", "dummylive", cluster_id)
             for i in range(max(2, -(-vms // VMS_PER_HOST)))]

    def monitored():
        pool = etree.fromstring(bed.rpc("one.hostpool.info").encode())
        return all(h.findtext("STATE") == "2" for h in pool.iterfind("HOST")
                   if int(h.findtext("ID")) in hosts)
    started = time.monotonic()
    vm_ids = []
    try:
        _wait(monitored, "bench hosts MONITORED", 900)
        for i in range(vms):
            vm_id = bed.rpc("one.vm.allocate", f'NAME="bench-{i}"\nMEMORY="{VM_MEMORY_MIB}"\n'
                            f'MEMORY_MAX="{VM_MEMORY_MIB}"\nMEMORY_RESIZE_MODE="BALLOONING"\n'
                            'CPU="0.01"\nVCPU="1"\n', True)
            vm_ids.append(vm_id)
            try:
                bed.rpc("one.vm.deploy", vm_id, hosts[i % len(hosts)], False, -1, "")
            except RuntimeError:
                vm = etree.fromstring(bed.rpc("one.vm.info", vm_id, False).encode())
                if vm.findtext("STATE") == "2":
                    raise   # still on hold: the deploy really failed
        _wait(lambda: list(bed.states(cluster_id).values()).count("3/3") == vms,
              f"{vms} bench VMs RUNNING", 900)
    except Exception:
        for vm_id in vm_ids:      # maybe not in the cluster's history yet: by ID
            try:
                bed.rpc("one.vm.action", "terminate-hard", vm_id)
            except RuntimeError:
                pass
        _teardown(bed, cluster_id, hosts)
        raise
    say(f"  {vms} VMs on {len(hosts)} hosts RUNNING in {time.monotonic() - started:.0f} s")
    return cluster_id, hosts, vm_ids


def _publish(bed: Bed, vm_ids: List[int], seq: int) -> float:
    """One publisher report per VM (an idle guest); returns the mean seconds per update."""
    now = int(time.time())
    used = 200 * KIB_PER_MIB
    total = VM_MEMORY_MIB * KIB_PER_MIB - 65536
    body = (f'CLOUDVAMP_MEM_TOTAL_KIB="{total}"\nCLOUDVAMP_MEM_AVAILABLE_KIB="{total - used}"\n'
            f'CLOUDVAMP_MEM_USED_KIB="{used}"\nCLOUDVAMP_SWAP_USED_KIB="0"\n'
            f'CLOUDVAMP_SWAP_IN_KIB_S="0.0"\nCLOUDVAMP_PSI_FULL_AVG10="0.00"\n'
            f'CLOUDVAMP_SEQ="{seq}"\nCLOUDVAMP_TIME="{now}"\n')
    started = time.perf_counter()
    for vm_id in vm_ids:
        bed.rpc("one.vm.update", vm_id, body, 1)
    return (time.perf_counter() - started) / max(len(vm_ids), 1)


def _teardown(bed: Bed, cluster_id: int, hosts: List[int]) -> None:
    for vm_id in bed.states(cluster_id):
        try:
            bed.rpc("one.vm.action", "terminate-hard", vm_id)
        except RuntimeError:
            pass
    try:
        _wait(lambda: not bed.states(cluster_id), "bench VMs DONE", 600)
    except RuntimeError:
        pass
    for host_id in hosts:
        try:
            bed.rpc("one.host.delete", host_id)
        except RuntimeError:
            pass
    try:
        bed.rpc("one.cluster.delete", cluster_id)
    except RuntimeError:
        pass


def _cycle_row(report, updates: int) -> Dict[str, float]:
    t = report.timings_s
    return {"total_s": round(t["total_s"], 3), "read_s": round(t["read_s"], 3),
            "decide_s": round(t["decide_s"], 3), "apply_s": round(t.get("apply_s", 0.0), 3),
            "show_s": round(t.get("show_s", 0.0), 3),
            "resizes": len(report.result.applied) if report.result else 0,
            "show_updates": updates}


def measure(endpoint: str, session: str, vms: int, period_s: float = 10.0,
            say: Callable[[str], None] = print, cluster_id: int = -1) -> Dict[str, object]:
    """Build N VMs, run a first and a steady cvem cycle, tear down; the figures. With
    ``cluster_id``, measure that existing cluster's RUNNING VMs instead (nothing built or
    deleted)."""
    bed = Bed(endpoint, session)
    if cluster_id >= 0:
        vm_ids = [v for v, st in bed.states(cluster_id).items() if st == "3/3"]
        info = etree.fromstring(bed.rpc("one.cluster.info", cluster_id, False).encode())
        hosts = [int(h.text) for h in info.iterfind("HOSTS/ID")]
        say(f"  cluster {cluster_id}: {len(vm_ids)} RUNNING VMs on {len(hosts)} hosts")
        return _measure_cycles(bed, endpoint, session, cluster_id, hosts, vm_ids, period_s)
    cluster_id, hosts, vm_ids = _build(bed, vms, say)   # (cleans up after itself on failure)
    try:
        return _measure_cycles(bed, endpoint, session, cluster_id, hosts, vm_ids, period_s)
    finally:
        _teardown(bed, cluster_id, hosts)


def _measure_cycles(bed, endpoint, session, cluster_id, hosts, vm_ids, period_s):
    from ..adapters.one import OneCloud
    from ..config import parse_config
    from ..service.runner import Service
    from ..service.state import StateStore
    vms = len(vm_ids)
    if True:
        seq = int(time.time())
        update_s = _publish(bed, vm_ids, seq)
        with tempfile.TemporaryDirectory() as tmp:
            auth = Path(tmp) / "one_auth"
            auth.write_text(session + "\n")
            config = parse_config(
                f"[cvem]\nperiod_s = {period_s}\nstate_db = {tmp}/state.db\n"
                f"live_resize_vm_mads = dummylive\nclusters = {cluster_id}\n"
                f"max_updates_per_cycle = {vms}\n"
                f"[one]\nendpoint = {endpoint}\nauth_file = {auth}\n", "bench")
            service = Service(config, OneCloud(endpoint, session, timeout_s=120),
                              StateStore(f"{tmp}/state.db"))
            first = service.cycle()
            rows = {"first": _cycle_row(first, first.updates)}
            _wait(lambda: "3/66" not in bed.states(cluster_id).values(), "resizes done", 300)
            second = service.cycle()            # confirms the first cycle's resizes
            rows["confirm"] = _cycle_row(second, second.updates)
            _publish(bed, vm_ids, seq + 1)
            steady = service.cycle()
            rows["steady"] = _cycle_row(steady, steady.updates)
            service.store.close()
    return {"vms": vms, "hosts": len(hosts), "update_ms": round(update_s * 1000, 2),
            "cycles": rows}


def write_budget(update_ms: float, heartbeat_s: float = 60.0,
                 resizes_per_vm_hour: float = DESIGN_RESIZES_PER_VM_HOUR) -> Dict[str, float]:
    """oned writes per second per 1,000 VMs: publishers (one PUT per heartbeat when quiet),
    cvem (a resize and its CLOUDVAMP_LAST_ACTION each), against the measured capacity."""
    publishers = 1000.0 / heartbeat_s
    cvem = 2.0 * 1000.0 * resizes_per_vm_hour / 3600.0
    capacity = 1000.0 / update_ms if update_ms > 0 else float("inf")
    return {"publishers_per_s": round(publishers, 2), "cvem_per_s": round(cvem, 2),
            "capacity_per_s": round(capacity, 1),
            "share_at_10000_vms_pct": round(100.0 * 10 * (publishers + cvem) / capacity, 1),
            "history_bytes_per_vm_month": int(resizes_per_vm_hour * 24 * 30 *
                                              HISTORY_RECORD_BYTES)}
