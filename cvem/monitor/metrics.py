"""Prometheus metrics of cvem (``prometheus_client`` custom collector).

Every scrape is built from :meth:`Monitor.read` alone: per-host and per-VM series come from
the last cycle's view, so a VM that is gone has no series any more (no stale gauges).
Names follow the OpenNebula exporter: ``cloudvamp_*``, base units in the names, and the
labels ``one_host_id`` / ``one_vm_id`` so the series join with
``opennebula_host_*`` / ``opennebula_vm_*``. :data:`METRIC_NAMES` lists every family
(the dashboard and alert-rule tests check their expressions against it).
"""
from __future__ import annotations

from typing import Iterable

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    InfoMetricFamily)
from prometheus_client.registry import CollectorRegistry

from .state import Monitor, MonitorState

HOST = ["one_host_id"]
VM = ["one_vm_id", "one_host_id"]

# name -> (type, help); counters are listed without their _total suffix
FAMILIES = {
    "cloudvamp_host_physical_memory_bytes": ("gauge", "Physical memory of the host"),
    "cloudvamp_host_max_memory_bytes": ("gauge", "Memory OpenNebula may allocate (MAX_MEM)"),
    "cloudvamp_host_allocated_memory_bytes": (
        "gauge", "Memory allocated to VMs (MEM_USAGE) after this cycle's resizes"),
    "cloudvamp_host_reclaimed_memory_bytes": (
        "gauge", "Sum of MEMORY_MAX - MEMORY over the host's running VMs"),
    "cloudvamp_host_lent_memory_bytes": (
        "gauge", "Reclaimed memory offered to the scheduler (reclaimed - held back)"),
    "cloudvamp_host_held_back_memory_bytes": (
        "gauge", "Reclaimed memory held back from the scheduler (lend factor)"),
    "cloudvamp_host_needs_room_bytes": (
        "gauge", "Grows owed to the host's guests that did not fit this cycle"),
    "cloudvamp_vm_nominal_memory_bytes": ("gauge", "The VM's nominal size (MEMORY_MAX)"),
    "cloudvamp_vm_current_memory_bytes": ("gauge", "The VM's current MEMORY"),
    "cloudvamp_vm_guest_used_memory_bytes": (
        "gauge", "Memory the guest uses (its last valid fresh report)"),
    "cloudvamp_vm_target_memory_bytes": (
        "gauge", "The size cvem planned this cycle (current when no change)"),
    "cloudvamp_vm_managed": ("gauge", "1 when cvem manages the VM, 0 when it leaves it alone"),
    "cloudvamp_vm_report_fresh": ("gauge", "1 when the VM's guest report is valid and fresh"),
    "cloudvamp_vm_status": ("info", "Managed or why not (reason)"),
    "cloudvamp_vm_last_action": ("info", "The last action cvem took on the VM"),
    "cloudvamp_guest_reports": ("gauge", "Managed VMs by guest report state"),
    "cloudvamp_vms": ("gauge", "VMs seen in the last cycle, by managed"),
    "cloudvamp_cycle_duration_seconds": ("gauge", "Duration of the last cycle"),
    "cloudvamp_cycle_phase_duration_seconds": ("gauge", "Duration of each phase of the last cycle"),
    "cloudvamp_cycle_period_seconds": ("gauge", "Configured period between cycles"),
    "cloudvamp_last_cycle_timestamp_seconds": ("gauge", "When the last completed cycle ran"),
    "cloudvamp_cycles": ("counter", "Cycles by result (ok, failed)"),
    "cloudvamp_actions": ("counter", "Actions by kind (grow, shrink, migrate) and result"),
    "cloudvamp_oned_errors": ("counter", "oned errors by kind"),
    "cloudvamp_oned_up": ("gauge", "1 when the last cycle reached oned"),
    "cloudvamp_migrations_in_flight": ("gauge", "Live migrations started and not yet settled"),
    "cloudvamp_leader": ("gauge", "1 when this cvem acts (Raft SOLO or LEADER), 0 when it idles"),
    "cloudvamp_raft": ("info", "This front-end's Raft state as oned reports it"),
    "cloudvamp_cloud_reclaimed_memory_bytes": ("gauge", "Memory reclaimed in the whole cloud"),
}


def exposed_names() -> set:
    """Every sample name a scrape may contain (counters with ``_total``, infos with
    ``_info``) — what the dashboard and rules may use."""
    names = set()
    for name, (kind, _) in FAMILIES.items():
        names.add(name + {"counter": "_total", "info": "_info"}.get(kind, ""))
    return names


def _gauge(name, labels=None):
    return GaugeMetricFamily(name, FAMILIES[name][1], labels=labels)


def _fmt(value) -> str:
    return "" if value is None else str(value)


