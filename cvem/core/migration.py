"""Overload protection: choose live migrations that give an overloaded host its memory back.

Each cycle, after the planner (:mod:`cvem.core.planner`) has granted every grow that fits:

1. **Detect** (:mod:`cvem.core.overload`): a host owes grows (Σ ``missing_kib`` > 0) or its
   detector forecasts demand above its limit. What it must *shed* is the larger of the two,
   minus what VMs already leaving it will free (in-flight migrations are counted once: the
   original fired several migrations from one host on the same stale figures, B7).
2. **Select** VMs on that host, by a pluggable rule:
   ``least-memory`` (Neat MMT: the smallest VM first, cheapest to move) or
   ``fewest`` (fewest migrations that clear the overload: the smallest VM that clears it alone,
   else the largest first). Unlike the original (B5) the selection continues until the
   moves clear the overload. VMs that are growing this cycle come last: moving a starving
   guest freezes it (oned refuses a resize in MIGRATE) and it waits longer. A VM resized
   this cycle is not moved in it (oned refuses a migrate in HOTPLUG_RESIZE).
3. **Place** each selected VM on a host of the same cluster, never the source, with physical
   room for the VM (and for the grow it still owes) and oned room for its current MEMORY
   (``one.vm.migrate(..., enforce=True)`` tests the VM's template MEMORY = its allocation).
   Hosts that stay below their own detector limit after the move are preferred, then the one
   with most physical room left (spreading load is what prevents the target from becoming
   the next source: ping-pong). Each accepted move is charged to the target before the next
   choice.
4. **Rules that hold whatever the selection**: a per-host cooldown after a migration from or
   to it; no VM moved twice within ``vm_min_interval_s`` (1 h) unless that guest is starving
   now; a VM already migrating is never selected again.

Migrations are asynchronous: each accepted move becomes an :class:`InFlight` record that
:func:`settle` clears once the VM is seen running on its target (or drops after a timeout).
While it is in flight the source stays charged, the target is charged too, and the VM is not
resized. Grows that wait for room are granted by the planner as soon as the room exists;
partial grows are granted at once (a partial grow now beats none).

**Consolidation** (off by default): drain one underloaded host per cycle when every VM on it
fits elsewhere below the targets' limits (Neat's underload step).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Tuple

import numpy as np

from ..errors import ConfigError
from .fleet import FleetObs, HostColumns
from .model import KIB_PER_GIB
from .overload import Detector, HostLoad, detect, load_detector
from .params import build_params
from .planner import PHASE_GROW_AFTER_SHRINK, PHASE_GROW_NOW, PHASE_NONE, PlanColumns

SELECTIONS = ("least-memory", "fewest")
MIGRATION_REASONS = ("owed-grow", "forecast", "consolidate")
R_OWED, R_FORECAST, R_CONSOLIDATE = range(len(MIGRATION_REASONS))


@dataclass(frozen=True)
class MigrationParams:
    detector: str = field(default="threshold", metadata={
        "help": "overload detector: threshold, mad, iqr, local-regression"})
    selection: str = field(default="least-memory", metadata={
        "help": "VM selection: least-memory (Neat MMT) or fewest"})
    bandwidth_kib_s: float = field(default=float(KIB_PER_GIB), metadata={
        "min": 1.0, "help": "migration bandwidth: duration = memory ÷ bandwidth "
                            "(1 GiB/s; Neat's worst case is 10 MB/s)"})
    host_cooldown_s: float = field(default=60.0, metadata={
        "min": 0.0, "help": "no new migration from a host this soon after one from or to it"})
    vm_min_interval_s: float = field(default=3600.0, metadata={
        "min": 0.0, "help": "no VM moved twice within this, unless its guest is starving"})
    max_per_host: int = field(default=8, metadata={
        "min": 1, "help": "migrations started from one host per cycle"})
    max_per_cycle: int = field(default=0, metadata={
        "min": 0, "help": "migrations started per cycle over all hosts; 0 = no limit"})
    history_samples: int = field(default=100, metadata={
        "min": 2, "max": 10000, "help": "host demand samples kept for the detectors (Neat 100)"})
    timeout_s: float = field(default=1800.0, metadata={
        "min": 1.0, "help": "an in-flight migration not seen done after this is dropped"})
    consolidate: bool = field(default=False, metadata={
        "help": "drain an underloaded host when all its VMs fit elsewhere"})
    underload_ratio: float = field(default=0.3, metadata={
        "min": 0.0, "max": 1.0, "help": "a host below this share of usable memory is underloaded"})

    def validate(self) -> None:
        if self.selection not in SELECTIONS:
            raise ConfigError(f"[migration] selection={self.selection!r}; choose from "
                              f"{', '.join(SELECTIONS)}")


@dataclass(frozen=True)
class MigrationConfig:
    params: MigrationParams
    detector: Detector


def load_migration_config(values: Optional[Mapping[str, Any]] = None,
                          detector_values: Optional[Mapping[str, Any]] = None) -> MigrationConfig:
    params = build_params(MigrationParams, values or {}, "migration")
    return MigrationConfig(params=params, detector=load_detector(params.detector, detector_values))


@dataclass(frozen=True)
class InFlight:
    """A migration oned accepted and that has not been seen finished yet."""

    vm_id: int
    from_host_id: int
    to_host_id: int
    size_kib: int
    started_s: float
    reason: str


@dataclass(frozen=True)
class MigrationState:
    """What overload protection remembers between cycles (returned, never mutated)."""

    host_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    demand_kib: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [host, sample]
    times_s: np.ndarray = field(default_factory=lambda: np.zeros(0))          # [sample]
    host_last_s: np.ndarray = field(default_factory=lambda: np.zeros(0))      # [host]
    moved_vm_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    moved_at_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    in_flight: Tuple[InFlight, ...] = ()

    def in_flight_vm_ids(self) -> np.ndarray:
        return np.array([m.vm_id for m in self.in_flight], dtype=np.int64)


@dataclass(frozen=True)
class MigrationColumns:
    """Migrations chosen this cycle, in execution order."""

    vm_index: np.ndarray       # int64 index into the VM columns
    to_host_index: np.ndarray  # int64 index into the host columns
    size_kib: np.ndarray       # int64 memory moved (the VM's allocation after this cycle)
    reason: np.ndarray         # int8 index into MIGRATION_REASONS

    @property
    def size(self) -> int:
        return int(self.vm_index.shape[0])


NO_MIGRATIONS = MigrationColumns(np.zeros(0, np.int64), np.zeros(0, np.int64),
                                 np.zeros(0, np.int64), np.zeros(0, np.int8))


# ------------------------------------------------------------------------- state upkeep

def _aligned(state: MigrationState, host_ids: np.ndarray, samples: int) -> MigrationState:
    """State re-indexed to ``host_ids``: a new host starts with no history and no cooldown."""
    if state.host_ids.shape == host_ids.shape and np.array_equal(state.host_ids, host_ids) \
            and state.demand_kib.shape[1:] == (samples,):
        return state
    demand = np.full((host_ids.size, samples), np.nan)
    last = np.full(host_ids.size, -np.inf)
    times = np.full(samples, np.nan)
    k = min(samples, state.times_s.size)
    if k:
        times[-k:] = state.times_s[-k:]
    pos = {int(h): i for i, h in enumerate(state.host_ids)}
    for j, h in enumerate(host_ids):
        i = pos.get(int(h))
        if i is not None:
            if k:
                demand[j, -k:] = state.demand_kib[i, -k:]
            last[j] = state.host_last_s[i]
    return replace(state, host_ids=np.array(host_ids, dtype=np.int64), demand_kib=demand,
                   times_s=times, host_last_s=last)


def record_demand(state: MigrationState, host_ids: np.ndarray, host_demand_kib: np.ndarray,
                  now_s: float, samples: int) -> MigrationState:
    """Append one demand sample per host (oldest dropped)."""
    state = _aligned(state, host_ids, samples)
    demand = np.empty_like(state.demand_kib)
    demand[:, :-1] = state.demand_kib[:, 1:]
    demand[:, -1] = host_demand_kib
    times = np.empty_like(state.times_s)
    times[:-1] = state.times_s[1:]
    times[-1] = now_s
    return replace(state, demand_kib=demand, times_s=times)


def host_demand_kib(obs: FleetObs, n_hosts: int, extra_kib: Optional[np.ndarray] = None) -> np.ndarray:
    """Σ guest need per host; NaN for a host with a guest whose need is unknown.

    Unknown is not "as much as it holds": counting a silent guest at its allocation would
    make every host look overloaded after a restart of cvem (every report missing) and start
    a migration storm. Such a host is judged on the grows it owes only, until all report.
    """
    need = obs.need_kib()
    known = np.isfinite(need)
    # astype: bincount of an empty fleet is int64, which cannot hold the NaN below.
    out = np.bincount(obs.host_index, weights=np.where(known, need, 0.0),
                      minlength=n_hosts).astype(float)
    unknown = np.bincount(obs.host_index, weights=~known, minlength=n_hosts) > 0
    out[unknown] = np.nan
    if extra_kib is not None:
        out = out + extra_kib
    return out


def settle(state: MigrationState, vm_ids: np.ndarray, vm_host_ids: np.ndarray, now_s: float,
           timeout_s: float, running: Optional[np.ndarray] = None):
    """Clear migrations seen finished: (new state, done records, dropped records).

    A migration is done when its VM is seen on the target host (and ``running``, when the
    caller knows the VM's LCM state); it is dropped when the VM is gone, back on the source
    after oned gave up, or not done after ``timeout_s``.
    """
    if not state.in_flight:
        return state, (), ()
    where = {int(v): i for i, v in enumerate(vm_ids)}
    keep, done, dropped = [], [], []
    for m in state.in_flight:
        i = where.get(m.vm_id)
        if i is None:
            dropped.append(m)
            continue
        on_target = int(vm_host_ids[i]) == m.to_host_id
        is_running = True if running is None else bool(running[i])
        if on_target and is_running:
            done.append(m)
        elif now_s - m.started_s > timeout_s:
            dropped.append(m)
        else:
            keep.append(m)
    return replace(state, in_flight=tuple(keep)), tuple(done), tuple(dropped)


# ----------------------------------------------------------------------------- planning

def _usable(hosts: HostColumns) -> np.ndarray:
    return (hosts.usable_kib if hosts.usable_kib is not None else hosts.capacity_kib).astype(np.float64)


def _cluster(hosts: HostColumns) -> np.ndarray:
    return hosts.cluster_id if hosts.cluster_id is not None else np.zeros(hosts.size, np.int64)


def _selection_order(cand: np.ndarray, size: np.ndarray, grower: np.ndarray, shed_kib: float,
                     rule: str) -> np.ndarray:
    """Candidates in the order the rule tries them; growers always last."""
    calm = cand[~grower[cand]]
    late = cand[grower[cand]]
    late = late[np.argsort(size[late], kind="stable")]
    if rule == "least-memory":
        calm = calm[np.argsort(size[calm], kind="stable")]
    else:  # fewest: the smallest VM that clears it alone, else the largest first
        by_size = calm[np.argsort(size[calm], kind="stable")]
        enough = by_size[size[by_size] >= shed_kib]
        rest = calm[np.argsort(-size[calm], kind="stable")]
        if enough.size:
            rest = rest[rest != enough[0]]
            calm = np.r_[enough[0], rest].astype(np.int64)
        else:
            calm = rest
    return np.r_[calm, late].astype(np.int64)


def _choose_target(src: int, need_room_kib: float, oned_kib: float, add_demand_kib: float,
                   phys_room: np.ndarray, oned_room: np.ndarray, forecast: np.ndarray,
                   limit: np.ndarray, cluster: np.ndarray, usable: np.ndarray,
                   excluded: np.ndarray) -> int:
    """The host to move a VM to, or -1. Never ``src``."""
    ok = (phys_room >= need_room_kib) & (oned_room >= oned_kib) & (cluster == cluster[src]) \
        & (usable > 0) & ~excluded
    ok[src] = False
    if not ok.any():
        return -1
    below = (forecast + add_demand_kib) <= limit
    room_after = phys_room - need_room_kib
    # lexsort: last key first — prefer below-limit, then most room, then lowest index.
    idx = np.flatnonzero(ok)
    order = np.lexsort((idx, -room_after[idx], ~below[idx]))
    return int(idx[order[0]])


def plan_migrations(obs: FleetObs, hosts: HostColumns, plan: PlanColumns, urgent: np.ndarray,
                    state: MigrationState, config: MigrationConfig,
                    extra_host_demand_kib: Optional[np.ndarray] = None):
    """(MigrationColumns, new state, HostLoad) for one cycle. Pure.

    ``extra_host_demand_kib`` [host]: demand the VM columns do not show on a host (in-flight
    VMs arriving there). The caller starts the moves after this cycle's resizes.
    """
    p = config.params
    now = obs.now_s
    n_host = hosts.size
    usable = _usable(hosts)
    demand_now = host_demand_kib(obs, n_host, extra_host_demand_kib)
    state = record_demand(state, hosts.host_ids, demand_now, now, p.history_samples)

    size = plan.granted_kib.astype(np.int64)   # what a VM will hold when it starts moving
    mean_size = np.bincount(obs.host_index, weights=size, minlength=n_host) / np.maximum(
        np.bincount(obs.host_index, minlength=n_host), 1)
    load = detect(config.detector, state.demand_kib, state.times_s, usable,
                  mean_size / p.bandwidth_kib_s)

    owed = np.bincount(obs.host_index, weights=plan.missing_kib, minlength=n_host)
    flying_ids = state.in_flight_vm_ids()
    leaving = np.zeros(n_host)
    host_pos = {int(h): i for i, h in enumerate(hosts.host_ids)}
    for m in state.in_flight:
        i = host_pos.get(m.from_host_id)
        if i is not None:
            leaving[i] += m.size_kib
    shed = np.maximum(owed, load.excess_kib) - leaving
    # The cooldown keeps a host from shedding again before the last moves show their effect;
    # a host whose guest still starves once nothing is leaving it may go on at once (waiting
    # out the cooldown would only make the guest wait).
    starving_host = np.bincount(obs.host_index, weights=(urgent & (plan.missing_kib > 0)),
                                minlength=n_host) > 0
    cooling = ((now - state.host_last_s) < p.host_cooldown_s) & ~(starving_host & (leaving == 0))
    flagged = np.flatnonzero((shed > 0) & ~cooling)
    if flagged.size == 0 and not p.consolidate:
        return NO_MIGRATIONS, state, load

    in_flight = np.isin(obs.vm_ids, flying_ids) if flying_ids.size else np.zeros(obs.size, bool)
    starving = urgent & (plan.missing_kib > 0)
    if state.moved_vm_ids.size:
        recent = state.moved_vm_ids[(now - state.moved_at_s) < p.vm_min_interval_s]
        moved_recently = np.isin(obs.vm_ids, recent)
    else:
        moved_recently = np.zeros(obs.size, bool)
    # A VM resized this cycle is not moved in the same cycle: oned refuses a migrate while
    # the resize runs (HOTPLUG_RESIZE), so the plan would fail half-way.
    movable = ~in_flight & (~moved_recently | starving) & (obs.nominal_kib > 0) \
        & (plan.phase == PHASE_NONE)
    grower = (plan.missing_kib > 0) | (plan.phase == PHASE_GROW_NOW) \
        | (plan.phase == PHASE_GROW_AFTER_SHRINK)
    vm_need = obs.need_kib()
    vm_need = np.where(np.isfinite(vm_need), vm_need, size.astype(np.float64))

    phys_room = hosts.physical_room_kib.astype(np.float64).copy()
    oned_room = (hosts.capacity_kib - hosts.allocated_kib).astype(np.float64)
    forecast = load.forecast_kib.astype(np.float64).copy()
    limit = load.limit_kib
    cluster = _cluster(hosts)
    sources = np.zeros(n_host, dtype=bool)
    sources[flagged] = True
    touched = np.zeros(n_host, dtype=bool)
    chosen_vm, chosen_to, chosen_reason = [], [], []

    # Most urgent host first: the one with the largest grows owed, then the largest excess.
    for h in flagged[np.lexsort((flagged, -load.excess_kib[flagged], -owed[flagged]))]:
        cand = np.flatnonzero((obs.host_index == h) & movable)
        if cand.size == 0:
            continue
        reason = R_OWED if owed[h] > 0 else R_FORECAST
        freed = 0.0
        count = 0
        for v in _selection_order(cand, size, grower, shed[h], p.selection):
            if freed >= shed[h] or count >= p.max_per_host \
                    or (p.max_per_cycle and len(chosen_vm) >= p.max_per_cycle):
                break
            # A grower moved for its own sake needs room for the grow it still owes.
            room_needed = float(size[v] + plan.missing_kib[v])
            t = _choose_target(h, room_needed, float(size[v]), float(vm_need[v]), phys_room,
                               oned_room, forecast, limit, cluster, usable, sources)
            if t < 0:
                continue
            chosen_vm.append(v)
            chosen_to.append(t)
            chosen_reason.append(reason)
            phys_room[t] -= room_needed
            oned_room[t] -= size[v]
            forecast[t] += vm_need[v]
            freed += size[v]
            count += 1
            touched[t] = touched[h] = True

    if p.consolidate and not chosen_vm:
        drained = _consolidate(obs, hosts, size, vm_need, movable, state, load, phys_room,
                               oned_room, forecast, limit, cluster, usable, cooling, p)
        if p.max_per_cycle:
            drained = drained[:p.max_per_cycle]
        for v, t in drained:
            chosen_vm.append(v)
            chosen_to.append(t)
            chosen_reason.append(R_CONSOLIDATE)
            touched[t] = touched[obs.host_index[v]] = True

    if not chosen_vm:
        return NO_MIGRATIONS, state, load
    cols = MigrationColumns(vm_index=np.array(chosen_vm, dtype=np.int64),
                            to_host_index=np.array(chosen_to, dtype=np.int64),
                            size_kib=size[np.array(chosen_vm, dtype=np.int64)],
                            reason=np.array(chosen_reason, dtype=np.int8))
    return cols, start_migrations(state, obs, hosts, cols, now, p.vm_min_interval_s), load


def _consolidate(obs, hosts, size, vm_need, movable, state, load, phys_room, oned_room,
                 forecast, limit, cluster, usable, cooling, p):
    """Moves that empty one underloaded host, or none if any of its VMs has nowhere to go."""
    n_host = hosts.size
    count = np.bincount(obs.host_index, minlength=n_host)
    held = np.bincount(obs.host_index, weights=size, minlength=n_host)
    busy_ids = {m.from_host_id for m in state.in_flight} | {m.to_host_id for m in state.in_flight}
    busy = np.isin(hosts.host_ids, np.array(sorted(busy_ids), dtype=np.int64))
    under = (count > 0) & (usable > 0) & (held < p.underload_ratio * usable) & ~cooling & ~busy
    # An emptied or underloaded host is never a consolidation target: we fill busy hosts.
    not_target = under | (count == 0)
    for h in np.flatnonzero(under)[np.argsort(held[under], kind="stable")]:
        vms = np.flatnonzero(obs.host_index == h)
        if not movable[vms].all():
            continue
        pr, orr, fc = phys_room.copy(), oned_room.copy(), forecast.copy()
        moves = []
        for v in vms[np.argsort(-size[vms], kind="stable")]:
            ok = (pr >= size[v]) & (orr >= size[v]) & (cluster == cluster[h]) & ~not_target \
                & ((fc + vm_need[v]) <= limit) & (usable > 0)
            ok[h] = False
            if not ok.any():
                moves = None
                break
            idx = np.flatnonzero(ok)
            t = int(idx[np.lexsort((idx, pr[idx]))[0]])  # best fit: the fullest host that fits
            moves.append((int(v), t))
            pr[t] -= size[v]
            orr[t] -= size[v]
            fc[t] += vm_need[v]
        if moves:
            return moves
    return []


def start_migrations(state: MigrationState, obs: FleetObs, hosts: HostColumns,
                     cols: MigrationColumns, now_s: float, window_s: float) -> MigrationState:
    """The state once ``cols`` are accepted: in-flight records, cooldowns, the move log."""
    vm_ids = obs.vm_ids[cols.vm_index]
    src = obs.host_index[cols.vm_index]
    flights = tuple(
        InFlight(vm_id=int(vm_ids[k]), from_host_id=int(hosts.host_ids[src[k]]),
                 to_host_id=int(hosts.host_ids[cols.to_host_index[k]]),
                 size_kib=int(cols.size_kib[k]), started_s=float(now_s),
                 reason=MIGRATION_REASONS[cols.reason[k]])
        for k in range(cols.size))
    last = state.host_last_s.copy()
    last[src] = now_s
    last[cols.to_host_index] = now_s
    keep = (now_s - state.moved_at_s) < window_s
    return replace(state, host_last_s=last, in_flight=state.in_flight + flights,
                   moved_vm_ids=np.r_[state.moved_vm_ids[keep], vm_ids].astype(np.int64),
                   moved_at_s=np.r_[state.moved_at_s[keep], np.full(cols.size, now_s)])


def drop_rejected(state: MigrationState, vm_id: int) -> MigrationState:
    """Forget an in-flight record oned refused (the applier calls this on a failed migrate)."""
    return replace(state, in_flight=tuple(m for m in state.in_flight if m.vm_id != vm_id))
