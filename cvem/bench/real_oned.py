"""``cvem bench real``: whole cvem cycles (read, decide, apply, show) against a real oned.

For a *test* OpenNebula with the dummy drivers (the project's oned test bed): it creates a
cluster of its own with hosts on the live-resize VM_MAD ``dummylive``, N VMs (1 GiB, placed
with ``enforce=false``, 50 at a time), publishes one guest report per VM the way the OneGate
publisher does (one ``one.vm.update`` each), runs cvem's Service on that cluster with the
service's defaults, then deletes everything.

Reported per size: each cycle (paced at the period, as ``cvem run`` does) split into read /
decide / apply / show with its resizes, deferred actions and attribute writes; the cost of
each kind of call on its own; the load average; the bytes one resize adds to oned's history
(a VM's ``one.vm.info`` before and after); and the write budget per 1,000 VMs.

oned 7.4 on sqlite shares ``one.db`` with monitord: under load it answers with its
database-locked forms (:func:`cvem.adapters.one.transient_reply`) or loses a write (a VM
left in LCM_INIT, PROLOG or EPILOG): the bench retries the first and remakes or deletes
the second. The dummy IM's ``vm/execution`` probe calls ``one.vm.info`` for every VM on every
host every ``EXEC_VM`` seconds (5 in monitord.conf): raise it on the bed for large fleets.
"""
from __future__ import annotations

import os
import tempfile
import time
import xmlrpc.client
from pathlib import Path
from typing import Callable, Dict, List, Optional

from lxml import etree

KIB_PER_MIB = 1024
VM_MEMORY_MIB = 1024
VMS_PER_HOST = 250
CREATE_BATCH = 50                    # VMs allocated and deployed before waiting for them
CYCLES = 6                           # cycles timed back to back at the service's period


class Bed:
    """The bench's own XML-RPC calls (building and tearing down fleets), with oned's
    database-locked replies retried as cvem's adapter does, only longer: a bulk creation
    on a busy sqlite oned meets them by the dozen."""

    def __init__(self, endpoint: str, session: str):
        self.endpoint, self.session = endpoint, session
        self.proxy = xmlrpc.client.ServerProxy(endpoint)
        self.retried = 0

    def rpc(self, method, *args, also=()):
        from ..adapters.one import transient_reply
        for attempt in range(8):
            answer = getattr(self.proxy, method)(self.session, *args)
            if answer[0] or not (transient_reply(str(answer[1]), int(answer[2]))
                                 or any(m in str(answer[1]) for m in also)):
                break
            self.retried += 1
            time.sleep(0.25 * (attempt + 1))
        if not answer[0]:
            raise RuntimeError(f"{method}: {answer[1]}")
        return answer[1]

    def pool(self, cluster_id: int):
        pool = etree.fromstring(self.rpc("one.vmpool.info", -2, -1, -1, -1).encode())
        return [vm for vm in pool.iterfind("VM")
                if vm.findtext("HISTORY_RECORDS/HISTORY/CID") == str(cluster_id)]

    def states(self, cluster_id: int) -> Dict[int, str]:
        return {int(vm.findtext("ID")): vm.findtext("STATE") + "/" + vm.findtext("LCM_STATE")
                for vm in self.pool(cluster_id)}

    def vm_state(self, vm_id: int) -> str:
        vm = etree.fromstring(self.rpc("one.vm.info", vm_id, False).encode())
        return vm.findtext("STATE") + "/" + vm.findtext("LCM_STATE")