class CvemCollector:
    def __init__(self, monitor: Monitor):
        self.monitor = monitor

    def describe(self):
        return []   # no describe: scraped fresh each time, never cached

    def collect(self) -> Iterable:
        state = self.monitor.read()
        yield from self._service(state)
        if state.view is not None:
            yield from self._hosts(state)
            yield from self._vms(state)

    # --------------------------------------------------------------------- service
    def _service(self, s: MonitorState):
        period = _gauge("cloudvamp_cycle_period_seconds")
        period.add_metric([], s.period_s)
        yield period
        cycles = CounterMetricFamily("cloudvamp_cycles", FAMILIES["cloudvamp_cycles"][1],
                                     labels=["result"])
        for result in ("ok", "failed"):
            cycles.add_metric([result], s.cycles.get(result, 0))
        yield cycles
        actions = CounterMetricFamily("cloudvamp_actions", FAMILIES["cloudvamp_actions"][1],
                                      labels=["kind", "result"])
        for (kind, result), count in sorted(s.actions.items()):
            actions.add_metric([kind, result], count)
        yield actions
        errors = CounterMetricFamily("cloudvamp_oned_errors",
                                     FAMILIES["cloudvamp_oned_errors"][1], labels=["kind"])
        for kind, count in sorted(s.oned_errors.items()):
            errors.add_metric([kind], count)
        yield errors
        up = _gauge("cloudvamp_oned_up")
        up.add_metric([], 1.0 if s.oned_up else 0.0)
        yield up
        leader = _gauge("cloudvamp_leader")
        leader.add_metric([], 1.0 if s.acting else 0.0)
        yield leader
        raft = InfoMetricFamily("cloudvamp_raft", FAMILIES["cloudvamp_raft"][1])
        raft.add_metric([], {"state": s.role})
        yield raft
        view = s.view
        if view is None:
            return
        total = _gauge("cloudvamp_cycle_duration_seconds")
        total.add_metric([], view.timings_s.get("total_s", 0.0))
        yield total
        phases = _gauge("cloudvamp_cycle_phase_duration_seconds", ["phase"])
        for key in ("read_s", "decide_s", "apply_s", "show_s"):
            if key in view.timings_s:
                phases.add_metric([key[:-2]], view.timings_s[key])
        yield phases
        last = _gauge("cloudvamp_last_cycle_timestamp_seconds")
        last.add_metric([], view.at_s)
        yield last
        flying = _gauge("cloudvamp_migrations_in_flight")
        flying.add_metric([], view.migrations_in_flight)
        yield flying
        cloud = _gauge("cloudvamp_cloud_reclaimed_memory_bytes")
        cloud.add_metric([], view.reclaimed_bytes)
        yield cloud

    # ----------------------------------------------------------------------- hosts
    def _hosts(self, s: MonitorState):
        fields = {"cloudvamp_host_physical_memory_bytes": "physical_bytes",
                  "cloudvamp_host_max_memory_bytes": "max_mem_bytes",
                  "cloudvamp_host_allocated_memory_bytes": "allocated_bytes",
                  "cloudvamp_host_reclaimed_memory_bytes": "reclaimed_bytes",
                  "cloudvamp_host_lent_memory_bytes": "lent_bytes",
                  "cloudvamp_host_held_back_memory_bytes": "held_back_bytes",
                  "cloudvamp_host_needs_room_bytes": "needs_room_bytes"}
        for name, attr in fields.items():
            family = _gauge(name, HOST)
            for host in s.view.hosts:
                family.add_metric([str(host.host_id)], getattr(host, attr))
            yield family

    # ------------------------------------------------------------------------- VMs
    def _vms(self, s: MonitorState):
        sizes = {"cloudvamp_vm_nominal_memory_bytes": "nominal_bytes",
                 "cloudvamp_vm_current_memory_bytes": "current_bytes",
                 "cloudvamp_vm_guest_used_memory_bytes": "guest_used_bytes",
                 "cloudvamp_vm_target_memory_bytes": "target_bytes"}
        vms = s.view.vms
        for name, attr in sizes.items():
            family = _gauge(name, VM)
            for vm in vms:
                value = getattr(vm, attr)
                if value is not None:
                    family.add_metric([str(vm.vm_id), _fmt(vm.host_id)], value)
            yield family
        managed = _gauge("cloudvamp_vm_managed", VM)
        fresh = _gauge("cloudvamp_vm_report_fresh", VM)
        status = InfoMetricFamily("cloudvamp_vm_status", FAMILIES["cloudvamp_vm_status"][1],
                                  labels=VM)
        for vm in vms:
            labels = [str(vm.vm_id), _fmt(vm.host_id)]
            managed.add_metric(labels, 1.0 if vm.managed else 0.0)
            if vm.managed:
                fresh.add_metric(labels, 1.0 if vm.report_state == "fresh" else 0.0)
            status.add_metric(labels, {"state": vm.state, "reason": vm.reason,
                                       "report": vm.report_state})
        yield managed
        yield fresh
        yield status
        last = InfoMetricFamily("cloudvamp_vm_last_action",
                                FAMILIES["cloudvamp_vm_last_action"][1], labels=VM)
        hosts_of = {vm.vm_id: vm.host_id for vm in vms}
        for vm_id, row in sorted(s.last_action.items()):
            last.add_metric([str(vm_id), _fmt(hosts_of.get(vm_id))],
                            {"action": row.kind, "reason": row.reason})
        yield last
        reports = _gauge("cloudvamp_guest_reports", ["state"])
        for state in ("fresh", "stale", "invalid", "missing"):
            reports.add_metric([state], sum(1 for vm in vms if vm.report_state == state))
        yield reports
        counts = _gauge("cloudvamp_vms", ["managed"])
        counts.add_metric(["true"], sum(1 for vm in vms if vm.managed))
        counts.add_metric(["false"], sum(1 for vm in vms if not vm.managed))
        yield counts


def make_registry(monitor: Monitor) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CvemCollector(monitor))
    return registry
