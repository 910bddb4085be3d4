"""Helpers shared by the host tests (fast tier) and the lab tier.

They run cloudvamp's probes and actions the way OpenNebula does: as executables inside an
installed remotes tree (made by ``install.sh --prefix``), with oned's argv, the XML on stdin
and ``LIBVIRT_URI`` in the environment.
"""

import base64
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from one_template import as_dict, parse_template

REPO = Path(__file__).resolve().parents[2]
HOST_LIB = REPO / "remotes" / "lib" / "python"
INSTALL_SH = REPO / "install.sh"
VM_PROBE = "im/cloudvamp-probes.d/vm/monitor/cloudvamp_balloon.py"
HOST_PROBE = "im/cloudvamp-probes.d/host/system/cloudvamp_host_memory.py"
# domains of the fast tier's test-driver host (tests/host/conftest.py node_uri)
UUID_ONE_5 = "5e5e5e5e-0000-4000-8000-000000000005"
UUID_ONE_6 = "6e6e6e6e-0000-4000-8000-000000000006"
UUID_ONE_7 = "7e7e7e7e-0000-4000-8000-000000000007"
UUID_WILD = "99999999-0000-4000-8000-000000000099"
DRIVER_LOG_PREFIX = re.compile(r"^(ERROR|INFO|WARN|DEBUG):")

# What monitord-client writes to every probe's stdin (shape of monitord.conf's
# MONITOR_CONFIGURATION plus HOST_ID).
MONITOR_CONFIGURATION_XML = textwrap.dedent("""\
    <MONITOR_CONFIGURATION><HOST_ID>3</HOST_ID>
      <NETWORK><ADDRESS>auto</ADDRESS><PORT>4124</PORT><THREADS>8</THREADS></NETWORK>
      <PROBES_PERIOD><BEACON_HOST>30</BEACON_HOST><SYSTEM_HOST>600</SYSTEM_HOST>
      <MONITOR_HOST>120</MONITOR_HOST><STATE_VM>5</STATE_VM><MONITOR_VM>30</MONITOR_VM>
      <SYNC_STATE_VM>180</SYNC_STATE_VM></PROBES_PERIOD>
    </MONITOR_CONFIGURATION>
    """)

# A stock kvm action stand-in: records its argv and stdin, prints/exits as told by env.
RECORDING_KVM_ACTION = textwrap.dedent("""\
    #!/bin/sh
    # test stand-in for OpenNebula's kvm/{action}: record the call, then behave as told
    log=${{CLOUDVAMP_FAKE_KVM_LOG:-/dev/null}}
    {{ echo "ACTION {action}"; echo "ARGV $*"; echo "STDIN"; cat; echo; echo "END"; }} >> "$log"
    [ -n "$CLOUDVAMP_FAKE_KVM_STDOUT" ] && echo "$CLOUDVAMP_FAKE_KVM_STDOUT"
    [ -n "$CLOUDVAMP_FAKE_KVM_STDERR" ] && echo "$CLOUDVAMP_FAKE_KVM_STDERR" >&2
    exit ${{CLOUDVAMP_FAKE_KVM_RC:-0}}
    """)


@dataclass
class FakeOne:
    root: Path
    remotes: Path
    etc: Path
    systemd: Path


