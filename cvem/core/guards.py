"""Shared guards: run after every policy, whatever it returned.

They hold the promises cloudvamp makes to every guest:

* never below what the guest uses plus a floor, never above the nominal size (MEMORY_MAX);
* a guest under pressure (swapping in, stalled on memory, short last period) grows at once;
* a VM without a valid fresh report is never shrunk: it grows back to its nominal size;
* a report the host probe no longer agrees with may grow its VM, never shrink it;
* shrinking is gradual (a bounded fraction per cycle) and waits for a cooldown after any
  change; growing never waits;
* changes smaller than a minimum step are skipped, unless the guest is below its floor.

Targets are rounded up to whole MiB because ``one.vm.resize`` takes MEMORY in MiB.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .fleet import FleetObs

MIB = 1024

REASONS = ("hold", "policy", "floor", "pressure", "no-report", "ceiling", "min-step",
           "cooldown", "gradual-shrink", "stale-report")
R_HOLD, R_POLICY, R_FLOOR, R_PRESSURE, R_NO_REPORT, R_CEILING, R_MIN_STEP, R_COOLDOWN, \
    R_GRADUAL, R_STALE = range(len(REASONS))


@dataclass(frozen=True)
class GuardParams:
    floor_kib: int = field(default=64 * MIB, metadata={
        "min": 0, "help": "headroom always left above guest used memory"})
    floor_ratio: float = field(default=0.0, metadata={
        "min": 0.0, "max": 1.0, "help": "extra headroom as a fraction of guest used"})
    min_size_kib: int = field(default=256 * MIB, metadata={
        "min": 0, "help": "never size a VM below this"})
    min_step_kib: int = field(default=32 * MIB, metadata={
        "min": 0, "help": "skip changes smaller than this (no resize churn)"})
    min_step_ratio: float = field(default=0.02, metadata={
        "min": 0.0, "max": 1.0, "help": "... or smaller than this fraction of nominal"})
    cooldown_s: float = field(default=60.0, metadata={
        "min": 0.0, "help": "no shrink sooner than this after any change of the VM"})
    max_shrink_ratio: float = field(default=0.25, metadata={
        "min": 0.0, "max": 1.0, "help": "largest shrink per cycle, fraction of allocation"})
    pressure_grow_ratio: float = field(default=0.10, metadata={
        "min": 0.0, "max": 1.0,
        "help": "a pressured guest grows by at least this fraction of nominal"})

    def validate(self) -> None:
        if self.min_size_kib < 0 or self.floor_kib < 0:
            raise ConfigError("guard sizes must not be negative")


# History column holding when each VM's allocation last changed (cooldown clock). The
# service resets it for planned changes that were never carried out.
LAST_CHANGE_COLUMN = "guard.last_change_s"


def guard_initial_state():
    return {LAST_CHANGE_COLUMN: np.full(1, -np.inf)}


def apply_guards(obs: FleetObs, proposed_kib: np.ndarray, last_change_s: np.ndarray,
                 params: GuardParams):
    """Return (target_kib int64, reason codes int8) for every VM."""
    alloc = obs.allocated_kib.astype(np.float64)
    nominal = obs.nominal_kib.astype(np.float64)
    known = obs.report_ok & np.isfinite(obs.used_kib)
    need = np.where(known, obs.used_kib + obs.deficit_kib, 0.0)
    target = np.asarray(proposed_kib, dtype=np.float64).copy()
    target = np.where(np.isfinite(target), target, nominal)
    reason = np.full(obs.size, R_POLICY, dtype=np.int8)

    # A VM we know nothing about goes back to its nominal size.
    target = np.where(known, target, nominal)
    reason[~known] = R_NO_REPORT

    floor = np.maximum(need * (1.0 + params.floor_ratio) + params.floor_kib,
                       float(params.min_size_kib))
    floor = np.where(known, floor, nominal)
    raised = target < floor
    target = np.where(raised, floor, target)
    reason[raised & known] = R_FLOOR

    pressured = obs.pressure & known
    if pressured.any():
        # At least one MiB, so a pressured guest grows even with pressure_grow_ratio = 0.
        at_least = alloc + np.maximum(np.maximum(obs.deficit_kib,
                                                 params.pressure_grow_ratio * nominal), MIB)
        bump = pressured & (target < at_least)
        target = np.where(bump, at_least, target)
        reason[pressured] = R_PRESSURE

    over = target > nominal
    target = np.where(over, nominal, target)
    reason[over & (reason == R_POLICY)] = R_CEILING
    floor = np.minimum(floor, nominal)

    shrink = target < alloc
    if params.max_shrink_ratio < 1.0:
        slowest = np.maximum(alloc * (1.0 - params.max_shrink_ratio), floor)
        slowed = shrink & (target < slowest)
        target = np.where(slowed, slowest, target)
        reason[slowed] = R_GRADUAL

    step = np.maximum(float(params.min_step_kib), params.min_step_ratio * nominal)
    below_floor = alloc < floor
    small = (np.abs(target - alloc) < step) & ~below_floor & ~pressured
    # Reaching the ceiling or going back to nominal is never "too small" to do.
    small &= ~((target == nominal) & (alloc < nominal) & (~known))
    reason[small & (target != alloc)] = R_MIN_STEP
    target = np.where(small, alloc, target)

    if obs.shrink_ok is not None:   # an unchanged report the probe disagrees with
        stale = (target < alloc) & ~obs.shrink_ok
        target = np.where(stale, alloc, target)
        reason[stale] = R_STALE

    cooling = (target < alloc) & ((obs.now_s - last_change_s) < params.cooldown_s)
    target = np.where(cooling, alloc, target)
    reason[cooling] = R_COOLDOWN

    # Whole MiB, rounded up so rounding never cuts into the floor; never above nominal.
    # A hold or a shrink stays one: rounding an unaligned allocation up must not turn it into
    # a sub-MiB grow (resize churn that the minimum step was meant to prevent).
    rounded = np.minimum(np.ceil(target / MIB) * MIB, nominal)
    rounded = np.where(target <= alloc, np.minimum(rounded, alloc), rounded)
    target_kib = rounded.astype(np.int64)
    unchanged = target_kib == obs.allocated_kib
    reason[unchanged & (reason == R_POLICY)] = R_HOLD
    return target_kib, reason
