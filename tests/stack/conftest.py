"""Stack tier: the whole OpenNebula 7.4.0 + KVM (qemu/TCG) stack on one machine.

The session fixture ``stack`` brings up, in order:
- two lab hosts, nodeA and nodeB: network namespaces, each with its own libvirtd and an sshd
  that lets in a key made by this fixture (scripts/start-onehost.sh), joined to the root
  namespace by point-to-point veths on 10.253.0.0/24 and to each other on 10.253.1.0/24
  (scripts/net-up.sh);
- the test bed's oned 7.4.0 (``../shared/oned-testbed``: build.sh, start.sh), then
  cloudvamp's ``install.sh --prefix <remotes> --etc-dir <etc>`` into its tree, then oned
  again in a private mount namespace whose /etc/hosts and ssh_config reach the lab hosts
  (scripts/start-oned.sh);
- the hosts, created through ``one.host.allocate(name, "cloudvamp", "cloudvamp")``;
  monitord copies the remotes and runs the cloudvamp IM over ssh until they are MONITORED;
- one VM deployed by oned on nodeA (kernel + initrd by path: the hosts share this
  machine's filesystem, like a shared system datastore), the lab guest plus a keyboard
  command to make it use more memory (scripts/build-stack-guest.sh).

Lab-only settings, all in the test bed's copy of the config (never in the project):
TYPE="qemu" in the cloudvamp VM_MAD (OpenNebula's own switch to ``<domain type='qemu'>``, TCG:
KVM does not work on this machine), EMULATOR on the hosts (no /usr/bin/qemu-kvm-one here),
SCRIPTS_REMOTE_DIR back to its stock /var/tmp/one (stock probes hard-code it), monitord on
the lab address with MONITOR_ADDRESS="auto" (stock: the client takes the front-end address
from SSH_CLIENT), short probe periods, and system datastore 0 on TM_MAD "shared".

CLOUDVAMP_LAB=require or CLOUDVAMP_REAL=require (scripts/test under CI) turns "cannot bring
it up" into a failure; otherwise the tier is skipped with the reason. Teardown always runs.
CLOUDVAMP_STACK_PORT moves oned (default 2763; monitord and hook ports shift with it),
CLOUDVAMP_TESTBED points at the test bed's scripts.
"""

import json
import os
import re
import shutil
import subprocess
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
LAB_SCRIPTS = REPO / "tests" / "lab" / "scripts"
TESTBED = Path(os.environ.get("CLOUDVAMP_TESTBED", REPO.parent / "shared" / "oned-testbed"))
GUEST_CACHE = Path(os.environ.get("CLOUDVAMP_LAB_GUEST_CACHE", "/var/tmp/cloudvamp-lab-guest"))
ONE_PORT = int(os.environ.get("CLOUDVAMP_STACK_PORT", "2763"))  # never a user's 2633, nor the real tier's
MEASUREMENTS_FILE = Path(os.environ.get("CLOUDVAMP_STACK_MEASUREMENTS",
                                        "/tmp/cloudvamp-stack-measurements.json"))
REMOTE_DIR = "/var/tmp/one"  # SCRIPTS_REMOTE_DIR on the hosts (stock; probes hard-code it)
PROBE_PERIOD_S = 5
GUEST_MIB = 512
SURGE_MIB = 100   # what the guest adds on a surge (test_stack: it must fit at cvem's floor)
HOSTS = (("nodeA", "10.253.0.11", "10.253.1.11", "21"), ("nodeB", "10.253.0.12", "10.253.1.12", "22"))
NEEDED_COMMANDS = ("/usr/sbin/libvirtd", "/usr/sbin/sshd", "qemu-system-x86_64", "virsh", "ssh",
                   "ssh-keygen", "rsync", "ruby", "xmllint", "lspci", "busybox", "ip", "unshare",
                   "nsenter", "apt-get", "dpkg-deb")

_BRING_UP_FAILURE = []


def _unavailable(reason):
    _BRING_UP_FAILURE[:] = [reason]
    if "require" in (os.environ.get("CLOUDVAMP_LAB"), os.environ.get("CLOUDVAMP_REAL")):
        pytest.fail("stack tier required (CLOUDVAMP_LAB/CLOUDVAMP_REAL=require) but unavailable: "
                    + reason, pytrace=False)
    pytest.skip("stack tier skipped: " + reason)


def _run(command, timeout=300, **kwargs):
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if completed.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(map(str, command)), completed.returncode,
                                                     completed.stdout[-2000:], completed.stderr[-2000:]))
    return completed


def _tail(path, lines=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no %s)" % path