def _wait(predicate, what, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")


def _create_vm(bed: Bed, index: int, host_id: int) -> int:
    """Allocate on hold and deploy one VM. A deploy oned could not record ("Cannot update
    virtual machine [history]": its history row may be half written, so the same deploy
    fails again) leaves the VM on hold: it is deleted and another one made."""
    for _ in range(4):
        vm_id = bed.rpc("one.vm.allocate", f'NAME="bench-{index}"\nMEMORY="{VM_MEMORY_MIB}"\n'
                        f'MEMORY_MAX="{VM_MEMORY_MIB}"\nMEMORY_RESIZE_MODE="BALLOONING"\n'
                        'CPU="0.01"\nVCPU="1"\n', True, also=("Error allocating",))
        try:
            bed.rpc("one.vm.deploy", vm_id, host_id, False, -1, "")
            return vm_id
        except RuntimeError:
            if bed.vm_state(vm_id) != "2/0":
                return vm_id          # deployed after all (the reply was the lost part)
            bed.rpc("one.vm.action", "terminate-hard", vm_id)
    raise RuntimeError(f"oned kept refusing to deploy bench-{index}")


def _create_batch(bed: Bed, cluster_id: int, hosts: List[int], indexes) -> List[int]:
    """The batch's VMs, all RUNNING. A deploy whose state change oned could not write
    (database locked) leaves its VM in LCM_INIT or PROLOG_FAILURE for good: such a VM is
    deleted and made again."""
    pending, running = list(indexes), []
    for _ in range(4):
        batch = [_create_vm(bed, i, hosts[i % len(hosts)]) for i in pending]

        progress = {"running": -1, "since": time.monotonic()}

        def settled():   # all RUNNING, or no VM of the batch got there for 30 s
            states = bed.states(cluster_id)
            now_running = sum(1 for v in batch if states.get(v) == "3/3")
            if now_running != progress["running"]:
                progress.update(running=now_running, since=time.monotonic())
            return now_running == len(batch) or time.monotonic() - progress["since"] > 30
        _wait(settled, f"{len(batch)} bench VMs RUNNING", 900)
        states = bed.states(cluster_id)
        stuck = [(i, v) for i, v in zip(pending, batch) if states.get(v) != "3/3"]
        running += [v for v in batch if states.get(v) == "3/3"]
        for _, vm_id in stuck:
            _delete(bed, vm_id)
        pending = [i for i, _ in stuck]
        if not pending:
            return running
    raise RuntimeError(f"{len(pending)} bench VMs never reached RUNNING")


def _delete(bed: Bed, vm_id: int) -> None:
    for operation in (3, 5):            # recover "delete", then "delete-db"
        try:
            bed.rpc("one.vm.recover", vm_id, operation)
            return
        except RuntimeError:
            pass


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
        # paced: a batch at a time, each RUNNING before the next, so oned's sqlite (shared
        # with monitord) is never asked for a thousand deploys' writes at once
        for first in range(0, vms, CREATE_BATCH):
            vm_ids += _create_batch(bed, cluster_id, hosts,
                                    range(first, min(first + CREATE_BATCH, vms)))
    except Exception:
        for vm_id in vm_ids:      # maybe not in the cluster's history yet: by ID
            try:
                bed.rpc("one.vm.action", "terminate-hard", vm_id)
            except RuntimeError:
                pass
        _teardown(bed, cluster_id, hosts)
        raise
    say(f"  {vms} VMs on {len(hosts)} hosts RUNNING in {time.monotonic() - started:.0f} s "
        f"({bed.retried} database-locked replies retried)")
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
    # a state change oned could not write (database locked) can leave a VM in EPILOG or
    # HOTPLUG_RESIZE for good: what is still there after a while is deleted (recover
    # "delete", then "delete-db")
    for operation in (None, 3, 5):
        for vm_id in bed.states(cluster_id) if operation else ():
            try:
                bed.rpc("one.vm.recover", vm_id, operation)
            except RuntimeError:
                pass
        try:
            _wait(lambda: not bed.states(cluster_id), "bench VMs DONE", 180)
            break
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
    result = report.result
    return {"total_s": round(t["total_s"], 3), "read_s": round(t["read_s"], 3),
            "decide_s": round(t["decide_s"], 3), "apply_s": round(t.get("apply_s", 0.0), 3),
            "show_s": round(t.get("show_s", 0.0), 3),
            "read_vms_s": round(t.get("read_vms_s", 0.0), 3),
            "resizes": len(result.applied) if result else 0,
            "deferred": len(result.deferred) if result else 0,
            "show_updates": updates}


def _load() -> List[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def measure(endpoint: str, session: str, vms: int, period_s: Optional[float] = None,
            say: Callable[[str], None] = print, cluster_id: int = -1,
            cycles: int = CYCLES) -> Dict[str, object]:
    """Build N VMs, run cvem cycles with the service's defaults, time single calls and the
    history a resize adds, tear down; the figures. With ``cluster_id``, measure that
    existing cluster's RUNNING VMs instead (nothing built or deleted)."""
    bed = Bed(endpoint, session)
    load_before = _load()
    if cluster_id >= 0:
        vm_ids = [v for v, st in bed.states(cluster_id).items() if st == "3/3"]
        info = etree.fromstring(bed.rpc("one.cluster.info", cluster_id, False).encode())
        hosts = [int(h.text) for h in info.iterfind("HOSTS/ID")]
        say(f"  cluster {cluster_id}: {len(vm_ids)} RUNNING VMs on {len(hosts)} hosts")
        row = _measure_cycles(bed, endpoint, session, cluster_id, hosts, vm_ids, period_s,
                              cycles, say)
    else:
        cluster_id, hosts, vm_ids = _build(bed, vms, say)   # (cleans up after itself on failure)
        try:
            row = _measure_cycles(bed, endpoint, session, cluster_id, hosts, vm_ids, period_s,
                                  cycles, say)
        finally:
            _teardown(bed, cluster_id, hosts)
    row["load_avg"] = {"before": load_before, "after": _load(), "cpus": os.cpu_count()}
    row["database_locked_retries"] = bed.retried
    return row


def _measure_cycles(bed, endpoint, session, cluster_id, hosts, vm_ids, period_s, cycles, say):
    from ..adapters.one import OneCloud
    from ..config import ServiceParams, parse_config
    from ..service.runner import Service
    from ..service.state import StateStore
    period_s = period_s or ServiceParams().period_s
    seq = int(time.time())
    update_s = _publish(bed, vm_ids, seq)
    with tempfile.TemporaryDirectory() as tmp:
        auth = Path(tmp) / "one_auth"
        auth.write_text(session + "\n")
        # the service's defaults (rate limits, show budget) but for where it runs
        config = parse_config(
            f"[cvem]\nperiod_s = {period_s}\nstate_db = {tmp}/state.db\n"
            f"live_resize_vm_mads = dummylive\nclusters = {cluster_id}\n"
            f"metrics_address =\n"
            f"[one]\nendpoint = {endpoint}\nauth_file = {auth}\n", "bench")
        cloud = OneCloud(endpoint, session, timeout_s=120)
        service = Service(config, cloud, StateStore(f"{tmp}/state.db"))
        rows = []
        for _ in range(cycles):        # as `cvem run` paces them
            started = time.monotonic()
            report = service.cycle()
            rows.append(_cycle_row(report, report.updates))
            time.sleep(max(period_s - (time.monotonic() - started), 0.0))
        _publish(bed, vm_ids, seq + 1)            # the publishers' next heartbeat
        steady = service.cycle()
        rows.append(_cycle_row(steady, steady.updates))
        rows[-1]["steady"] = True
        costs = _call_costs(cloud, vm_ids)
        history = _history_bytes(bed, cloud, vm_ids[0])
        service.store.close()
    costs["one.vm.update_ms"] = round(update_s * 1000, 2)
    return {"vms": len(vm_ids), "hosts": len(hosts), "period_s": period_s,
            "update_ms": round(update_s * 1000, 2), "cycles": rows, "calls_ms": costs,
            "history": history, "adapter_retries": cloud.transient_retries}


def _timed_ms(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return round((time.perf_counter() - started) * 1000 / n, 2)


def _call_costs(cloud, vm_ids: List[int]) -> Dict[str, float]:
    """Milliseconds per call of what a cycle does, each on its own."""
    sample = vm_ids[:: max(len(vm_ids) // 20, 1)][:20]
    it = iter(sample * 2)
    pool_ms = _timed_ms(cloud.read_vms, 3)
    return {"vmpool.infoextended_ms": pool_ms,
            "vmpool.infoextended_per_vm_ms": round(pool_ms / max(len(vm_ids), 1), 3),
            "hostpool.info_ms": _timed_ms(lambda: cloud.call_raw("one.hostpool.info"), 3),
            "vmpool.monitoring_ms": _timed_ms(
                lambda: cloud.call_raw("one.vmpool.monitoring", -2, 0), 3),
            "recheck_ms": _timed_ms(lambda: cloud.vm_brief(next(it)), len(sample))}


def _history_bytes(bed: Bed, cloud, vm_id: int, resizes: int = 4) -> Dict[str, float]:
    """The growth of one VM's ``one.vm.info`` per resize (each closes a history record and
    opens one), and what one ``one.vm.resize`` call costs."""
    def size_now():
        return len(bed.rpc("one.vm.info", vm_id, False).encode())

    def settled():
        return bed.vm_state(vm_id) == "3/3"
    _wait(settled, f"VM {vm_id} RUNNING", 300)
    before = size_now()
    memory = int(etree.fromstring(bed.rpc("one.vm.info", vm_id, False).encode())
                 .findtext("TEMPLATE/MEMORY"))
    spent = 0.0
    for i in range(resizes):
        target = memory - 64 if i % 2 == 0 else memory
        started = time.perf_counter()
        cloud.resize_memory(vm_id, target, False)
        spent += time.perf_counter() - started
        _wait(settled, f"VM {vm_id} resized", 300)
    return {"bytes_per_resize": round((size_now() - before) / resizes),
            "resize_call_ms": round(spent * 1000 / resizes, 2), "resizes": resizes}


def history_per_vm_month(bytes_per_resize: float, resizes_per_vm_hour: float) -> Dict[str, float]:
    records = resizes_per_vm_hour * 24 * 30
    return {"records": round(records), "bytes": int(records * bytes_per_resize)}


def default_policy_resize_rate(traces: str) -> float:
    """Resizes per VM-hour of ``default`` replayed on a trace folder by the simulator
    (issue 11's bench figure, taken from a run rather than pasted)."""
    from ..sim.suite import run_suite
    from ..sim.workloads import read_bitbrains
    workload = read_bitbrains(traces, step_s=300.0)
    return float(run_suite(workload, ["default"])["default"].metrics["resizes_per_vm_hour"])


