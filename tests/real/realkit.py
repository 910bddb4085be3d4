"""Helpers of the real tier: a handle on a running OpenNebula (XML-RPC, the test bed's scripts,
the dummy driver's failure scripts). Imported by tests/real/conftest.py and by tests."""

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DEFAULT_PORT = 2733
START_TIMEOUT_S = 300


def real_port():
    return int(os.environ.get("CLOUDVAMP_REAL_PORT", DEFAULT_PORT))


class OneCallError(RuntimeError):
    """oned answered a call with failure: the message is oned's."""


@dataclass
class RealOne:
    endpoint: str
    auth: str                      # "user:password", what every XML-RPC call carries first
    prefix: Path = None            # None when pointed at an existing OpenNebula
    testbed_dir: Path = None
    env: dict = field(default_factory=dict)   # ONE_XMLRPC, ONE_AUTH, ONE_LOCATION, ... for children

    @property
    def managed(self):
        """True when this session started the bed (its dummy drivers and scripts are ours)."""
        return self.prefix is not None

    @property
    def one_location(self):
        return Path(self.env["ONE_LOCATION"]) if "ONE_LOCATION" in self.env else None

    @property
    def auth_file(self):
        return Path(self.env["ONE_AUTH"])

    # --- XML-RPC -------------------------------------------------------------------------------
    def rpc(self, method, *args):
        """Call oned; return the answer's value, raise OneCallError with oned's message."""
        answer = xmlrpc.client.ServerProxy(self.endpoint).__getattr__(method)(self.auth, *args)
        if not answer[0]:
            raise OneCallError("%s%r: %s" % (method, args, answer[1]))
        return answer[1]

    def xml(self, method, *args):
        return ET.fromstring(self.rpc(method, *args))

    def vm(self, vm_id):
        return self.xml("one.vm.info", int(vm_id), False)

    def vms(self):
        return self.xml("one.vmpool.infoextended", -2, -1, -1, -1).findall("VM")

    def hosts(self):
        return self.xml("one.hostpool.info").findall("HOST")

    def wait(self, predicate, what, timeout_s=120, step_s=0.5):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(step_s)
        raise AssertionError("timed out after %d s waiting for %s" % (timeout_s, what))

    def wait_running(self, vm_id, timeout_s=120):
        def running():
            vm = self.vm(vm_id)
            return vm.findtext("STATE") == "3" and vm.findtext("LCM_STATE") == "3" and vm
        return self.wait(running, "VM %s RUNNING" % vm_id, timeout_s)

    def make_vm(self, host_id, memory_mib, memory_max_mib=None, name=None, extra="", wait=True):
        """Allocate a VM on hold and deploy it on host_id (enforce=false, like the bed); return its id."""
        template = 'NAME="%s"\nMEMORY="%d"\nMEMORY_RESIZE_MODE="BALLOONING"\nCPU="0.1"\nVCPU="1"\n' % (
            name or "real-%d" % time.monotonic_ns(), memory_mib)
        if memory_max_mib:
            template += 'MEMORY_MAX="%d"\n' % memory_max_mib
        vm_id = self.rpc("one.vm.allocate", template + extra, True)
        self.rpc("one.vm.deploy", vm_id, int(host_id), False, -1, "")
        if wait:
            self.wait_running(vm_id)
        return vm_id

    # --- test-bed scripts (only when this session started the bed) -----------------------------
    def _require_bed(self):
        if not self.managed:
            pytest.skip("needs the test bed's scripts and dummy drivers (CLOUDVAMP_REAL_ENDPOINT set)")

    def testbed(self, *args, timeout_s=300):
        """Run testbed.py (setup, report, show, profile VM P, token VM, rpc ...); return stdout."""
        self._require_bed()
        completed = subprocess.run([sys.executable, str(self.testbed_dir / "testbed.py")] + list(map(str, args)),
                                   env=dict(os.environ, **self.env), capture_output=True, text=True,
                                   timeout=timeout_s)
        if completed.returncode != 0:
            raise RuntimeError("testbed.py %s: %s%s" % (" ".join(map(str, args)), completed.stdout,
                                                        completed.stderr))
        return completed.stdout

    def dummy_actions(self, action, *lines):
        """Script the dummy VMM driver: one line per call, cycling ("success [s]", "failure [s]",
        "-" never answers). No lines = back to always succeeding."""
        self._require_bed()
        path = Path(self.env["DUMMY_ACTIONS_DIR"]) / action
        if lines:
            path.write_text("".join(line + "\n" for line in lines))
        elif path.exists():
            path.unlink()

    def script(self, name, timeout_s=START_TIMEOUT_S, **env):
        """Run one of the bed's shell scripts (start.sh, stop.sh) with this bed's prefix and port."""
        self._require_bed()
        completed = subprocess.run(["bash", str(self.testbed_dir / name)],
                                   env=dict(os.environ, PREFIX=str(self.prefix), ONE_PORT=str(real_port()),
                                            **env),
                                   capture_output=True, text=True, timeout=timeout_s)
        if completed.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (name, completed.returncode,
                                                         completed.stdout[-2000:], completed.stderr[-2000:]))
        return completed.stdout

    def restart_oned(self, **env):
        """Stop and start oned on the same database (nothing repopulated)."""
        self.script("stop.sh")
        self.script("start.sh", POPULATE="0", **env)