@dataclass
class Stack:
    root: Path          # this session's files: keys, ssh_config, host state, consoles
    prefix: Path        # the test bed's PREFIX
    endpoint: str
    session: str
    netns: dict         # host name -> network namespace
    measurements: dict = field(default_factory=dict)
    host_ids: dict = field(default_factory=dict)
    vm_id: int = -1

    @property
    def one(self):
        return self.prefix / "one"

    def rpc(self, method, *args):
        """Call oned; returns the result or raises with oned's error text."""
        proxy = xmlrpc.client.ServerProxy(self.endpoint)
        reply = getattr(proxy, method)(self.session, *args)
        if not reply[0]:
            raise RuntimeError("%s%r: %s" % (method, args, reply[1]))
        return reply[1]

    def vm_xml(self, vm_id):
        return self.rpc("one.vm.info", vm_id)

    def vm_state(self, vm_id):
        body = self.vm_xml(vm_id)
        state = int(re.search(r"<STATE>(\d+)</STATE>", body).group(1))
        lcm = int(re.search(r"<LCM_STATE>(\d+)</LCM_STATE>", body).group(1))
        hosts = re.findall(r"<HOSTNAME>([^<]*)</HOSTNAME>", body)
        return state, lcm, (hosts[-1] if hosts else None)

    def libvirt_uri(self, host):
        return "qemu+unix:///system?socket=%s/hosts/%s/run/libvirt-sock" % (self.root, host)

    def balloon(self, host, domain):
        """The balloon's statistics (KiB) as libvirt on that host reports them."""
        out = subprocess.run(["virsh", "-c", self.libvirt_uri(host), "dommemstat", domain],
                             capture_output=True, text=True, timeout=30).stdout
        return {k: int(v) for k, v in re.findall(r"^(\w+) (\d+)$", out, re.M)}

    def console(self, vm_id):
        return self.root / ("console-%s.log" % vm_id)

    def guest_memtotal_kib(self, vm_id, key="MemTotal"):
        """The guest's last /proc/meminfo figure it printed (MemTotal, MemAvailable)."""
        try:
            text = self.console("cvguest").read_text(errors="replace")
        except FileNotFoundError:
            return None
        found = re.findall(r"^MEMINFO .*%s=(\d+)" % key, text, re.M)
        return int(found[-1]) if found else None

    def vm_log(self, vm_id):
        try:
            return (self.one / "var" / "vms" / str(vm_id) / "vm.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logs(self, vm_id=None):
        """What each component logged (for assertion messages)."""
        parts = ["--- oned.log", _tail(self.one / "var/oned.log", 15),
                 "--- monitor.log", _tail(self.one / "var/monitor.log", 15)]
        if vm_id is not None:
            parts += ["--- vm.log", "\n".join(self.vm_log(vm_id).splitlines()[-25:])]
        return "\n".join(parts)

    def measure(self, name, value):
        self.measurements[name] = round(value, 3) if isinstance(value, float) else value

    def wait(self, what, predicate, timeout_s, poll_s=0.2, vm_id=None):
        """Seconds until predicate() is truthy; fails with the components' logs otherwise."""
        started = time.monotonic()
        while True:
            if predicate():
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                pytest.fail("%s: not within %d s\n%s" % (what, timeout_s, self.logs(vm_id)),
                            pytrace=False)
            time.sleep(poll_s)


def _preflight():
    if os.geteuid() != 0:
        _unavailable("needs root (network namespaces, libvirtd, sshd)")
    missing = [c for c in NEEDED_COMMANDS if not shutil.which(c)]
    if missing:
        _unavailable("missing %s (scripts/setup --lab installs them)" % ", ".join(missing))
    if not (TESTBED / "start.sh").is_file():
        _unavailable("no OpenNebula test bed at %s (set CLOUDVAMP_TESTBED)" % TESTBED)
    probe = subprocess.run(["/usr/bin/python3", "-c", "import libvirt"], capture_output=True)
    if probe.returncode != 0:
        _unavailable("the hosts' /usr/bin/python3 has no libvirt module (python3-libvirt)")


def _write_ssh_files(root):
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cloudvamp-stack",
          "-f", str(root / "id_ed25519")])
    shutil.copy(root / "id_ed25519.pub", root / "authorized_keys")
    (root / "known_hosts").write_text("")
    # the test-made identity oned's drivers (running as root) and the hosts use
    (root / "ssh_config").write_text(
        "Host *\n  User root\n  IdentityFile {r}/id_ed25519\n  IdentitiesOnly yes\n"
        "  UserKnownHostsFile {r}/known_hosts\n  StrictHostKeyChecking no\n  BatchMode yes\n"
        "  LogLevel ERROR\n  ConnectTimeout 10\n".format(r=root))
    (root / "front_hosts").write_text("127.0.0.1 localhost\n" + "".join(
        "%s %s\n" % (front_ip, name) for name, front_ip, _mig, _n in HOSTS))
    # an OpenNebula node's login environment: system python3 (with python3-libvirt) first on
    # PATH, and a no-op load_opennebula_paths for the monitoring client (Debian's gems)
    (root / "node-ruby").mkdir()
    (root / "node-ruby" / "load_opennebula_paths.rb").write_text(
        "# lab node: OpenNebula's Ruby gems come from Debian packages\n")
    (root / "host_bashrc").write_text("export RUBYLIB=%s\n" % (root / "node-ruby"))


