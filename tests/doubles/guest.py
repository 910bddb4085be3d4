"""The guest side for tests: a fake /proc tree and the in-guest publisher.

    from tests.doubles.guest import FakeProc, load_publisher, run_publisher, PUBLISHER_PATH

    proc = FakeProc(tmp_path / "proc")
    proc.write(mem_total_kib=2097152, mem_available_kib=1048576)    # /proc/meminfo etc.
    result = run_publisher(onegate.publisher_env(42), "--once", "--proc", str(proc.root))
    assert result.returncode == 0

    publisher = load_publisher()    # the script as a module: publisher.compute_figures, ...

FakeProc.write() can be called again at any time to change what the guest "sees"; the
swap counters (pswpin/pswpout, in pages) only ever grow, as in a real kernel.
"""

import importlib.machinery
import importlib.util
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PUBLISHER_PATH = os.path.join(REPO_ROOT, "onegate", "cloudvamp-publisher")


def load_publisher():
    """Import onegate/cloudvamp-publisher (a file without .py) as a fresh module."""
    loader = importlib.machinery.SourceFileLoader("cloudvamp_publisher", PUBLISHER_PATH)
    spec = importlib.util.spec_from_loader("cloudvamp_publisher", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def run_publisher(env, *args, python=None, python_args=(), timeout_s=30):
    """Run the publisher as a subprocess with only `env` (plus PATH); -> CompletedProcess.

    It is told to ignore this machine's one_env and context CD, so only `env` counts.
    """
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    full_env.update(env)
    return subprocess.run(
        [python or sys.executable] + list(python_args) + [PUBLISHER_PATH,
         # tests must never read this machine's one-context files or context CD
         "--one-env", os.devnull, "--context-dir", os.devnull] + list(args),
        env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=timeout_s)


MEMINFO_TEMPLATE = """\
MemTotal:       {mem_total_kib:>8} kB
MemFree:        {mem_free_kib:>8} kB
MemAvailable:   {mem_available_kib:>8} kB
Buffers:           20480 kB
Cached:           {cached_kib:>8} kB
SwapCached:            0 kB
Active:           300000 kB
Inactive:         200000 kB
Shmem:             10240 kB
SwapTotal:      {swap_total_kib:>8} kB
SwapFree:       {swap_free_kib:>8} kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
DirectMap4k:      100000 kB
DirectMap2M:     2000000 kB
"""

PSI_TEMPLATE = """\
some avg10={some_avg10:.2f} avg60=0.00 avg300=0.00 total=12345
full avg10={full_avg10:.2f} avg60=0.00 avg300=0.00 total=2345
"""


class FakeProc(object):
    """A directory laid out like /proc for the files the publisher reads."""

    def __init__(self, root):
        self.root = str(root)
        self.pswpin = 0
        self.pswpout = 0
        os.makedirs(self.root, exist_ok=True)

    def write(self, mem_total_kib=2097152, mem_available_kib=1048576, mem_free_kib=None,
              cached_kib=400000, swap_total_kib=1048576, swap_free_kib=1048576,
              swapped_in_pages=0, swapped_out_pages=0, psi=(0.0, 0.0)):
        """(Re)write meminfo, vmstat and pressure/memory.

        swapped_*_pages are added to the running pswpin/pswpout counters. psi is
        (some_avg10, full_avg10), or None for a kernel without PSI (file removed).
        """
        if mem_free_kib is None:
            mem_free_kib = max(mem_available_kib - cached_kib, 0)
        self.write_file("meminfo", MEMINFO_TEMPLATE.format(
            mem_total_kib=mem_total_kib, mem_free_kib=mem_free_kib,
            mem_available_kib=mem_available_kib, cached_kib=cached_kib,
            swap_total_kib=swap_total_kib, swap_free_kib=swap_free_kib))
        self.pswpin += swapped_in_pages
        self.pswpout += swapped_out_pages
        self.write_file("vmstat", "nr_free_pages 12345\npgpgin 1000\npgpgout 2000\n"
                                  "pswpin %d\npswpout %d\npgfault 99999\n"
                        % (self.pswpin, self.pswpout))
        psi_path = os.path.join(self.root, "pressure", "memory")
        if psi is None:
            if os.path.exists(psi_path):
                os.remove(psi_path)
        else:
            self.write_file(os.path.join("pressure", "memory"),
                            PSI_TEMPLATE.format(some_avg10=psi[0], full_avg10=psi[1]))
        return self

    def write_file(self, relative_path, text):
        """Write any file under the tree (e.g. garbage meminfo for error tests)."""
        path = os.path.join(self.root, relative_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Replace atomically: the publisher may be reading in another process.
        temporary = path + ".tmp"
        with open(temporary, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
        return path
