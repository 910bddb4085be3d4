"""Tiny Bitbrains-format traces written by the tests (never the real ones).

The GWA-T-12 Bitbrains files: a header whose fields are separated by ``;\\t``, timestamps in
epoch seconds (despite the header's "[ms]"), memory in KB (KiB), one row per 300 s.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterable, Sequence, Tuple

HEADER = ("Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\t"
          "CPU usage [%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\t"
          "Disk read throughput [KB/s];\tDisk write throughput [KB/s];\t"
          "Network received throughput [KB/s];\tNetwork transmitted throughput [KB/s]")
T0 = 1375308176  # the first timestamp of the real rnd/2013-8 files


def row(ts: float, provisioned_kib: float, used_kib: float) -> str:
    fields = [f"{int(ts)}", "2", "5851.9989", "747.1051929", "12.766666666666667",
              f"{float(provisioned_kib)!r}", f"{float(used_kib)!r}", "0.0", "1.0", "11.0", "27.2"]
    return ";\t".join(fields)


def write_trace(path: Path, samples: Iterable[Tuple[float, float, float]] = (),
                extra_lines: Sequence[str] = ()) -> Path:
    """One VM's file: ``samples`` are (timestamp s, provisioned KiB, usage KiB)."""
    text = "\n".join([HEADER] + [row(*s) for s in samples] + list(extra_lines)) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def steady(n: int, provisioned_kib: float, used_kib: float, step_s: float = 300, t0=T0):
    return [(t0 + i * step_s, provisioned_kib, used_kib) for i in range(n)]