def _edit(path, replacements):
    text = path.read_text()
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, flags=re.M)
        if count == 0:
            raise RuntimeError("%s: no line matches %r" % (path, pattern))
    path.write_text(text)


def _configure_testbed(prefix, root):
    """Install cloudvamp into the test bed's tree and apply the lab-only settings."""
    one = prefix / "one"
    _run([str(REPO / "install.sh"), "--prefix", str(one / "var/remotes"),
          "--etc-dir", str(one / "etc"), "--no-package"])
    _edit(one / "etc/oned.conf", [
        (r"^SCRIPTS_REMOTE_DIR=.*$", "SCRIPTS_REMOTE_DIR=" + REMOTE_DIR),
        (r'^(    TYPE\s+=\s+)"kvm",(\n    KEEP_SNAPSHOTS\s+=\s+"yes",\n    LIVE_RESIZE\s+=\s+"yes",\n'
         r'    SUPPORT_SHAREABLE\s+=\s+"yes"\n\]\n# END cloudvamp)', r'\1"qemu",\2'),
    ])
    _edit(one / "etc/monitord.conf", [
        (r"^    ADDRESS         = .*$", '    ADDRESS         = "10.253.0.1",'),
        (r"^    MONITOR_ADDRESS = .*$", '    MONITOR_ADDRESS = "auto",'),
        (r"^#?MONITORING_INTERVAL_HOST = .*$", "MONITORING_INTERVAL_HOST = 30"),
    ])


def _allocate_vm(stack, host_id):
    template = """
NAME = "cvguest"
CPU = "0.5"
VCPU = "1"
MEMORY = "{mib}"
MEMORY_MAX = "{mib}"
MEMORY_RESIZE_MODE = "BALLOONING"
OS = [ KERNEL = "{guest}/vmlinuz", INITRD = "{guest}/initrd.gz", KERNEL_CMD = "console=ttyS0 panic=-1",
       ARCH = "x86_64", MACHINE = "pc" ]
FEATURES = [ ACPI = "no", GUEST_AGENT = "no" ]
RAW = [ TYPE = "kvm", DATA = "<devices><serial type='file'><source path='{console}' append='on'/><target port='0'/></serial></devices>" ]
"""
    # deflate-on-OOM is on (cloudvamp deploy's default): cvem must read the guest's use right
    # while its balloon moves (it once regrew it 320 -> 352 MiB one cycle after settling).
    # the guest prints /proc/meminfo to its serial console, a file the test reads; the stack
    # runs one VM, so the console is named after the test's VM rather than its (later) id
    vm_id = stack.rpc("one.vm.allocate", template.format(
        mib=GUEST_MIB, guest=stack.root / "guest", console=stack.console("cvguest")), True)
    stack.rpc("one.vm.deploy", vm_id, host_id, False, -1, "")
    return vm_id


