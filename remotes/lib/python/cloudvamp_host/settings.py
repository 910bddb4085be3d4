"""Host settings: where libvirt is and how long we are willing to wait for it.

Precedence, lowest first: built-in defaults < ``etc/vmm/kvm/kvmrc`` (LIBVIRT_URI,
QEMU_PROTOCOL, exactly what the stock kvm scripts use) < ``etc/vmm/cloudvamp/cloudvamprc``
< the process environment. The environment wins so that an operator (or a test) can point
one run at another daemon with ``LIBVIRT_URI=... <script>``, the same way kvmrc's exported
variables reach virsh.
"""

import os
import re
from dataclasses import dataclass

# This file is <remotes>/lib/python/cloudvamp_host/settings.py on the front-end and
# /var/tmp/one/lib/python/cloudvamp_host/settings.py on a host.
REMOTES_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
KVMRC_PATH = os.path.join(REMOTES_ROOT, "etc", "vmm", "kvm", "kvmrc")
CLOUDVAMPRC_PATH = os.path.join(REMOTES_ROOT, "etc", "vmm", "cloudvamp", "cloudvamprc")

_RC_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


@dataclass(frozen=True)
class HostSettings:
    libvirt_uri: str
    # Deadline for any single libvirt call (open, lookup, stats, setMemory...).
    libvirt_call_timeout_s: float
    # Whole-probe budget: monitord kills nothing, so we stop ourselves well before the
    # next period (MONITOR_VM is 30 s) and print what we have.
    probe_budget_s: float
    # How long resize waits for the balloon to reach its target before giving up.
    resize_timeout_s: float
    # |actual - target| accepted as "reached"; qemu normally lands exactly on the target.
    balloon_tolerance_kib: int
    # Balloon statistics period the vm/monitor probe sets on domains that have none;
    # without it qemu never asks the guest and usable/available/unused stay absent.
    stats_period_s: int
    # libvirt URI of a migration destination, "{host}" is replaced by the host name.
    migrate_dest_uri: str
    # deploy: what the virtio balloon of a new domain gets (a VM's template can only turn
    # each one off). deflate-on-oom lets a guest take ballooned memory back instead of
    # OOM-killing; free page reporting hands its free pages back to the host.
    autodeflate: bool = True
    free_page_reporting: bool = True
    deploy_stats_period: bool = True


def parse_rc_file(path):
    """Return ``{NAME: value}`` from a shell rc file of simple ``[export] NAME=value`` lines.

    No shell is run: kvmrc and cloudvamprc only hold literal assignments, and executing
    them from a probe would be a needless risk. Quotes are removed, ``#`` comments after an
    unquoted value are dropped, and a missing or unreadable file gives ``{}``.
    """
    values = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as rc_file:
            lines = rc_file.readlines()
    except OSError:
        return values
    for line in lines:
        match = _RC_LINE.match(line)
        if not match:
            continue
        name, raw = match.group(1), match.group(2).strip()
        if raw[:1] in ("'", '"'):
            quote = raw[0]
            end = raw.find(quote, 1)
            value = raw[1:end] if end > 0 else raw[1:]
        else:
            value = raw.split("#", 1)[0].strip()
        values[name] = value
    return values


def load_settings(environ=None, kvmrc_path=KVMRC_PATH, cloudvamprc_path=CLOUDVAMPRC_PATH):
    environ = os.environ if environ is None else environ
    merged = {}
    merged.update(parse_rc_file(kvmrc_path))
    merged.update(parse_rc_file(cloudvamprc_path))
    merged.update({k: v for k, v in environ.items()
                   if k == "LIBVIRT_URI" or k == "QEMU_PROTOCOL" or k.startswith("CLOUDVAMP_")})

    def number(name, default, kind=float):
        raw = merged.get(name, "")
        try:
            value = kind(raw) if raw != "" else default
        except ValueError:
            value = default
        return value if value > 0 else default

    def flag(name, default):
        raw = merged.get(name, "").strip().lower()
        if raw in ("yes", "on", "true", "1"):
            return True
        if raw in ("no", "off", "false", "0"):
            return False
        return default

    qemu_protocol = merged.get("QEMU_PROTOCOL") or "qemu+ssh"
    return HostSettings(
        libvirt_uri=merged.get("LIBVIRT_URI") or "qemu:///system",
        libvirt_call_timeout_s=number("CLOUDVAMP_LIBVIRT_TIMEOUT_S", 10.0),
        probe_budget_s=number("CLOUDVAMP_PROBE_BUDGET_S", 20.0),
        resize_timeout_s=number("CLOUDVAMP_RESIZE_TIMEOUT_S", 30.0),
        balloon_tolerance_kib=number("CLOUDVAMP_BALLOON_TOLERANCE_KIB", 1024, int),
        stats_period_s=number("CLOUDVAMP_BALLOON_STATS_PERIOD_S", 10, int),
        migrate_dest_uri=merged.get("CLOUDVAMP_MIGRATE_DEST_URI")
        or qemu_protocol + "://{host}/system",
        autodeflate=flag("CLOUDVAMP_AUTODEFLATE", True),
        free_page_reporting=flag("CLOUDVAMP_FREE_PAGE_REPORTING", True),
        deploy_stats_period=flag("CLOUDVAMP_DEPLOY_STATS_PERIOD", True),
    )
