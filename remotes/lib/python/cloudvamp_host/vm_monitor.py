"""IM probe ``vm/monitor``: balloon figures of every running OpenNebula domain.

Prints one line per domain named ``one-<ID>``::

    VM=[ ID="7", DEPLOY_ID="<uuid>", MONITOR="<base64 of CLOUDVAMP_*=\"v\" lines>" ]

monitord decodes MONITOR and merges its keys into the VM's MONITORING record, together
with what the stock poll.rb reports for the same ID. Domains that are not OpenNebula's
("wild") are skipped: entries with the same ID are merged, so they would all collapse
into one ID="-1" record.

Besides libvirt's balloon figures, MONITOR carries whether the balloon has deflate-on-OOM
and, once a cloudvamp resize recorded its target in the domain metadata, that target and by
how much the balloon is above it (the guest deflated it on its own: it lacks memory).

A domain whose balloon has no statistics period gets one (live only). Without it the guest
figures (usable, available, unused...) are the ones the guest pushed once when its balloon
driver started, and CLOUDVAMP_STATS_TIME stays at boot time (seen on qemu 7.2).
"""

import re
import xml.etree.ElementTree as ElementTree

from . import keys
from .balloon import recorded_target_kib
from .bounded import BoundedLibvirt, LibvirtTimeoutError, is_domain_gone
from .probe_io import run_probe
from .settings import load_settings
from .template import monitor_base64, vector

_ONE_DOMAIN_NAME = re.compile(r"^one-(\d+)$")


def balloon_stats_period_s(domain_xml):
    """Return (has_virtio_balloon, period_s or 0) from the live domain XML."""
    balloon = ElementTree.fromstring(domain_xml).find("devices/memballoon")
    if balloon is None or balloon.get("model") in (None, "none"):
        return False, 0
    stats = balloon.find("stats")
    try:
        return True, int(stats.get("period", "0")) if stats is not None else 0
    except ValueError:
        return True, 0


def balloon_autodeflate(domain_xml):
    """True when the live domain's balloon has deflate-on-OOM (autodeflate='on')."""
    try:
        balloon = ElementTree.fromstring(domain_xml).find("devices/memballoon")
    except ElementTree.ParseError:
        return False
    return balloon is not None and balloon.get("autodeflate") == "on"


def monitor_pairs(info, memory_stats, target_kib=None, autodeflate=False):
    """(key, value) pairs for MONITOR from virDomainGetInfo and virDomainMemoryStats, the
    balloon target the resize action recorded (when there is one) and deflate-on-OOM."""
    max_kib, current_kib = int(info[1]), int(info[2])
    actual_kib = int(memory_stats.get("actual", current_kib))
    pairs = [
        (keys.PROBE_BALLOON_ACTUAL_KIB, actual_kib),
        (keys.PROBE_MAX_KIB, max_kib),
        # a guest whose balloon deflates on OOM keeps the balloon in its MemTotal
        (keys.PROBE_AUTODEFLATE, 1 if autodeflate else 0),
    ]
    for stat_name, key in keys.MEMORY_STATS_TO_PROBE_KEY.items():
        if stat_name in memory_stats:
            pairs.append((key, int(memory_stats[stat_name])))
    if target_kib is not None:
        # above the target: the guest deflated on its own (deflate-on-OOM) = it lacks memory
        pairs.append((keys.PROBE_BALLOON_TARGET_KIB, target_kib))
        pairs.append((keys.PROBE_SELF_DEFLATED_KIB, max(actual_kib - target_kib, 0)))
    return pairs


def ensure_stats_period(lv, dom, domain_name, settings, warn):
    """Set a stats period if the balloon has none; return the live domain XML."""
    domain_xml = lv.call("XMLDesc", dom.XMLDesc, 0)
    has_balloon, period_s = balloon_stats_period_s(domain_xml)
    if not has_balloon or period_s > 0:
        return domain_xml
    try:
        lv.call("setMemoryStatsPeriod", dom.setMemoryStatsPeriod, settings.stats_period_s,
                lv.libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except lv.libvirt.libvirtError as error:
        warn("cannot set the balloon stats period of %s: %s" % (domain_name, error))
    return domain_xml


def collect(argv, _stdin_bytes, warn, environ=None):
    settings = load_settings(environ)
    try:
        lv = BoundedLibvirt(settings.libvirt_uri, settings.libvirt_call_timeout_s,
                            budget_s=settings.probe_budget_s)
    except Exception as error:
        warn("cannot connect to libvirt at %s: %s" % (settings.libvirt_uri, error))
        return []
    lines = []
    try:
        domains = lv.call("listAllDomains", lv.conn.listAllDomains,
                          lv.libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        for dom in domains:
            name = dom.name()  # name and UUID are cached in the object: no RPC
            match = _ONE_DOMAIN_NAME.match(name)
            if not match:
                continue
            try:
                domain_xml = ensure_stats_period(lv, dom, name, settings, warn)
                info = lv.call("info", dom.info)
                memory_stats = lv.call("memoryStats", dom.memoryStats)
            except LibvirtTimeoutError:
                raise
            except Exception as error:
                if not is_domain_gone(lv.libvirt, error):  # gone = stopped or migrated away
                    warn("domain %s: %s" % (name, error))
                continue
            lines.append(vector("VM", [
                ("ID", match.group(1)),
                ("DEPLOY_ID", dom.UUIDString()),
                ("MONITOR", monitor_base64(monitor_pairs(
                    info, memory_stats, recorded_target_kib(domain_xml),
                    balloon_autodeflate(domain_xml)))),
            ]))
    except LibvirtTimeoutError as error:
        # libvirtd is hung: report the domains done so far and stop, the next run retries.
        warn("%s; reporting %d domain(s) only" % (error, len(lines)))
        return lines
    except Exception as error:
        warn("libvirt at %s: %s" % (settings.libvirt_uri, error))
        return lines
    lv.close()
    return lines


def main(argv):
    run_probe("vm/monitor", collect, argv)
