#!/usr/bin/env python3
"""The frontier of ``cvem bench`` on two halves: tuning (even trace file numbers) and held out.

Every policy at its shipped setting and along its frontier knob (declared beside the policy,
:class:`cvem.core.policy.FrontierKnob`), on the even-numbered VMs (where ``default`` is tuned)
and the odd-numbered ones (never used for tuning), under the honest guest model and scored
from each VM's second day. Same simulator and sweep as ``cvem bench``; this script only splits
the VMs and puts both halves side by side.

    .venv/bin/python bench/frontier.py ../shared/traces/bitbrains-rnd-2013-8 docs/img/frontier.png

Writes the figures as JSON beside the PNG (same name, .json) and one PNG per half
(``-even``/``-odd`` before the extension). ``JOBS`` sets the processes (default 2).
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from cvem.bench.frontier import (format_frontier, frontier_report, frontier_rows,
                                 plot_frontier, run_sweep, sweep_tasks)
from cvem.sim.suite import DEFAULT_POLICIES, run_suite
from cvem.sim.workloads import Workload, read_bitbrains

ARMS = tuple(p for p in DEFAULT_POLICIES if p != "none")


def half(w: Workload, parity: int) -> Workload:
    """The VMs whose trace file number has this parity (0: even, 1: odd)."""
    rows = np.array([i for i, n in enumerate(w.vm_names) if int(n) % 2 == parity])
    info = dict(w.info)
    info["present_from_step"] = np.asarray(w.info["present_from_step"])[rows]
    return Workload(f"{w.name}[{'even' if parity == 0 else 'odd'}]", w.step_s,
                    w.demand_kib[rows], w.nominal_kib[rows], [w.vm_names[i] for i in rows],
                    w.start_s, info)


def main(traces: str, png: str) -> None:
    started = time.monotonic()
    jobs = int(os.environ.get("JOBS", "2"))
    full = read_bitbrains(traces)
    data = {}
    stem, ext = os.path.splitext(png)
    for parity, side in ((0, "even"), (1, "odd")):
        w = half(full, parity)
        shipped = {n: dict(r.metrics) for n, r in run_suite(w, ARMS).items()}
        tasks = sweep_tasks(ARMS)
        rows = frontier_rows(shipped, tasks, run_sweep(w, tasks, jobs=jobs))
        report = frontier_report(rows)
        print(f"== {w.name}\n{format_frontier(rows, report)}")
        plot_frontier(rows, report, f"{stem}-{side}{ext}", title=f"{w.name}: every policy "
                      "along its knob (honest guests, scored from day 1)")
        data[w.name] = {"rows": rows, "report": report}
    with open(stem + ".json", "w") as fh:
        json.dump(data, fh, indent=1, default=str)
    print(f"wrote {stem}-even{ext}, {stem}-odd{ext} in {time.monotonic() - started:.0f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
