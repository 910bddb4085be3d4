#!/usr/bin/env python3
"""Time the cloudvamp IM VM probe (vm/monitor) on a host with many domains.

The probe runs as monitord-client runs it (installed remotes tree, argv, config XML on stdin,
LIBVIRT_URI) against libvirt's test driver with N running, ballooned domains; the figure is
the wall time of the whole probe process, median of several runs, beside the time of a bare
``python3 -c pass`` in the same run (interpreter start-up is most of a probe's cost).

    .venv/bin/python bench/probe_speed.py [DOMAINS] [RUNS]      (default 100 domains, 7 runs)
"""
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "host"))
import hostkit  # noqa: E402


def main(domains: int = 100, runs: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fake = hostkit.build_fake_one(tmp / "one")
        hostkit.run_install(fake, "--no-package")
        node = hostkit.write_test_node(tmp / "node.xml", [
            hostkit.fake_domain_xml(f"one-{i}", str(uuid.UUID(int=i + 1)), 4096, 2048,
                                    stats_period_s=10) for i in range(domains)],
            host_memory_kib=1024 * 1024 * 1024)
        env = hostkit.driver_env(node)
        probe_s, bare_s = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            out = hostkit.run_probe(fake.remotes, hostkit.VM_PROBE, env)
            probe_s.append(time.perf_counter() - t0)
            assert out.returncode == 0, out.stderr
            assert len(hostkit.vm_reports(out.stdout)) == domains, out.stdout[:500]
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare_s.append(time.perf_counter() - t0)
        print(f"vm/monitor probe, {domains} domains (libvirt test driver): "
              f"median {statistics.median(probe_s):.3f} s, max {max(probe_s):.3f} s over {runs} runs; "
              f"bare interpreter start {statistics.median(bare_s):.3f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
