"""The service loop: read -> observe -> decide -> (save) -> apply -> show, every period.

With ``[migration] enabled`` (the default) the decision is
:func:`~cvem.core.decide.decide_with_migrations`: overload protection's state (per-host
demand history and cooldowns, the one-hour move log, live migrations in flight) is loaded
from the state DB at start-up, reconciled against oned at the start of every cycle
(:func:`~cvem.service.migrations.reconcile_migrations`), saved with the history *before*
acting, and updated after the applier for every move oned refused. A VM with a migration in
flight is left out of the snapshot (never resized while it moves).

``Service.cycle()`` is one cycle (``cvem plan`` runs it with ``dry_run``: nothing is
written, neither to oned nor to the state DB); ``Service.run()`` repeats it every
``period_s``, logs each cycle's time, backs off exponentially while oned is unreachable or
refuses the session, and returns cleanly when its stop event is set (SIGTERM).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from .. import keys
from ..config import Config
from ..core.decide import decide, decide_with_migrations
from ..core.guards import LAST_CHANGE_COLUMN
from ..core.model import KIB_PER_MIB, Plan, Resize
from ..errors import AdapterError, CloudvampError
from ..lending.tracker import LendTracker
from ..ports import AuthFailed, Cloud, CloudRead, OneCallFailed, Unreachable
from . import lend, nominal, quota
from .quota import QuotaHolder
from .handover import (Handover, build_record, merge_history, merge_inflight, merge_migrations,
                       merge_sizes)
from .leader import AlwaysActing, LeaderGate
from .applier import Applier, ApplyResult, Throttle, to_mib
from ..core.migration import back_off_move, clear_backoff
from .migrations import forget_move, reconcile_migrations, vm_locations
from .observe import (Observation, VmStatus, observe, outside_filters,
                      problem_kind)
from .state import InFlight, ResizeBackoff, StateStore

LOG = logging.getLogger(__name__)

# A cycle keeps to its period (measured on oned 7.4 at 1,000 VMs: `cvem bench real`): resizes
# start until this share of the period has passed since the cycle began, show attributes are
# written until SHOW_SHARE (a last call may take oned's 2.5 s sqlite busy timeout); the rest
# waits for the next cycles, planned again from fresh figures (urgent grows first).
APPLY_SHARE = 0.6
SHOW_SHARE = 0.75

TRANSIENT_REASONS = ("resize in progress", "previous resize still in flight",
                     "not running (LCM state MIGRATE)", "migration in flight",
                     "OneDRS plan in flight")


@dataclass
class CycleReport:
    now_s: float
    observation: Observation
    plan: Plan
    result: Optional[ApplyResult] = None
    timings_s: Dict[str, float] = field(default_factory=dict)
    dry_run: bool = False
    updates: int = 0
    migrations_in_flight: tuple = ()   # cvem.core.migration.InFlight, before this plan


def show_attributes(status: VmStatus) -> Dict[str, str]:
    attrs = {keys.SHOW_STATE: "MANAGED" if status.managed else "IGNORED",
             keys.SHOW_REASON: status.reason}
    if status.nominal_kib:
        attrs[keys.SHOW_NOMINAL_MIB] = str(status.nominal_kib // KIB_PER_MIB)
    return attrs


class Service:
    def __init__(self, config: Config, cloud: Cloud, store: StateStore,
                 clock=time.time, throttle: Optional[Throttle] = None):
        self.config = config
        self.params = config.service
        self.cloud = cloud
        self.store = store
        self.clock = clock
        self.decider = config.build_decider()
        self.migrations_enabled, self.migration_config = config.build_migration()
        self.migration_state = store.load_migration_state()
        self.history = store.load_history()
        self.marks = store.load_marks()
        self.applier = Applier(cloud, store, self.params, clock=clock, throttle=throttle)
        self.quotas = QuotaHolder(cloud, store) if self.params.quota_hold \
            and hasattr(cloud, "call_raw") else None
        self.sizes = store.load_sizes()
        self.resize_backoff = store.load_resize_backoff()
        self._cvem_uid: Optional[int] = None
        self._writer: Optional[str] = None   # this state DB's name in handover records
        self._settled: List[Tuple[InFlight, str]] = []   # (record, "confirmed"|"rolled back")
        lend_params, strategy = config.build_lending()
        self.lend_tracker = LendTracker(strategy, lend_params)
        self._problems: Dict[int, str] = {}
        self._failing: Optional[str] = None
        self._previous_history = None
        self.cycles = 0
        self.last_error: Optional[str] = None   # why the last cycle of run() failed
        # HA and monitoring (cvem/service/leader.py, handover.py; cvem/monitor/): observers
        # get cycle_done(report, in_flight), cycle_failed(kind, message),
        # role_changed(role, acting)
        self.observers: list = []
        self.leader = LeaderGate(cloud) if self.params.leader_only else AlwaysActing()
        self.handover = Handover(cloud) if self.params.handover else None
        from ..config import migration_switch
        self.onedrs_blocked = migration_switch(config.migration).onedrs_blocked
        self._drs_warned = False

    # ------------------------------------------------------------------ pieces
    def reconcile_inflight(self, read: CloudRead, now_s: float) -> Set[int]:
        """Settle the in-flight records against what oned shows; returns the VMs whose
        earlier resize is still in flight (left alone this cycle)."""
        busy: Set[int] = set()
        done: Dict[str, float] = {}
        vms = {v.vm_id: v for v in read.vms}
        for rec in self.store.load_inflight().values():
            vm = vms.get(rec.vm_id)
            age = now_s - rec.started_at_s
            where = f"vm={rec.vm_id} host={rec.host_id} action={rec.action}"
            if vm is None:
                LOG.info("%s: VM gone, forgetting the in-flight resize", where)
            elif vm.memory_mib is not None and vm.memory_mib * KIB_PER_MIB == rec.to_kib \
                    and vm.lcm_state == 3:
                if rec.status == "pending":
                    LOG.info("%s from_kib=%d to_kib=%d confirmed after an interrupted cycle",
                             where, rec.from_kib, rec.to_kib)
                self._resize_settled(rec, "confirmed", now_s)
                done[str(rec.vm_id)] = rec.started_at_s   # its cooldown runs from then
            elif vm.memory_mib is not None and vm.memory_mib * KIB_PER_MIB == rec.from_kib \
                    and vm.lcm_state == 3:
                if rec.status == "pending":
                    LOG.warning("%s to_kib=%d did not happen (never reached oned); it will be "
                                "planned again", where, rec.to_kib)
                else:
                    self._resize_settled(rec, "rolled back", now_s)
            elif age > self.params.inflight_timeout_s:
                LOG.warning("%s still unsettled after %.0f s (state %d/%d, MEMORY %s MiB); "
                            "giving up on it", where, age, vm.state, vm.lcm_state,
                            vm.memory_mib)
            else:
                busy.add(rec.vm_id)
                continue
            self.store.drop_inflight(rec.vm_id)
        if done:   # a resize learnt from another leader's record starts its VM's cooldown
            self.history = merge_history(self.history, done, self.decider.initial_history)
        return busy

    def _resize_settled(self, rec: InFlight, outcome: str, now_s: float) -> None:
        """A resize cvem issued is seen done, or undone by oned (the driver failed it: oned
        puts MEMORY back). Only a confirmed resize counts as applied; a rolled-back one
        backs its VM off, period × 2^failures up to ``backoff_max_s``."""
        self._settled.append((rec, outcome))
        if outcome == "confirmed":
            sized = nominal.confirmed(self.sizes, rec.vm_id, rec.to_kib)
            self.sizes.update(sized)
            self.store.save_sizes(sized)
            if rec.vm_id in self.resize_backoff:
                del self.resize_backoff[rec.vm_id]
                self.store.clear_resize_backoff(rec.vm_id)
            return
        old = self.resize_backoff.get(rec.vm_id)
        failures = old.failures + 1 if old else 1
        wait_s = min(self.params.period_s * 2.0 ** failures, self.params.backoff_max_s)
        back = ResizeBackoff(rec.vm_id, failures, now_s + wait_s,
                             f"{rec.action} {to_mib(rec.from_kib)}->{to_mib(rec.to_kib)} MiB")
        self.resize_backoff[rec.vm_id] = back
        self.store.set_resize_backoff(back)
        LOG.warning("vm=%d host=%d action=%s from_kib=%d to_kib=%d failed: rolled back by "
                    "oned (driver error, or a database-locked oned lost it; MEMORY still "
                    "%d MiB); failure %d in a row, next try in %.0f s", rec.vm_id, rec.host_id,
                    rec.action, rec.from_kib, rec.to_kib, to_mib(rec.from_kib), failures, wait_s)

    def _held_back(self, now_s: float) -> Dict[int, str]:
        return {vm_id: f"resize back-off: {b.last_error} failed {b.failures} time(s) in a "
                       f"row (rolled back), next try in {b.until_s - now_s:.0f} s"
                for vm_id, b in self.resize_backoff.items() if b.until_s > now_s}

    def _cvem_user(self) -> Optional[int]:
        if self._cvem_uid is None and hasattr(self.cloud, "whoami"):
            try:
                self._cvem_uid = self.cloud.whoami()
            except AdapterError as error:
                LOG.warning("cannot tell cvem's own user ID: %s", error)
        return self._cvem_uid

    def settle_sizes(self, read: CloudRead, busy: Set[int], dry_run: bool):
        """Every VM's nominal size (cvem.service.nominal), saved unless ``dry_run``."""
        inflight = set(busy) | set(self.store.load_inflight())
        hosts = {h.host_id: h for h in read.hosts}
        outside = {vm.vm_id for vm in read.vms
                   if outside_filters(vm, hosts.get(vm.host_id), self.params)}
        update = nominal.settle_sizes(read.vms, self.sizes, inflight, self._cvem_user(),
                                      getattr(self.cloud, "history_actions", None),
                                      outside=outside)
        if not dry_run:
            for vm_id in update.gone:
                self.sizes.pop(vm_id, None)
                if self.resize_backoff.pop(vm_id, None):
                    self.store.clear_resize_backoff(vm_id)
            self.sizes.update(update.changed)
            self.store.save_sizes(update.changed, update.gone)
        return update.nominal_kib

    def _log_report_problems(self, obs: Observation) -> None:
        """One WARNING when a VM's report becomes unusable (or unusable for another kind of
        reason), one INFO when it is usable again: never one per cycle (the text of a stale
        report holds its growing age, a hostile guest's holds whatever it wrote)."""
        seen = {}
        for st in obs.statuses:
            if st.managed and st.report_problem and not st.guest_source:
                seen[st.vm_id] = problem_kind(st.report_problem)
                if self._problems.get(st.vm_id) != seen[st.vm_id]:
                    LOG.warning("vm=%d guest report unusable, treated as unknown (grown back "
                                "toward nominal, never shrunk): %s", st.vm_id, st.report_problem)
            elif st.vm_id in self._problems and st.managed:
                LOG.info("vm=%d guest report usable again (%s)", st.vm_id, st.guest_source)
        self._problems = seen
        for st in obs.statuses:
            if st.managed and st.self_deflated_kib:
                LOG.warning("vm=%d guest deflated its balloon on its own by %d MiB above "
                            "MEMORY=%d MiB (deflate-on-OOM): pressure, growing it now",
                            st.vm_id, to_mib(st.self_deflated_kib), to_mib(st.allocated_kib))

    def _write_show(self, obs: Observation, result: ApplyResult, now_s: float,
                    started: float) -> int:
        if not self.params.show_attributes:
            return 0
        last = {}
        # Only what oned shows done: a resize the driver failed is rolled back by oned and
        # must not be shown as made (it is reconciled a cycle after being issued).
        for rec, outcome in self._settled:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec.started_at_s))
            last[rec.vm_id] = (f"{rec.action} {to_mib(rec.from_kib)}->{to_mib(rec.to_kib)} MiB "
                               f"({rec.reason}) {stamp}"
                               + ("" if outcome == "confirmed" else " FAILED, rolled back"))
        todo = []
        for st in obs.statuses:
            raw = obs.raw_vms[st.vm_id]
            if st.vm_id not in last and not st.managed and (
                    keys.SHOW_STATE not in raw.user or st.reason.startswith(TRANSIENT_REASONS)):
                continue   # a settled action is shown also on a VM now held back
            want = show_attributes(st)
            if self.onedrs_blocked and st.managed:
                want[keys.ONEDRS_BLOCKED] = "YES"   # cvem owns this VM's migrations
            if st.vm_id in last:
                want[keys.SHOW_LAST_ACTION] = last[st.vm_id]
            diff = {k: v for k, v in want.items() if raw.user.get(k) != v}
            if diff:
                todo.append((st.vm_id not in last, st.vm_id, diff))
        todo.sort()
        written = 0
        # Show attributes are cosmetics: they never delay the next cycle's grows. What does
        # not fit in the cycle's time is written in the next cycles (still differing then).
        budget_end = time.monotonic() + SHOW_SHARE * self.params.period_s - (
            time.perf_counter() - started)
        for not_settled, vm_id, diff in todo[:self.params.max_updates_per_cycle]:
            # a settled action's CLOUDVAMP_LAST_ACTION is written now whatever the time (one
            # update per action, like its log line): it is not recomputed next cycle
            if not_settled and time.monotonic() > budget_end:
                LOG.debug("show attributes: %d left for the next cycles", len(todo) - written)
                break
            try:
                self.cloud.update_vm_attributes(vm_id, diff)
                written += 1
            except OneCallFailed as error:
                LOG.info("vm=%d cannot update its CLOUDVAMP_* attributes: %s", vm_id,
                         error.message)
        return written

    def _lend(self, obs: Observation, allocated_mib: Dict[int, int], before_grows: bool,
              written: Dict[int, str]) -> None:
        tracker = self.lend_tracker
        if tracker.strategy.name == "none" and not any(
                h.template.get(keys.HOST_BASE_RESERVED_MEM) for h in obs.raw_hosts.values()):
            return
        load = lend.managed_load(obs, allocated_mib)
        grows: Optional[Dict[int, int]] = None
        if before_grows:
            grows = {}
            for st in obs.statuses:
                if st.vm_id in allocated_mib and st.host_id is not None and st.allocated_kib:
                    grows[st.host_id] = grows.get(st.host_id, 0) + max(
                        allocated_mib[st.vm_id] * KIB_PER_MIB - st.allocated_kib, 0)
        updates = lend.host_updates(obs, tracker, load, grows, written)
        for host_id, attrs in updates.items():
            if keys.HOST_BASE_RESERVED_MEM in attrs and not attrs[keys.HOST_BASE_RESERVED_MEM] \
                    and host_id in written:
                continue
            try:
                self.cloud.update_host_attributes(host_id, attrs)
                if "RESERVED_MEM" in attrs:
                    written[host_id] = attrs["RESERVED_MEM"]
                    now = load.hosts.get(host_id)
                    LOG.info("host=%d action=lend RESERVED_MEM=%r strategy=%s allocated_kib=%d "
                             "booked_kib=%d", host_id, attrs["RESERVED_MEM"],
                             tracker.strategy.name, now.allocated_kib if now else 0,
                             now.booked_kib if now else 0)
            except OneCallFailed as error:
                LOG.warning("host=%d cannot update RESERVED_MEM: %s", host_id, error.message)

    def migration_grace_s(self) -> float:
        """How long a VM may still read RUNNING on its source after oned accepted its
        migrate (oned starts the move asynchronously) before the move counts as failed."""
        return max(2.0 * self.params.period_s, 20.0)

    def reconcile_migrations(self, read: CloudRead, now_s: float, log: bool = True):
        state = self.migration_state
        if not state.in_flight:
            return state
        rec = reconcile_migrations(state, read.vms, now_s,
                                   self.migration_config.params.timeout_s,
                                   self.migration_grace_s())
        if log:
            for m in rec.done:
                LOG.info("vm=%d host=%d action=migrate to_host=%d done after %.0f s "
                         "(RUNNING on the target)", m.vm_id, m.from_host_id, m.to_host_id,
                         now_s - m.started_s)
            for m, why in rec.failed:
                LOG.warning("vm=%d host=%d action=migrate to_host=%d failed: %s", m.vm_id,
                            m.from_host_id, m.to_host_id, why)
        state = rec.state
        p = self.migration_config.params
        for m in rec.done:
            state = clear_backoff(state, m.vm_id)
        for m, why in rec.failed:
            if why != "VM gone":
                state = back_off_move(state, m.vm_id, now_s, p.retry_backoff_s,
                                      p.retry_backoff_max_s)
        if log and (rec.done or rec.failed):
            # settled now, not at this cycle's save: a cvem killed in between would settle
            # (and back off) the same move again at every restart
            self.store.save_migration_state(state)
        return state

    def _forget_refused_moves(self, result: ApplyResult, now_s: float) -> None:
        state = self.migration_state
        p = self.migration_config.params
        for outcome in result.migrations:
            if outcome.status != "issued":
                state = forget_move(state, outcome.action.vm_id, now_s)
            if outcome.status == "failed":
                state = back_off_move(state, outcome.action.vm_id, now_s, p.retry_backoff_s,
                                      p.retry_backoff_max_s)
        if state is not self.migration_state:
            self.migration_state = state
            self.store.save_migration_state(state)

    # ------------------------------------------------------------------- cycle
    _LAST_CHANGE = LAST_CHANGE_COLUMN

    def _last_change_of(self, plan: Plan) -> Dict[int, float]:
        """Each planned VM's cooldown clock as it was before this cycle."""
        old = self._previous_history
        col = old.columns.get(self._LAST_CHANGE) if old is not None else None
        if col is None:
            return {}
        pos = {int(v): i for i, v in enumerate(old.vm_ids)}
        return {a.vm_id: float(col[pos[a.vm_id]]) for a in plan.actions
                if isinstance(a, Resize) and a.vm_id in pos}

    def _forget_unapplied(self, previous: Dict[int, float], applied: Set[int],
                          now_s: float) -> None:
        """The core stamps every planned change as done; a resize that was deferred by the
        rate limit, skipped or refused did not happen, so its VM must not sit in cooldown."""
        col = self.history.columns.get(self._LAST_CHANGE)
        if col is None:
            return
        col = np.array(col, copy=True)
        changed = False
        for i, vm_id in enumerate(self.history.vm_ids):
            vm_id = int(vm_id)
            if col[i] == now_s and vm_id not in applied:
                col[i] = previous.get(vm_id, -np.inf)
                changed = True
        if changed:
            self.history = self.history.with_columns(**{self._LAST_CHANGE: col})
            self.store.save_cycle(self.history, self.marks)

    def cycle(self, dry_run: Optional[bool] = None) -> CycleReport:
        dry_run = self.params.dry_run if dry_run is None else dry_run
        t0 = time.perf_counter()
        started, period_s = time.monotonic(), self.params.period_s
        read = self.cloud.read_cloud()
        now_s = self.clock()
        t1 = time.perf_counter()
        self._settled = []
        busy = set() if dry_run else self.reconcile_inflight(read, now_s)
        mig_state = self.reconcile_migrations(read, now_s, log=not dry_run)
        flying = {m.vm_id: m.to_host_id for m in mig_state.in_flight}
        nominal_kib = self.settle_sizes(read, busy, dry_run)
        obs = observe(read, self.params, self.marks, now_s, busy, migrating=flying,
                      nominal_kib=nominal_kib, held_back=self._held_back(now_s),
                      drs_moving=self._drs_moving(read))
        if self.migrations_enabled:
            plan, new_history, new_mig_state = decide_with_migrations(
                obs.snapshot, self.history, self.decider, mig_state, self.migration_config,
                vm_locations=vm_locations(read.vms),
                max_report_age_s=self.params.stale_after_s)
        else:
            plan, new_history = decide(obs.snapshot, self.history, self.decider,
                                       max_report_age_s=self.params.stale_after_s)
            new_mig_state = mig_state
        t2 = time.perf_counter()
        report = CycleReport(now_s, obs, plan, dry_run=dry_run,
                             timings_s=dict(read.timings_s, read_s=t1 - t0, decide_s=t2 - t1),
                             migrations_in_flight=tuple(mig_state.in_flight))
        if dry_run:
            report.timings_s["total_s"] = time.perf_counter() - t0
            return report
        self._log_report_problems(obs)
        # A VM left out of this cycle (resize or migration in flight, back-off...) keeps its
        # cooldown and policy state: dropping it made it look new (shrunk again at once).
        new_history = new_history.carried_over(self.history, (v.vm_id for v in read.vms))
        load = lend.managed_load(obs)
        self.lend_tracker.observe(now_s, load.vm_host, load.vm_used_kib, load.hosts)
        # Write-ahead: the state this plan was made from (and the moves it starts, as in
        # flight), before acting on it. A crash before a migrate reaches oned shows up next
        # cycle as "back RUNNING on the source": failed, planned again later.
        self.store.save_cycle(new_history, obs.marks, new_mig_state)
        # the cooldown clocks from before this plan: a planned resize counts only once oned
        # shows it done (reconcile_inflight), so a successor never freezes a VM for nothing
        self._publish_handover(now_s, self.history, new_mig_state, plan)
        self.migration_state = new_mig_state
        self._previous_history = self.history
        self.history, self.marks = new_history, dict(obs.marks)
        written_reserved: Dict[int, str] = {}
        planned = {a.vm_id: to_mib(a.to_kib) for a in plan.actions
                   if isinstance(a, Resize) and a.is_grow}
        self._lend(obs, planned, True, written_reserved)   # lower before any grow
        if self.quotas is not None:   # before any resize: held quota follows the plan
            self.quotas.hold(quota.held_mib(obs.statuses, obs.raw_vms, {
                a.vm_id: to_mib(a.to_kib) for a in plan.actions if isinstance(a, Resize)}))
        previous = self._last_change_of(plan)
        try:
            result = self.applier.apply(plan, deadline_s=started + APPLY_SHARE * period_s)
        except (Unreachable, AuthFailed):
            # A resize whose reply was lost may have happened: keep its VM's cooldown.
            self._forget_unapplied(previous, set(self.store.load_inflight()), now_s)
            raise
        t3 = time.perf_counter()
        # Cooldown only for what was resized, or may have been (a reply lost mid-call).
        unknown = {v for v, rec in self.store.load_inflight().items() if rec.status == "pending"}
        self._forget_unapplied(previous, {a.vm_id for a in result.applied} | unknown, now_s)
        self._forget_refused_moves(result, now_s)
        notes = dict(new_mig_state.notes) if self.migrations_enabled else {}
        for need in plan.needs_room + tuple(result.needs_room):
            why = notes.get(need.host_id)
            if why is None:
                why = ("migrations off ([migration] enabled = no)" if not
                       self.migrations_enabled else "no migration planned from this host "
                       "(cooldown, or moves in flight still to free room)")
            LOG.info("vm=%d host=%d needs_room missing_kib=%d urgent=%s reason=%s; %s",
                     need.vm_id, need.host_id, need.missing_kib, need.urgent, need.reason, why)
        applied = {a.vm_id: to_mib(a.to_kib) for a in result.applied}
        self._lend(obs, applied, False, written_reserved)  # raise after shrinks
        report.updates = self._write_show(obs, result, now_s, t0)
        self._publish_handover(now_s, self.history, self.migration_state)
        t4 = time.perf_counter()
        report.result = result
        report.timings_s.update(apply_s=t3 - t2, show_s=t4 - t3, total_s=t4 - t0)
        self.cycles += 1
        managed = sum(1 for s in obs.statuses if s.managed)
        LOG.info("cycle %d: %.3f s (read %.3f, decide %.3f, apply %.3f, show %.3f) vms=%d "
                 "managed=%d planned=%d issued=%d confirmed=%d rolled_back=%d skipped=%d "
                 "failed=%d deferred=%d needs_room=%d updates=%d migrations=%d in_flight=%d",
                 self.cycles,
                 report.timings_s["total_s"],
                 report.timings_s["read_s"], report.timings_s["decide_s"],
                 report.timings_s["apply_s"], report.timings_s["show_s"], len(obs.statuses),
                 managed, len(plan.actions), len(result.applied),
                 sum(1 for _, o in self._settled if o == "confirmed"),
                 sum(1 for _, o in self._settled if o != "confirmed"), len(result.skipped),
                 len(result.failed), len(result.deferred),
                 len(plan.needs_room) + len(result.needs_room), report.updates,
                 sum(1 for o in result.migrations if o.status == "issued"),
                 len(self.migration_state.in_flight))
        return report

    # ------------------------------------------------------- HA, OneDRS, observers
    def _may_act(self) -> bool:
        """Ask the Raft state; on becoming the acting node, take over first."""
        role = self.leader.check()
        self._notify("role_changed", role.name, role.acting)
        if role.took_over:
            try:
                self.take_over()
            except Exception:
                self.leader.role = None   # take over again before the next cycle
                raise
        return role.acting

    def take_over(self) -> None:
        """Merge what the previous leader left in oned into the local state DB."""
        if self.handover is None:
            return
        record = self.handover.load()
        if record is None:
            LOG.info("no handover record in oned: starting from the local state DB")
            return
        written = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.get("saved_at_s", 0)))
        if record.get("writer") and record["writer"] == self._writer_id():
            # a restart, not a failover: the local state DB holds all of it, and newer
            LOG.info("the handover record in oned (of %s) is this node's own: starting from "
                     "the local state DB", written)
            return
        sizes = merge_sizes(self.sizes, record)
        self.sizes.update(sizes)
        self.store.save_sizes(sizes)
        self.history = merge_history(self.history, record.get("cooldown_s", {}),
                                     self.decider.initial_history)
        self.migration_state = merge_migrations(self.migration_state, record)
        added = merge_inflight(self.store, record)
        self.store.save_cycle(self.history, self.marks, self.migration_state)
        LOG.info("took over from the handover record of %s: %d cooldown(s), %d size(s), "
                 "%d resize(s) and %d migration(s) in flight", written,
                 len(record.get("cooldown_s", {})), len(sizes), added,
                 len(record.get("migrations_in_flight", [])))

    def _writer_id(self) -> str:
        """This state DB's name in the handover records it writes (made once, kept)."""
        if self._writer is None:
            self._writer = self.store.meta("writer_id")
            if not self._writer and not getattr(self.store, "readonly", False):
                self._writer = uuid.uuid4().hex
                self.store.set_meta("writer_id", self._writer)
        return self._writer

    def _publish_handover(self, now_s, history, mig_state, plan: Optional[Plan] = None):
        if self.handover is None:
            return
        planned = [a for a in plan.actions if isinstance(a, Resize)] if plan else ()
        record = build_record(now_s, history, self.store.load_inflight().values(),
                              mig_state, planned, sizes=self.sizes, writer=self._writer_id())
        try:
            self.handover.save(record)
        except OneCallFailed as error:
            LOG.warning("cannot write the handover record to oned: %s", error.message)

    def _drs_moving(self, read: CloudRead) -> frozenset:
        """VMs in a OneDRS plan that is waiting or applying: never resized or moved."""
        reader = getattr(self.cloud, "drs_plan_vm_ids", None)
        if reader is None:
            return frozenset()
        clusters = sorted({h.cluster_id for h in read.hosts if h.cluster_id is not None})
        try:
            return reader(clusters)
        except (OneCallFailed, AdapterError) as error:
            if not self._drs_warned:
                LOG.warning("cannot read OneDRS plans (one.cluster.info): %s", error)
                self._drs_warned = True
            return frozenset()

    def _notify(self, event: str, *args) -> None:
        for observer in self.observers:
            try:
                getattr(observer, event)(*args)
            except Exception:  # a broken observer must not stop the service
                LOG.exception("observer %r failed on %s", observer, event)

    # --------------------------------------------------------------------- loop
    def run(self, stop: Optional[threading.Event] = None, max_cycles: Optional[int] = None,
            ) -> None:
        stop = stop or threading.Event()
        period = self.params.period_s
        backoff = 0.0
        done = 0
        mig = self.migration_config.params
        LOG.info("cvem running: policy=%s period=%.1f s dry_run=%s oned=%s state_db=%s "
                 "migrations=%s", self.params.policy, period, self.params.dry_run,
                 getattr(self.cloud, "endpoint", "?"), self.store.path,
                 f"on (detector {mig.detector}, selection {mig.selection})"
                 if self.migrations_enabled else "off")
        if self.migration_state.in_flight:
            LOG.info("%d live migration(s) in flight from before the restart: %s",
                     len(self.migration_state.in_flight),
                     ", ".join(f"vm={m.vm_id} {m.from_host_id}->{m.to_host_id}"
                               for m in self.migration_state.in_flight))
        while not stop.is_set() and (max_cycles is None or done < max_cycles):
            started = time.monotonic()
            self.last_error = None
            try:
                if self._may_act():
                    report = self.cycle()
                    self._notify("cycle_done", report, len(self.migration_state.in_flight))
                if self._failing:
                    LOG.info("oned reachable again after: %s", self._failing)
                self._failing, backoff = None, 0.0
            except (Unreachable, AuthFailed) as error:
                self.last_error = str(error)
                backoff = min(max(backoff * 2, period), self.params.backoff_max_s)
                level = logging.ERROR if isinstance(error, AuthFailed) else logging.WARNING
                if self._failing != str(error):
                    LOG.log(level, "cycle aborted: %s; retrying with back-off (now %.0f s)",
                            error, backoff)
                self._failing = str(error)
                self._notify("cycle_failed", "authentication" if isinstance(error, AuthFailed)
                             else "unreachable", str(error))
            except CloudvampError as error:
                self.last_error = str(error)
                LOG.warning("cycle aborted: %s", error)
                self._notify("cycle_failed", "adapter", str(error))
            except Exception as error:  # one bad cycle must not kill the service
                self.last_error = f"cycle failed: {type(error).__name__}: {error}"
                LOG.exception("cycle failed")
                self._notify("cycle_failed", "internal", str(error))
            done += 1
            if max_cycles is not None and done >= max_cycles:
                break
            wait = backoff or max(period - (time.monotonic() - started), 0.0)
            stop.wait(wait)
        LOG.info("cvem stopped after %d cycle(s)", done)
