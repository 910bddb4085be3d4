"""Lab tier: two real libvirtd "hosts" (network namespaces nodeA/nodeB) with qemu/TCG guests.

The session fixture ``lab`` builds (or reuses) the tiny guest, creates the namespaces, starts
both daemons, boots two guests on nodeA and installs cloudvamp with install.sh into an
OpenNebula-shaped remotes tree whose stock ``vmm/kvm/migrate`` is a small stand-in doing
``virsh migrate --live`` (OpenNebula's real one is Ruby and needs oned's environment).
Probes and actions then run *on* a host: ``nsenter`` into that daemon's mount, network and
UTS namespaces, ``LIBVIRT_URI=qemu:///system``, like oned's ssh session would.

CLOUDVAMP_LAB=require (set by scripts/test under CI) turns "cannot bring the lab up" into a
failure; otherwise the tier is skipped with the reason. Teardown always runs.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "host"))
import hostkit  # noqa: E402

SCRIPTS = Path(__file__).resolve().parent / "scripts"
# keyed by the build script, so a changed guest is rebuilt (and other checkouts keep theirs)
GUEST_CACHE = Path(os.environ.get("CLOUDVAMP_LAB_GUEST_CACHE", "/var/tmp/cloudvamp-lab-guest-%s"
                                  % hashlib.sha256((SCRIPTS / "build-guest.sh").read_bytes())
                                  .hexdigest()[:10]))
MEASUREMENTS_FILE = Path(os.environ.get("CLOUDVAMP_LAB_MEASUREMENTS",
                                        "/tmp/cloudvamp-lab-measurements.json"))
GUEST_MAX_MIB = 512
BOOT_TIMEOUT_S = 180  # TCG boots in ~5-30 s; far longer when the 2 cores are shared
GUESTS = {  # name: (uuid, balloon stats period or None)
    "one-101": ("c10da000-0000-4000-8000-000000000101", 2),
    "one-102": ("c10da000-0000-4000-8000-000000000102", None),  # the probe must set one
}
NEEDED_COMMANDS = ("/usr/sbin/libvirtd", "qemu-system-x86_64", "virsh", "busybox", "ip",
                   "unshare", "nsenter", "apt-get", "dpkg-deb", "gzip")

# the stock kvm/migrate stand-in: same argv as OpenNebula's, migration done with virsh like
# the kvm driver does; CLOUDVAMP_LAB_LOSE_BALLOON=1 simulates a destination that comes up
# with the balloon deflated, to prove the wrapper puts it back.
LAB_KVM_MIGRATE = textwrap.dedent("""\
    #!/bin/bash
    # lab stand-in for OpenNebula's vmm/kvm/migrate: <deploy_id> <dst_host> <src_host> <vm_id> <host>
    source "$(dirname "$0")/../../etc/vmm/kvm/kvmrc"
    DEPLOY_ID=$1; DST=$2
    cat > /dev/null   # the action XML, unused here
    virsh -q -c "$LIBVIRT_URI" migrate --live "$DEPLOY_ID" "$QEMU_PROTOCOL://$DST/system" || exit 1
    if [ "$CLOUDVAMP_LAB_LOSE_BALLOON" = 1 ]; then
        virsh -q -c "$QEMU_PROTOCOL://$DST/system" setmem "$DEPLOY_ID" {max_kib} --live >/dev/null
        for i in $(seq 1 100); do   # until it has really arrived deflated
            virsh -q -c "$QEMU_PROTOCOL://$DST/system" dommemstat "$DEPLOY_ID" | grep -qx "actual {max_kib}" && break
            sleep 0.1
        done
    fi
    """).format(max_kib=GUEST_MAX_MIB * 1024)


# the stock kvm/deploy stand-in: what OpenNebula's does for a plain domain (write stdin to the
# deployment file, virsh create it, print the UUID); disks, nvram, vGPU, TPM left out.
LAB_KVM_DEPLOY = textwrap.dedent("""\
    #!/bin/bash
    # lab stand-in for OpenNebula's vmm/kvm/deploy: <deployment_file> <host> <vm_id> <host>
    source "$(dirname "$0")/../../etc/vmm/kvm/kvmrc"
    DEP_FILE=$1
    mkdir -p "$(dirname "$DEP_FILE")"
    cat > "$DEP_FILE"
    virsh -q -c "$LIBVIRT_URI" create "$DEP_FILE" >/dev/null || {
        echo "ERROR: Could not create domain from $DEP_FILE" >&2; exit 255; }
    virsh -q -c "$LIBVIRT_URI" domuuid "$(sed -n 's:.*<name>\\(.*\\)</name>.*:\\1:p' "$DEP_FILE" | head -1)"
    """)


_BRING_UP_FAILURE = []  # a session fixture that failed is retried per test: remember why


def _unavailable(reason):
    _BRING_UP_FAILURE[:] = [reason]
    if os.environ.get("CLOUDVAMP_LAB") == "require":
        pytest.fail("lab tier required (CLOUDVAMP_LAB=require) but unavailable: " + reason,
                    pytrace=False)
    pytest.skip("lab tier skipped: " + reason)


def _run(command, timeout=120, **kwargs):
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if completed.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(map(str, command)), completed.returncode,
                                                     completed.stdout, completed.stderr))
    return completed


@dataclass
class LabHost:
    name: str
    netns: str
    ip: str
    home: Path

    @property
    def daemon_pid(self):
        return int((self.home / "daemon.pid").read_text())

    @property
    def socket_uri(self):
        """For the test itself (outside the namespaces)."""
        return "qemu+unix:///system?socket=%s/run/libvirt-sock" % self.home

    @property
    def on_host(self):
        """Command prefix that runs something 'on' this host, as oned's ssh session would."""
        return ["nsenter", "-t", str(self.daemon_pid), "-m", "-n", "-u"]


