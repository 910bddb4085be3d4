"""Execute a :class:`~cvem.core.model.Plan` against oned, re-checking before each action.

Order is the planner's (phase 0 grows, shrinks, phase 2 grows). For every resize:

1. rate limit (``max_actions_per_cycle``, ``max_actions_per_s``, and the cycle's time for
   resizes, so that a cycle keeps to its period); what is left waits for the next cycle (it
   will be planned again from fresh figures);
2. a fresh read of the VM (``vmpool.infoextended`` of its ID alone: one history record,
   not ``one.vm.info``'s every record): skip (:class:`~cvem.errors.ActionSkipped`) if the VM left RUNNING,
   moved host or its MEMORY is no longer what was planned from;
3. record the action as in flight (state DB), then ``one.vm.resize(id, "MEMORY=<MiB>",
   enforce)`` with ``enforce`` on grows; one INFO line per action;
4. oned's refusals, as recorded from a real oned 7.4: ``Cannot resize a VM in state
   HOTPLUG_RESIZE`` (busy: retried next cycle), ``Not enough memory`` (the grow becomes a
   :class:`~cvem.core.model.NeedsRoom`), ``UNKNOWN`` or another state, missing VM,
   driver without live resize: logged with oned's message, nothing else changes; an
   authentication failure or an unreachable oned stops the cycle (the service backs off).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from ..config import ServiceParams
from ..core.model import KIB_PER_MIB, Migrate, NeedsRoom, Plan, Resize
from ..errors import ActionSkipped, CloudvampError
from ..ports import AuthFailed, Cloud, OneCallFailed, Unreachable
from .migrations import MigrationOutcome, execute_migration, fresh_vm
from .state import InFlight, StateStore

LOG = logging.getLogger(__name__)

URGENT_REASONS = ("pressure", "floor", "no-report")


@dataclass
class ApplyResult:
    applied: List[Resize] = field(default_factory=list)
    skipped: List[Tuple[Resize, str]] = field(default_factory=list)
    failed: List[Tuple[Resize, str]] = field(default_factory=list)
    deferred: List[Resize] = field(default_factory=list)
    needs_room: List[NeedsRoom] = field(default_factory=list)
    migrations: list = field(default_factory=list)  # migrations.MigrationOutcome
    aborted: Optional[str] = None
    oned_error_kinds: List[str] = field(default_factory=list)  # OneCallFailed.kind, in order


class Throttle:
    """At most ``per_s`` calls per second (a minimum spacing between calls)."""

    def __init__(self, per_s: float, clock=time.monotonic, sleep=time.sleep):
        self.spacing_s = 1.0 / per_s if per_s > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self._last = None

    def wait(self):
        if self._last is not None and self.spacing_s:
            delay = self._last + self.spacing_s - self.clock()
            if delay > 0:
                self.sleep(delay)
        self._last = self.clock()


def to_mib(kib: int) -> int:
    return -(-int(kib) // KIB_PER_MIB)


class Applier:
    def __init__(self, cloud: Cloud, store: StateStore, params: ServiceParams,
                 clock: Callable[[], float] = time.time, throttle: Optional[Throttle] = None):
        self.cloud, self.store, self.params, self.clock = cloud, store, params, clock
        self.throttle = throttle or Throttle(params.max_actions_per_s)

    def check(self, action: Resize) -> None:
        """Raise ActionSkipped unless the VM is still as the plan saw it."""
        try:
            vm = fresh_vm(self.cloud, action.vm_id)
        except OneCallFailed as error:
            if error.kind == "missing":
                raise ActionSkipped(f"VM gone: {error.message}") from None
            raise
        if vm.state != 3 or vm.lcm_state != 3:
            raise ActionSkipped(f"VM now in state {vm.state}/LCM {vm.lcm_state}")
        if vm.host_id != action.host_id:
            raise ActionSkipped(f"VM moved from host {action.host_id} to {vm.host_id}")
        if vm.memory_mib is None or vm.memory_mib * KIB_PER_MIB != action.from_kib:
            raise ActionSkipped(f"MEMORY is now {vm.memory_mib} MiB, planned from "
                                f"{action.from_kib // KIB_PER_MIB} MiB")

    def apply(self, plan: Plan, deadline_s: Optional[float] = None) -> ApplyResult:
        """Act on ``plan`` in order. Past ``deadline_s`` (``time.monotonic()``) no further
        resize starts (the first always does): the rest waits for the next cycle."""
        result = ApplyResult()
        done = 0
        late = 0
        for action in plan.actions:
            if isinstance(action, Migrate):
                # Overload protection's moves (phase 3, after every resize): started here,
                # tracked by cvem.core.migration.settle (cvem/service/migrations.py).
                result.migrations.append(self._migrate_one(action))
                continue
            if not isinstance(action, Resize):
                LOG.debug("no executor for %r", action)
                continue
            if done >= self.params.max_actions_per_cycle:
                result.deferred.append(action)
                continue
            if done and deadline_s is not None and time.monotonic() > deadline_s:
                result.deferred.append(action)
                late += 1
                continue
            done += 1
            try:
                self._apply_one(action, result)
            except (AuthFailed, Unreachable) as error:
                result.aborted = str(error)
                index = plan.actions.index(action)
                result.deferred.extend(a for a in plan.actions[index + 1:]
                                       if isinstance(a, Resize))
                raise
            except (CloudvampError, ValueError) as error:
                # One VM's odd reply (garbled XML, an unexpected fault) is that VM's
                # failure; the rest of the plan still runs. A resize whose outcome is thus
                # unknown keeps its "pending" in-flight record: the next cycle reconciles it.
                LOG.warning("vm=%d host=%d action=%s failed: %s", action.vm_id,
                            action.host_id, action.action, error)
                result.failed.append((action, str(error)))
        if result.deferred:
            LOG.info("rate limit: %d action(s) left for the next cycle%s", len(result.deferred),
                     f" ({late} at the end of the cycle's time for resizes)" if late else "")
        return result

    def _migrate_one(self, action: Migrate) -> MigrationOutcome:
        try:
            return execute_migration(self.cloud, action)
        except (AuthFailed, Unreachable):
            raise
        except (CloudvampError, ValueError) as error:   # that VM's failure only
            LOG.warning("vm=%d host=%d action=migrate to_host=%d failed: %s", action.vm_id,
                        action.from_host_id, action.to_host_id, error)
            return MigrationOutcome(action, "failed", str(error))

    def _apply_one(self, action: Resize, result: ApplyResult) -> None:
        try:
            self.check(action)
        except ActionSkipped as skip:
            LOG.info("vm=%d host=%d action=%s skipped: %s", action.vm_id, action.host_id,
                     action.action, skip)
            result.skipped.append((action, str(skip)))
            return
        self.throttle.wait()
        self.store.record_inflight(InFlight(
            action.vm_id, action.host_id, action.action, action.from_kib, action.to_kib,
            action.reason, "pending", self.clock()))
        try:
            self.cloud.resize_memory(action.vm_id, to_mib(action.to_kib), action.is_grow)
        except Unreachable:
            # Outcome unknown: keep the in-flight record, the next cycle reconciles it.
            LOG.warning("vm=%d host=%d action=%s outcome unknown, oned unreachable",
                        action.vm_id, action.host_id, action.action)
            raise
        except AuthFailed:
            self.store.drop_inflight(action.vm_id)  # refused before anything happened
            raise
        except OneCallFailed as error:
            self.store.drop_inflight(action.vm_id)
            self._refused(action, error, result)
            return
        self.store.set_inflight_status(action.vm_id, "issued")
        LOG.info("vm=%d host=%d action=%s from_kib=%d to_kib=%d reason=%s", action.vm_id,
                 action.host_id, action.action, action.from_kib, action.to_kib, action.reason)
        result.applied.append(action)

    def _refused(self, action: Resize, error: OneCallFailed, result: ApplyResult) -> None:
        where = f"vm={action.vm_id} host={action.host_id} action={action.action}"
        result.oned_error_kinds.append(error.kind)
        if error.kind == "busy":
            LOG.info("%s not now, retried next cycle: %s", where, error.message)
            result.skipped.append((action, error.message))
        elif error.kind == "no_room" and action.is_grow:
            LOG.warning("%s refused for lack of room, needs room: %s", where, error.message)
            result.needs_room.append(NeedsRoom(
                vm_id=action.vm_id, host_id=action.host_id,
                missing_kib=action.to_kib - action.from_kib,
                urgent=action.reason in URGENT_REASONS,
                reason=f"oned refused the grow: {error.message}"))
        elif error.kind == "missing":
            LOG.info("%s skipped, VM gone: %s", where, error.message)
            result.skipped.append((action, error.message))
        else:
            LOG.warning("%s failed (%s, code %d): %s", where, error.kind, error.code,
                        error.message)
            result.failed.append((action, error.message))
