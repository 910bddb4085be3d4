"""``vpa``: the Kubernetes Vertical Pod Autoscaler memory rule, applied to VMs.

Source: kubernetes/autoscaler VPA recommender, as summarised in
``shared/reference/peers.md`` §5.2 and ``style.md`` §2: one peak per aggregation window
(24 h) goes into an exponentially bucketed histogram (10 MB first bucket, +5 % per bucket)
whose weights halve every 24 h; the target is its p90 × 1.15. After a shortfall (the
OOM analogue: the guest had to swap) a synthetic peak of max(allocation, need) × 1.2 or
+100 MB, whichever is larger, is added.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.histogram import bucket_edges_kib, bucket_of, percentile_kib, rebase
from ..core.policy import FrontierKnob, Policy

MB_IN_KIB = 1e6 / 1024.0


class VpaLike(Policy):
    """Description: p90 of a decaying histogram of window peaks, × (1 + margin).

    Inputs: guest need; pressure/deficit as the OOM signal.
    Parameters: ``percentile``, ``margin_ratio``, ``window_s``, ``half_life_s``,
    ``bump_ratio``, ``bump_min_kib``. Limitations: a daily-peak rule is slow to give memory
    back and slow to learn a new level; it proposes nominal until it has a first sample.
    """

    name = "vpa"
    # the recommendation margin, from cautious to bold (shipped: 0.15)
    frontier_knob = FrontierKnob("margin_ratio", (0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.0))

    @dataclass(frozen=True)
    class Params:
        percentile: float = field(default=0.90, metadata={"min": 0.5, "max": 1.0,
                                                          "help": "histogram percentile"})
        margin_ratio: float = field(default=0.15, metadata={"min": 0.0, "max": 2.0,
                                                            "help": "recommendation margin"})
        window_s: float = field(default=86400.0, metadata={"min": 60.0,
                                                           "help": "peak aggregation window"})
        half_life_s: float = field(default=86400.0, metadata={"min": 60.0,
                                                              "help": "weight half-life"})
        bump_ratio: float = field(default=1.2, metadata={"min": 1.0, "max": 3.0,
                                                         "help": "shortfall bump factor"})
        bump_min_kib: float = field(default=100 * MB_IN_KIB, metadata={
            "min": 0.0, "help": "minimum shortfall bump"})

    def __init__(self, params=None):
        super().__init__(params)
        self.edges_kib = bucket_edges_kib(10 * MB_IN_KIB, 1.05, 2.0 ** 30)  # up to 1 TiB

    def initial_state(self):
        buckets = self.edges_kib.size - 1
        return {"hist": np.zeros((1, buckets), dtype=np.float64),
                "ref_s": np.full(1, np.nan),
                "window_start_s": np.full(1, -np.inf),
                "window_peak_kib": np.zeros(1),
                "window_bucket": np.full(1, -1, dtype=np.int64)}

    def propose(self, obs, state):
        p = self.params
        now = obs.now_s
        hist = state["hist"].copy()
        ref = np.where(np.isnan(state["ref_s"]), now, state["ref_s"])
        hist, ref = rebase(hist, ref, now, p.half_life_s)
        start = state["window_start_s"].copy()
        peak = state["window_peak_kib"].copy()
        pbucket = state["window_bucket"].copy()

        new_window = now >= start + p.window_s
        start[new_window] = now
        peak[new_window] = 0.0
        pbucket[new_window] = -1

        need = obs.need_kib()
        seen = np.isfinite(need)
        higher = seen & (need > peak)
        rows = np.flatnonzero(higher)
        if rows.size:
            w = np.exp2((start[rows] - ref[rows]) / p.half_life_s)
            had = pbucket[rows] >= 0
            hist[rows[had], pbucket[rows[had]]] -= w[had]
            nb = bucket_of(need[rows], self.edges_kib)
            hist[rows, nb] += w
            peak[rows] = need[rows]
            pbucket[rows] = nb

        short = obs.pressure & seen
        rows = np.flatnonzero(short)
        if rows.size:
            base = np.maximum(obs.allocated_kib[rows], need[rows])
            bumped = np.maximum(base * p.bump_ratio, base + p.bump_min_kib)
            w = np.exp2((now - ref[rows]) / p.half_life_s)
            hist[rows, bucket_of(bumped, self.edges_kib)] += w

        np.maximum(hist, 0.0, out=hist)
        estimate = percentile_kib(hist, self.edges_kib, p.percentile)
        target = np.where(np.isfinite(estimate), estimate * (1.0 + p.margin_ratio),
                          obs.nominal_kib.astype(np.float64))
        return target, {"hist": hist, "ref_s": ref, "window_start_s": start,
                        "window_peak_kib": peak, "window_bucket": pbucket}