@dataclass
class Lab:
    root: Path
    guest_dir: Path
    hosts: dict
    one: hostkit.FakeOne
    measurements: dict = field(default_factory=dict)

    def console(self, domain_name):
        return self.root / ("console-%s.log" % domain_name)

    def meminfo_lines(self, domain_name):
        try:
            text = self.console(domain_name).read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [dict((k, float(v)) for k, v in re.findall(r"(\w+)=([\d.]+)", line))
                for line in text.splitlines() if line.startswith("MEMINFO")]

    def guest_meminfo(self, domain_name):
        lines = self.meminfo_lines(domain_name)
        return lines[-1] if lines else None

    def env(self, **overrides):
        return hostkit.driver_env("qemu:///system", **overrides)

    def measure(self, name, value):
        self.measurements[name] = round(value, 3) if isinstance(value, float) else value


def _build_guest():
    if (GUEST_CACHE / "vmlinuz").is_file() and (GUEST_CACHE / "initrd.gz").is_file():
        return GUEST_CACHE
    _run(["bash", str(SCRIPTS / "build-guest.sh"), str(GUEST_CACHE)], timeout=600)
    return GUEST_CACHE


def _domain_xml(lab, name, uuid, stats_period_s):
    stats = "" if stats_period_s is None else "<stats period='%d'/>" % stats_period_s
    return textwrap.dedent("""\
        <domain type='qemu'>
          <name>{name}</name><uuid>{uuid}</uuid>
          <memory unit='MiB'>{max}</memory><currentMemory unit='MiB'>{max}</currentMemory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64' machine='pc'>hvm</type>
            <kernel>{guest}/vmlinuz</kernel><initrd>{guest}/initrd.gz</initrd>
            <cmdline>console=ttyS0 panic=-1</cmdline></os>
          <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
          <devices>
            <emulator>/usr/bin/qemu-system-x86_64</emulator>
            <controller type='usb' model='none'/>
            <serial type='file'><source path='{console}' append='on'/><target port='0'/></serial>
            <video><model type='none'/></video>
            <memballoon model='virtio'>{stats}</memballoon>
          </devices>
        </domain>""").format(name=name, uuid=uuid, max=GUEST_MAX_MIB, guest=lab.guest_dir,
                             console=lab.console(name), stats=stats)


def _install_cloudvamp(root):
    one = hostkit.build_fake_one(root / "one", kvm_actions={"migrate": LAB_KVM_MIGRATE,
                                                                "deploy": LAB_KVM_DEPLOY})
    # as kvmrc on a host whose libvirtds accept qemu+tcp from the other lab host
    (one.remotes / "etc/vmm/kvm/kvmrc").write_text(
        "export LIBVIRT_URI=qemu:///system\nexport QEMU_PROTOCOL=qemu+tcp\n")
    hostkit.run_install(one, "--no-package")
    return one