def build_fake_one(root, kvm_actions=None):
    """A minimal OpenNebula front-end tree: stock kvm remotes (stand-ins) and oned/monitord conf."""
    root = Path(root)
    remotes = root / "remotes"
    kvm = remotes / "vmm" / "kvm"
    kvm.mkdir(parents=True)
    actions = {name: RECORDING_KVM_ACTION.format(action=name)
               for name in ("deploy", "shutdown", "cancel", "reboot", "resize", "migrate", "poll")}
    actions.update(kvm_actions or {})
    for name, text in actions.items():
        (kvm / name).write_text(text)
        (kvm / name).chmod(0o755)
    (kvm / "opennebula_vm.rb").write_text("# stock helper, not an action\n")
    probes = remotes / "im" / "kvm-probes.d"
    for category, files in {"host/beacon": ["date.sh"], "host/system": ["linux_host.rb"],
                            "host/monitor": ["linux_usage.rb"], "vm/monitor": ["poll.rb"],
                            "vm/status": ["state.rb"], "vm/snapshot": ["recovery.rb"]}.items():
        (probes / category).mkdir(parents=True)
        for name in files:
            # a stock probe that prints a known key, so merged output can be checked
            probe = probes / category / name
            probe.write_text("#!/bin/sh\necho STOCK_%s=1\n" % re.sub(r"\W", "_", name).upper())
            probe.chmod(0o755)
    (remotes / "im" / "kvm.d").mkdir()
    (remotes / "im" / "kvm.d" / "monitord-client_control.sh").write_text("#!/bin/sh\n")
    (remotes / "etc" / "vmm" / "kvm").mkdir(parents=True)
    (remotes / "etc" / "vmm" / "kvm" / "kvmrc").write_text(
        "export LIBVIRT_URI=qemu:///system\nexport QEMU_PROTOCOL=qemu+ssh\n")
    etc = root / "etc"
    etc.mkdir()
    (etc / "oned.conf").write_text('VM_MAD = [\n    NAME = "kvm",\n    LIVE_RESIZE = "yes"\n]\n')
    (etc / "monitord.conf").write_text('IM_MAD = [\n    NAME = "kvm"\n]\n')
    (root / "systemd").mkdir()
    return FakeOne(root=root, remotes=remotes, etc=etc, systemd=root / "systemd")


def run_install(fake, *options, check=True, env=None):
    command = ["bash", str(INSTALL_SH), "--prefix", str(fake.remotes), "--etc-dir", str(fake.etc),
               "--systemd-dir", str(fake.systemd), "--venv", str(fake.root / "venv")] + list(options)
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    if check and completed.returncode != 0:
        raise AssertionError("install.sh failed: %s\n%s" % (completed.stdout, completed.stderr))
    return completed


def driver_env(libvirt_uri=None, **overrides):
    """Environment of a probe/action: the venv's python3 first on PATH (hosts have
    python3-libvirt; here the venv has libvirt-python), nothing cloudvamp-related inherited."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CLOUDVAMP_") and k not in ("LIBVIRT_URI", "LIBVIRT_DEFAULT_URI")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    if libvirt_uri:
        env["LIBVIRT_URI"] = libvirt_uri
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def run_probe(remotes, probe, env, stdin=MONITOR_CONFIGURATION_XML, timeout=60, prefix=()):
    """Run a probe as monitord-client does: ``<probe> <im_mad> <host_id> <hostname>``."""
    return subprocess.run(list(prefix) + [str(Path(remotes) / probe), "cloudvamp", "3", "node1"],
                          input=stdin, capture_output=True, text=True, env=env, timeout=timeout)


def run_action(remotes, action, args, stdin_xml, env, timeout=120, prefix=()):
    """Run a VMM action as one_vmm_exec does: ``vmm/cloudvamp/<action> <args...>``."""
    return subprocess.run(list(prefix) + [str(Path(remotes) / "vmm" / "cloudvamp" / action)]
                          + [str(a) for a in args],
                          input=stdin_xml, capture_output=True, text=True, env=env, timeout=timeout)


def error_lines(stderr):
    """stderr lines oned would show as the error (not forwarded to the VM log)."""
    return [line for line in stderr.splitlines() if line.strip() and not DRIVER_LOG_PREFIX.match(line)]


def action_xml(deploy_id, vm_id, memory_mib, old_memory_mib=None, mode=None, vcpu=None,
               old_vcpu=None, host="node1", migr_host=None):
    """A VMM_DRIVER_ACTION_DATA document shaped like one_vmm_exec's (trimmed VM body)."""
    resize = ""
    if old_memory_mib is not None or old_vcpu is not None:
        resize = "<RESIZE>%s%s</RESIZE>" % (
            "" if old_memory_mib is None else "<MEMORY>%d</MEMORY>" % old_memory_mib,
            "" if old_vcpu is None else "<VCPU>%d</VCPU>" % old_vcpu)
    return textwrap.dedent("""\
        <VMM_DRIVER_ACTION_DATA>
          <HOST>{host}</HOST><MIGR_HOST>{migr}</MIGR_HOST><DEPLOY_ID>{deploy_id}</DEPLOY_ID>
          <VM><ID>{vm_id}</ID><NAME>vm{vm_id}</NAME><STATE>3</STATE><LCM_STATE>66</LCM_STATE>
            <TEMPLATE><CPU>1</CPU>{vcpu}<MEMORY>{memory}</MEMORY><MEMORY_MAX>4096</MEMORY_MAX>{mode}{resize}</TEMPLATE>
            <USER_TEMPLATE/>
          </VM>
        </VMM_DRIVER_ACTION_DATA>
        """).format(host=host, migr=migr_host or "", deploy_id=deploy_id, vm_id=vm_id,
                    memory=memory_mib, resize=resize,
                    vcpu="" if vcpu is None else "<VCPU>%d</VCPU>" % vcpu,
                    mode="" if mode is None else "<MEMORY_RESIZE_MODE>%s</MEMORY_RESIZE_MODE>" % mode)