def _teardown(root, prefix, netns, stack):
    if stack is not None and stack.vm_id >= 0:
        try:
            stack.rpc("one.vm.action", "terminate-hard", stack.vm_id)
            time.sleep(2)
        except Exception:
            pass
    subprocess.run(["bash", str(TESTBED / "stop.sh")], env=dict(os.environ, PREFIX=str(prefix)),
                   capture_output=True, timeout=120)
    for name, ns in netns.items():
        subprocess.run(["bash", str(SCRIPTS / "stop-onehost.sh"), str(root), name, ns],
                       capture_output=True, timeout=60)
    subprocess.run(["bash", str(SCRIPTS / "net-down.sh")] + list(netns.values()),
                   capture_output=True, timeout=60)
    for mount_point in (REMOTE_DIR, "/var/tmp/one_db"):
        try:
            os.rmdir(mount_point)  # only if empty: the hosts' copies lived in their own mounts
        except OSError:
            pass
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(prefix, ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    if _BRING_UP_FAILURE:
        _unavailable(_BRING_UP_FAILURE[0])
    _preflight()
    started = time.monotonic()
    tag = "%d" % (os.getpid() % 100000)
    root = Path("/tmp/cloudvamp-stack-%s" % tag)
    prefix = Path("/tmp/cloudvamp-stack-tb-%s" % tag)
    netns = {"nodeA": "cvsA%s" % tag, "nodeB": "cvsB%s" % tag}
    for path in (root, prefix):
        shutil.rmtree(path, ignore_errors=True)
    root.mkdir(parents=True)
    env = dict(os.environ, PREFIX=str(prefix), ONE_PORT=str(ONE_PORT), FRESH="1", POPULATE="0",
               PROBE_PERIOD_S=str(PROBE_PERIOD_S))
    stack = None
    try:
        try:
            if not ((GUEST_CACHE / "vmlinuz").is_file() and (GUEST_CACHE / "initrd.gz").is_file()):
                _run(["bash", str(LAB_SCRIPTS / "build-guest.sh"), str(GUEST_CACHE)], timeout=600)
            _run(["bash", str(SCRIPTS / "build-stack-guest.sh"), str(GUEST_CACHE), str(root / "guest"),
                  str(SURGE_MIB)])
            _write_ssh_files(root)
            _run(["bash", str(SCRIPTS / "net-up.sh"), netns["nodeA"], netns["nodeB"],
                  "cvsa%s" % tag, "cvsb%s" % tag])
            for name, front_ip, mig_ip, number in HOSTS:
                _run(["bash", str(SCRIPTS / "start-onehost.sh"), str(root), name, netns[name],
                      front_ip, mig_ip, number, REMOTE_DIR])
            _run(["bash", str(TESTBED / "build.sh")], env=env, timeout=1800)
            _run(["bash", str(TESTBED / "start.sh")], env=env)      # writes the configs, bootstraps
            _run(["bash", str(TESTBED / "stop.sh")], env=env)
            _configure_testbed(prefix, root)
            _run(["bash", str(SCRIPTS / "start-oned.sh"), str(prefix), str(root)])
            stack = Stack(root=root, prefix=prefix,
                          endpoint="http://127.0.0.1:%d/RPC2" % ONE_PORT,
                          session=(prefix / "run/one_auth").read_text().strip(), netns=netns)
            stack.measure("stack_oned_ready_s", time.monotonic() - started)
            stack.rpc("one.datastore.update", 0, 'TM_MAD="shared"', 1)
            host_ids = {}
            for name, _front, _mig, _n in HOSTS:
                host_ids[name] = stack.rpc("one.host.allocate", name, "cloudvamp", "cloudvamp", -1)
                stack.rpc("one.host.update", host_ids[name],
                          'EMULATOR="%s"' % shutil.which("qemu-system-x86_64"), 1)
            stack.host_ids = host_ids
            allocated = time.monotonic()
            deadline = allocated + 240
            while True:
                states = {name: int(re.search(r"<STATE>(\d+)</STATE>", stack.rpc("one.host.info", hid)).group(1))
                          for name, hid in host_ids.items()}
                if all(s == 2 for s in states.values()):
                    break
                if any(s == 3 for s in states.values()) or time.monotonic() > deadline:
                    raise RuntimeError("hosts not MONITORED (states %s)\n%s" % (states, stack.logs()))
                time.sleep(1)
            stack.measure("hosts_monitored_after_allocate_s", time.monotonic() - allocated)
            deploy_started = time.monotonic()
            stack.vm_id = _allocate_vm(stack, host_ids["nodeA"])
            deadline = deploy_started + 300
            while stack.guest_memtotal_kib(stack.vm_id) is None:
                state, lcm, _host = stack.vm_state(stack.vm_id)
                broken = state not in (1, 3, 5) or (state == 3 and lcm not in (0, 1, 2, 3))
                if broken or time.monotonic() > deadline:
                    raise RuntimeError("VM %d not booted (state %d/%d)\n%s"
                                       % (stack.vm_id, state, lcm, stack.logs(stack.vm_id)))
                time.sleep(0.5)
            stack.measure("vm_deploy_to_guest_up_s", time.monotonic() - deploy_started)
            stack.measure("stack_setup_s", time.monotonic() - started)
        except Exception as error:
            _unavailable("stack bring-up failed: %s" % error)
        yield stack
    finally:
        _teardown(root, prefix, netns, stack)
        if stack is not None:
            _SESSION_MEASUREMENTS.update(stack.measurements)
            try:
                MEASUREMENTS_FILE.write_text(json.dumps(stack.measurements, indent=2, sort_keys=True) + "\n")
            except OSError:
                pass


_SESSION_MEASUREMENTS = {}


def pytest_terminal_summary(terminalreporter):
    if _SESSION_MEASUREMENTS:
        terminalreporter.section("cloudvamp stack measurements (s, KiB)")
        for name, value in sorted(_SESSION_MEASUREMENTS.items()):
            terminalreporter.write_line("%-44s %s" % (name, value))
        terminalreporter.write_line("(also in %s)" % MEASUREMENTS_FILE)
