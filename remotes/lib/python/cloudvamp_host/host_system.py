"""IM probe ``host/system``: memory cloudvamp has reclaimed on this host, and physical memory.

Prints (merged into the host TEMPLATE by monitord)::

    CLOUDVAMP_STOLEN_KIB=<sum over running domains of maxMemory - current balloon>
    CLOUDVAMP_HOST_MEM_TOTAL_KIB=<MemTotal>       from /proc/meminfo
    CLOUDVAMP_HOST_MEM_AVAILABLE_KIB=<MemAvailable>
    CLOUDVAMP_HOST_PROBE_TIME=<epoch s>

Physical figures come from /proc/meminfo, not libvirt's node calls: libvirt reads NUMA
node0 in sysfs, which under-reports RAM inside some VMs (a Firecracker host showed 7.4 GiB
of 24 GiB). When libvirt is unreachable STOLEN is left out rather than reported as 0, so
cvem does not mistake "unknown" for "nothing reclaimed".
"""

import os

from . import keys
from .bounded import BoundedLibvirt, is_domain_gone
from .probe_io import now_epoch_s, run_probe
from .settings import load_settings

# Tests point this at a fixture file; on a host it is always /proc/meminfo.
MEMINFO_PATH_ENV = "CLOUDVAMP_PROC_MEMINFO"


def read_meminfo_kib(path):
    """``{field: KiB}`` from a /proc/meminfo-format file."""
    values = {}
    with open(path, encoding="ascii", errors="replace") as meminfo:
        for line in meminfo:
            name, _, rest = line.partition(":")
            fields = rest.split()
            if fields and fields[0].isdigit():
                values[name.strip()] = int(fields[0])
    return values


def stolen_kib(lv, warn):
    """Sum of (maxMemory - current) over active domains; wild domains count too (it is RAM)."""
    total_kib = 0
    domains = lv.call("listAllDomains", lv.conn.listAllDomains,
                      lv.libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
    for dom in domains:
        try:
            info = lv.call("info", dom.info)
        except Exception as error:
            if not is_domain_gone(lv.libvirt, error):
                raise
            continue
        total_kib += max(0, int(info[1]) - int(info[2]))
    return total_kib


def collect(argv, _stdin_bytes, warn, environ=None):
    environ = os.environ if environ is None else environ
    settings = load_settings(environ)
    lines = []
    try:
        lv = BoundedLibvirt(settings.libvirt_uri, settings.libvirt_call_timeout_s,
                            budget_s=settings.probe_budget_s)
        lines.append("%s=%d" % (keys.HOST_STOLEN_KIB, stolen_kib(lv, warn)))
        lv.close()
    except Exception as error:
        warn("stolen memory unknown, libvirt at %s: %s" % (settings.libvirt_uri, error))
    meminfo_path = environ.get(MEMINFO_PATH_ENV) or "/proc/meminfo"
    try:
        meminfo = read_meminfo_kib(meminfo_path)
        for field, key in (("MemTotal", keys.HOST_MEM_TOTAL_KIB),
                           ("MemAvailable", keys.HOST_MEM_AVAILABLE_KIB)):
            if field in meminfo:
                lines.append("%s=%d" % (key, meminfo[field]))
            else:
                warn("%s has no %s" % (meminfo_path, field))
    except OSError as error:
        warn("cannot read %s: %s" % (meminfo_path, error))
    lines.append("%s=%d" % (keys.HOST_PROBE_TIME, now_epoch_s()))
    return lines


def main(argv):
    run_probe("host/system", collect, argv)
