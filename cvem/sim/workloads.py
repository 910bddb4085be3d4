"""Workloads for the simulated cloud: a seeded generator with named scenarios, and a reader
for Bitbrains-format per-VM CSV traces.

A :class:`Workload` is per-VM demand (KiB) on a regular time grid plus each VM's nominal
(provisioned) size, which may change over time as it does in the real traces.
"""
from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np

from ..errors import ConfigError

MIB = 1024
GIB = 1024 * 1024


@dataclass(frozen=True)
class Workload:
    name: str
    step_s: float
    demand_kib: np.ndarray      # float32 [vm, step]: what each guest needs
    nominal_kib: np.ndarray     # float32 [vm, step]: provisioned size (MEMORY_MAX)
    vm_names: Sequence[str] = ()
    start_s: float = 0.0
    info: Dict[str, object] = field(default_factory=dict)
    # Scenario ground truth used by the reaction metric: (vm, step) where a surge starts.
    surge_starts: Optional[np.ndarray] = None

    @property
    def vms(self) -> int:
        return int(self.demand_kib.shape[0])

    @property
    def steps(self) -> int:
        return int(self.demand_kib.shape[1])

    def head(self, vms: Optional[int] = None, steps: Optional[int] = None) -> "Workload":
        v = slice(0, vms)
        s = slice(0, steps)
        surges = self.surge_starts
        if surges is not None:
            keep = np.ones(len(surges), dtype=bool)
            if vms is not None:
                keep &= surges[:, 0] < vms
            if steps is not None:
                keep &= surges[:, 1] < steps
            surges = surges[keep]
        info = dict(self.info)
        if "present_from_step" in info:
            info["present_from_step"] = np.asarray(info["present_from_step"])[v]
        return Workload(self.name, self.step_s, self.demand_kib[v, s], self.nominal_kib[v, s],
                        list(self.vm_names)[v], self.start_s, info, surges)

    def every(self, stride: int) -> "Workload":
        """Every ``stride``-th VM (a quick sub-sample for development runs)."""
        if stride <= 1:
            return self
        rows = np.arange(0, self.vms, stride)
        info = dict(self.info)
        if "present_from_step" in info:
            info["present_from_step"] = np.asarray(info["present_from_step"])[rows]
        surges = self.surge_starts
        if surges is not None and len(surges):
            keep = surges[:, 0] % stride == 0
            surges = np.column_stack([surges[keep, 0] // stride, surges[keep, 1]])
        names = list(self.vm_names)
        return Workload(f"{self.name}[every {stride}]", self.step_s, self.demand_kib[rows],
                        self.nominal_kib[rows], [names[i] for i in rows] if names else [],
                        self.start_s, info, surges)


# --------------------------------------------------------------------------- generator

SCENARIOS = ("mixed", "diurnal", "spiky", "leak", "step", "sync-surge", "cold-start")

_NOMINAL_CHOICES_GIB = np.array([2, 4, 4, 8, 8, 16], dtype=np.float64)


def _smooth_noise(rng, n_vm, n_steps, corr_steps):
    """AR(1) noise with roughly ``corr_steps`` correlation length, unit variance."""
    a = np.exp(-1.0 / max(corr_steps, 1.0))
    eps = rng.standard_normal((n_vm, n_steps)) * np.sqrt(1 - a * a)
    out = np.empty_like(eps)
    out[:, 0] = rng.standard_normal(n_vm)
    for t in range(1, n_steps):
        out[:, t] = a * out[:, t - 1] + eps[:, t]
    return out


def generate(scenario: str = "mixed", vms: int = 40, days: float = 2.0, step_s: float = 10.0,
             seed: int = 7, os_floor_kib: float = 512 * MIB) -> Workload:
    """A reproducible synthetic workload. Scenarios:

    * ``diurnal``: a daily cycle with noise (business hours peak);
    * ``spiky``: low base with short bursts (batch jobs, caches filling);
    * ``leak``: slow growth toward the nominal size, then a restart drops it;
    * ``step``: level shifts at random times (deployments, new data sets);
    * ``sync-surge``: steady guests, then 30 % of one host's VMs surge together;
    * ``cold-start``: VMs boot during the run (no history), then behave like ``mixed``;
    * ``mixed`` (default): a blend of the above, one behaviour per VM.
    """
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    if vms < 1 or days <= 0 or step_s <= 0:
        raise ConfigError("vms, days and step_s must be positive")
    rng = np.random.default_rng(seed)
    n = int(round(days * 86400 / step_s))
    if n < 2:
        raise ConfigError("the run must have at least two steps")
    t_s = np.arange(n) * step_s
    nominal_gib = rng.choice(_NOMINAL_CHOICES_GIB, size=vms)
    nominal = (nominal_gib * GIB)[:, None] * np.ones((1, n))
    base_frac = rng.uniform(0.12, 0.35, size=(vms, 1))
    surges = []

    def diurnal(rows):
        phase = rng.uniform(0, 2 * np.pi, size=(len(rows), 1))
        amp = rng.uniform(0.05, 0.25, size=(len(rows), 1))
        day = np.sin(2 * np.pi * t_s[None, :] / 86400.0 + phase)
        noise = _smooth_noise(rng, len(rows), n, 600 / step_s) * 0.02
        return base_frac[rows] + amp * np.maximum(day, 0) + noise

    def spiky(rows):
        out = base_frac[rows] + _smooth_noise(rng, len(rows), n, 300 / step_s) * 0.015
        for r in range(len(rows)):
            bursts = rng.poisson(days * 6)
            for _ in range(bursts):
                start = rng.integers(0, n)
                length = int(rng.uniform(120, 1800) / step_s) + 1
                height = rng.uniform(0.1, 0.4)
                out[r, start:start + length] += height
                surges.append((rows[r], start))
        return out

    def leak(rows):
        out = np.empty((len(rows), n))
        for r in range(len(rows)):
            period = rng.uniform(0.5, 2.0) * 86400 / step_s
            ramp = (np.arange(n) % period) / period
            out[r] = base_frac[rows[r]] + ramp * rng.uniform(0.3, 0.6)
        return out + _smooth_noise(rng, len(rows), n, 300 / step_s) * 0.01

    def step_shift(rows):
        out = np.repeat(base_frac[rows], n, axis=1)
        for r in range(len(rows)):
            for _ in range(rng.poisson(days * 2) + 1):
                at = rng.integers(1, n)
                jump = rng.uniform(-0.15, 0.3)
                out[r, at:] += jump
                if jump > 0:
                    surges.append((rows[r], at))
        return np.clip(out, 0.05, None) + _smooth_noise(rng, len(rows), n, 300 / step_s) * 0.01

    kinds = {"diurnal": diurnal, "spiky": spiky, "leak": leak, "step": step_shift}
    demand_frac = np.empty((vms, n))
    if scenario in kinds:
        demand_frac[:] = kinds[scenario](np.arange(vms))
    else:
        names = list(kinds)
        which = np.arange(vms) % len(names)
        for k, name in enumerate(names):
            rows = np.flatnonzero(which == k)
            if rows.size:
                demand_frac[rows] = kinds[name](rows)

    if scenario == "sync-surge":
        demand_frac[:] = base_frac + _smooth_noise(rng, vms, n, 600 / step_s) * 0.01
        # The blend above was overwritten: its bursts are no surges any more (the reaction
        # metric must only time the synchronised surge).
        del surges[:]
        # Hosts are filled first-fit in VM order, so the first VMs share a host: surge 30 %
        # of the VMs of that first host together, at mid-run, to most of their nominal size.
        first_host = _first_fit_host_of(nominal_gib * GIB, host_kib=default_host_kib(nominal_gib * GIB))
        on_host = np.flatnonzero(first_host == 0)
        count = max(1, int(round(0.3 * on_host.size)))
        chosen = rng.choice(on_host, size=count, replace=False)
        at = n // 2
        length = max(2, int(3600 / step_s))
        for r in chosen:
            demand_frac[r, at:at + length] = rng.uniform(0.75, 0.95)
            surges.append((r, at))

    if scenario == "cold-start":
        boot = rng.integers(0, n // 2, size=vms)
        for r in range(vms):
            demand_frac[r, :boot[r]] = 0.0
    demand = np.clip(demand_frac, 0.0, 1.0) * nominal
    demand = np.maximum(demand, os_floor_kib)
    demand = np.minimum(demand, nominal)
    surge_arr = np.array(sorted(set(surges)), dtype=np.int64).reshape(-1, 2)
    return Workload(name=f"scenario:{scenario}", step_s=step_s,
                    demand_kib=demand.astype(np.float32), nominal_kib=nominal.astype(np.float32),
                    vm_names=[f"vm{i}" for i in range(vms)], start_s=1.7e9,
                    info={"scenario": scenario, "seed": seed}, surge_starts=surge_arr)


def default_host_kib(nominal_kib: np.ndarray) -> float:
    """A host size that holds several of these VMs: 8× the mean nominal size, at least 64 GiB
    rounded to a power of two — typical dense KVM hosts of the traces' era."""
    mean = float(np.mean(nominal_kib)) if np.size(nominal_kib) else GIB
    want = max(64 * GIB, 8 * mean)
    return float(2 ** int(np.ceil(np.log2(want))))


def _first_fit_host_of(nominal_kib: np.ndarray, host_kib: float) -> np.ndarray:
    free = []
    out = np.empty(len(nominal_kib), dtype=np.int64)
    for i, size in enumerate(nominal_kib):
        for h, room in enumerate(free):
            if room >= size:
                free[h] -= size
                out[i] = h
                break
        else:
            free.append(host_kib - size)
            out[i] = len(free) - 1
    return out


# ------------------------------------------------------------------------- Bitbrains

def _trace_files(folder: str):
    try:
        names = os.listdir(folder)
    except OSError as e:
        raise ConfigError(f"cannot read trace folder {folder}: {e.strerror}") from None
    files = [n for n in names if re.fullmatch(r".+\.csv(\.gz)?", n)]
    if not files:
        raise ConfigError(f"no .csv or .csv.gz files in {folder}")

    def key(name):
        stem = name.split(".", 1)[0]
        return (0, int(stem), name) if stem.isdigit() else (1, 0, name)
    return sorted(files, key=key)


def _read_one(path: str):
    try:
        return _read_rows(path)
    except (OSError, EOFError) as e:  # unreadable, truncated or corrupt gzip
        raise ConfigError(f"{path}: cannot read: {e}") from None


def _read_rows(path: str):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="ascii", errors="replace") as fh:
        header = fh.readline()
        if "Memory" not in header:
            raise ConfigError(f"{path}: not a Bitbrains CSV (no Memory columns in the header)")
        rows = []
        for lineno, line in enumerate(fh, start=2):
            parts = line.split(";")
            if len(parts) < 7:
                continue
            try:
                rows.append((float(parts[0]), float(parts[5]), float(parts[6])))
            except ValueError:
                continue  # a damaged row is a missing sample
    if not rows:
        raise ConfigError(f"{path}: no readable samples")
    return np.asarray(rows, dtype=np.float64)


WARMUP_S = 86400.0  # every policy starts a VM at nominal and learns it for its first day


def read_bitbrains(folder: str, vms: Optional[int] = None, days: Optional[float] = None,
                   step_s: float = 300.0, os_floor_kib: float = 512 * MIB,
                   inflate: float = 1.0) -> Workload:
    """Per-VM demand from a folder of Bitbrains CSV(.gz) files (GWA-T-12 format).

    Timestamps are epoch seconds (the header's "[ms]" is wrong), memory is KiB. Samples that
    fall in the same ``step_s`` slot keep their maximum (a later one must not hide a peak). A
    zero or unreadable usage is a missing sample: a gap is filled with the last known value,
    never scored as zero demand. Before a VM's first valid sample it does not exist yet
    (``info["present_from_step"]``; demand 0 there, never scored). Provisioned memory is taken
    per step. Usage is clipped to provisioned, and demand has an OS floor (default 512 MiB).

    ``inflate`` > 1 is the benchmark's page-cache model (A′, peers.md §8.1): demand ×
    ``inflate``, capped at provisioned.
    """
    files = _trace_files(folder)
    if vms is not None:
        files = files[:vms]
    series = [_read_one(os.path.join(folder, f)) for f in files]
    t0 = min(s[:, 0].min() for s in series)
    t1 = max(s[:, 0].max() for s in series)
    if days is not None:
        t1 = min(t1, t0 + days * 86400.0 - step_s)
    n = int((t1 - t0) // step_s) + 1
    demand = np.empty((len(series), n), dtype=np.float32)
    nominal = np.empty((len(series), n), dtype=np.float32)
    present_from = np.zeros(len(series), dtype=np.int64)
    missing_total = merged_total = 0
    for i, s in enumerate(series):
        idx = np.round((s[:, 0] - t0) / step_s).astype(np.int64)
        keep = (idx >= 0) & (idx < n)
        idx, prov, used = idx[keep], s[keep, 1], s[keep, 2]
        merged_total += int(idx.size - np.unique(idx).size)
        p = _slot_max(idx, prov, n)
        u = _slot_max(idx, used, n)
        if np.isnan(p).all():
            raise ConfigError(f"{files[i]}: no provisioned memory in any sample")
        valid = ~np.isnan(u)
        first = int(np.argmax(valid)) if valid.any() else n
        present_from[i] = first
        missing_total += int(np.isnan(u[first:]).sum())
        u = _fill_gaps(u)
        p = _fill_gaps(p)
        u = np.minimum(u * inflate, p)
        d = np.minimum(np.maximum(u, os_floor_kib), p)
        d[:first] = 0.0                      # not there yet: nothing to serve
        demand[i] = d
        nominal[i] = p
    names = [f.split(".", 1)[0] for f in files]
    label = os.path.basename(os.path.normpath(folder)) + (f"×{inflate:g}" if inflate != 1 else "")
    return Workload(name=f"traces:{label}", step_s=step_s,
                    demand_kib=demand, nominal_kib=nominal, vm_names=names, start_s=t0,
                    info={"traces": folder, "missing_samples_filled": missing_total,
                          "samples_merged": merged_total, "os_floor_kib": os_floor_kib,
                          "inflate": inflate, "warmup_s": WARMUP_S,
                          "vms_late": int(np.count_nonzero(present_from)),
                          "present_from_step": present_from})


def _slot_max(idx: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """[n] the largest positive value per slot; NaN where a slot has none."""
    out = np.full(n, -np.inf)
    np.maximum.at(out, idx, np.where(values > 0, values, -np.inf))
    out[~np.isfinite(out)] = np.nan
    return out


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    """Forward fill NaNs, then back fill the leading ones (provisioned memory: the VM is
    booked at its first known size; usage before it is never scored)."""
    ok = ~np.isnan(values)
    if not ok.any():
        return values
    idx = np.where(ok, np.arange(values.size), 0)
    np.maximum.accumulate(idx, out=idx)
    filled = values[idx]
    first = int(np.argmax(ok))
    filled[:first] = values[first]
    return filled