def vm_reports(stdout):
    """Parse vm/monitor output: {ID: {"DEPLOY_ID":..., "MONITOR": {KEY: value}}}."""
    reports = {}
    for name, value in parse_template(stdout):
        assert name == "VM" and isinstance(value, dict), (name, value)
        assert set(value) == {"ID", "DEPLOY_ID", "MONITOR"}, value
        monitor_text = base64.b64decode(value["MONITOR"], validate=True).decode()
        reports[value["ID"]] = {"DEPLOY_ID": value["DEPLOY_ID"],
                                "MONITOR": as_dict(parse_template(monitor_text)),
                                "MONITOR_TEXT": monitor_text}
    return reports


def fake_domain_xml(name, uuid, max_mib, current_mib, balloon=True, stats_period_s=None,
                    running=True, recorded_target_mib=None):
    """``recorded_target_mib``: the balloon target a cloudvamp resize left in the metadata."""
    balloon_xml = ""
    if balloon:
        stats = "" if stats_period_s is None else "<stats period='%d'/>" % stats_period_s
        balloon_xml = "<memballoon model='virtio'>%s</memballoon>" % stats
    return textwrap.dedent("""\
        <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
          <name>{name}</name><uuid>{uuid}</uuid>{metadata}
          <memory unit='MiB'>{max}</memory><currentMemory unit='MiB'>{cur}</currentMemory>
          <vcpu>1</vcpu><os><type>hvm</type></os>
          <devices>{balloon}</devices>
          {runstate}
        </domain>""").format(name=name, uuid=uuid, max=max_mib, cur=current_mib, balloon=balloon_xml,
                            runstate="" if running else "<test:runstate>5</test:runstate>",
                            metadata="" if recorded_target_mib is None else
                            "<metadata><cloudvamp:balloon xmlns:cloudvamp='urn:cloudvamp:balloon:1'"
                            " target_kib='%d'/></metadata>" % (recorded_target_mib * 1024))


def write_test_node(path, domains, host_memory_kib=16777216):
    """A libvirt test-driver node file (``test:///<path>``); each open gets a fresh copy."""
    Path(path).write_text(textwrap.dedent("""\
        <node>
          <cpu><mhz>2400</mhz><model>x86_64</model><active>4</active>
            <nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads></cpu>
          <memory>{memory}</memory>
        {domains}
        </node>
        """).format(memory=host_memory_kib, domains="\n".join(domains)))
    return "test://" + str(Path(path).resolve())