def _teardown(lab_root, hosts, netns_names):
    import libvirt
    for host in hosts:
        try:
            conn = libvirt.open(host.socket_uri)
            for dom in conn.listAllDomains():
                try:
                    dom.destroy()
                except libvirt.libvirtError:
                    pass
            conn.close()
        except Exception:
            pass
        subprocess.run(["bash", str(SCRIPTS / "stop-host.sh"), str(lab_root), host.name],
                       capture_output=True, timeout=60)
    subprocess.run(["bash", str(SCRIPTS / "netns-down.sh")] + netns_names,
                   capture_output=True, timeout=60)
    shutil.rmtree(lab_root, ignore_errors=True)


@pytest.fixture(scope="session")
def lab():
    if _BRING_UP_FAILURE:
        _unavailable(_BRING_UP_FAILURE[0])
    if os.geteuid() != 0:
        _unavailable("needs root (network namespaces, libvirtd); run scripts/test as root")
    missing = [c for c in NEEDED_COMMANDS if not shutil.which(c)]
    if missing:
        _unavailable("missing %s (scripts/setup --lab installs them)" % ", ".join(missing))
    try:
        import libvirt
    except ImportError:
        _unavailable("libvirt-python is not installed in this interpreter")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

    started = time.monotonic()
    tag = "%d" % (os.getpid() % 100000)
    netns_names = ["cvA%s" % tag, "cvB%s" % tag]
    lab_root = Path("/tmp/cloudvamp-lab-%s" % tag)
    shutil.rmtree(lab_root, ignore_errors=True)
    lab_root.mkdir(parents=True)
    hosts = [LabHost("nodeA", netns_names[0], "10.254.0.1", lab_root / "hosts/nodeA"),
             LabHost("nodeB", netns_names[1], "10.254.0.2", lab_root / "hosts/nodeB")]
    try:
        try:
            guest_dir = _build_guest()
            _run(["bash", str(SCRIPTS / "netns-up.sh")] + netns_names + ["cva%s" % tag, "cvb%s" % tag])
            for number, host in enumerate(hosts, start=11):
                _run(["bash", str(SCRIPTS / "start-nshost.sh"), str(lab_root), host.name,
                      host.netns, host.ip, str(number)])
            lab = Lab(root=lab_root, guest_dir=guest_dir, hosts={h.name: h for h in hosts},
                      one=_install_cloudvamp(lab_root))
            # first use of a daemon probes qemu's capabilities (~8 s): pay it for both at once
            warmups = [threading.Thread(target=lambda h=h: libvirt.open(h.socket_uri).getDomainCapabilities())
                       for h in hosts]
            for thread in warmups:
                thread.start()
            for thread in warmups:
                thread.join(120)
            lab.measure("lab_daemons_ready_s", time.monotonic() - started)
            conn = libvirt.open(hosts[0].socket_uri)
            boot_started = time.monotonic()
            for name, (uuid, period) in GUESTS.items():
                # transient, like OpenNebula's `virsh create`
                conn.createXML(_domain_xml(lab, name, uuid, period), 0)
            deadline = time.monotonic() + BOOT_TIMEOUT_S
            while not all(lab.guest_meminfo(name) for name in GUESTS):
                if time.monotonic() > deadline:
                    raise RuntimeError("guests did not print MEMINFO within %d s" % BOOT_TIMEOUT_S)
                time.sleep(0.2)
            lab.measure("guest_boot_s", time.monotonic() - boot_started)
            lab.measure("lab_setup_s", time.monotonic() - started)
        except Exception as error:
            _unavailable("lab bring-up failed: %s" % error)
        yield lab
    finally:
        _teardown(lab_root, hosts, netns_names)
    if "lab" in locals():
        try:
            MEASUREMENTS_FILE.write_text(json.dumps(lab.measurements, indent=2, sort_keys=True) + "\n")
        except OSError:
            pass
        _SESSION_MEASUREMENTS.update(lab.measurements)


_SESSION_MEASUREMENTS = {}


def pytest_terminal_summary(terminalreporter):
    if _SESSION_MEASUREMENTS:
        terminalreporter.section("cloudvamp lab measurements (s, KiB)")
        for name, value in sorted(_SESSION_MEASUREMENTS.items()):
            terminalreporter.write_line("%-40s %s" % (name, value))
        terminalreporter.write_line("(also in %s)" % MEASUREMENTS_FILE)
