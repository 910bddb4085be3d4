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
    port: int = None               # oned's port when this session started the bed

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

    def make_vm(self, host_id, memory_mib, memory_max_mib=None, name=None, extra="", wait=True,
                uid=None):
        """Allocate a VM on hold (owned by ``uid`` if given) and deploy it on host_id
        (enforce=false, like the bed); return its id."""
        template = 'NAME="%s"\nMEMORY="%d"\nMEMORY_RESIZE_MODE="BALLOONING"\nCPU="0.1"\nVCPU="1"\n' % (
            name or "real-%d" % time.monotonic_ns(), memory_mib)
        if memory_max_mib:
            template += 'MEMORY_MAX="%d"\n' % memory_max_mib
        vm_id = self.rpc("one.vm.allocate", template + extra, True)
        if uid is not None:
            self.rpc("one.vm.chown", vm_id, int(uid), -1)
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
                                   env=dict(os.environ, PREFIX=str(self.prefix),
                                            ONE_PORT=str(self.port or real_port()), **env),
                                   capture_output=True, text=True, timeout=timeout_s)
        if completed.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (name, completed.returncode,
                                                         completed.stdout[-2000:], completed.stderr[-2000:]))
        return completed.stdout

    def restart_oned(self, **env):
        """Stop and start oned on the same database (nothing repopulated)."""
        self.script("stop.sh")
        self.script("start.sh", POPULATE="0", **env)


# --- building blocks for cvem tests on the bed ------------------------------------------------
def _unique(prefix):
    return "%s-%d-%d" % (prefix, real_port(), time.monotonic_ns() % 10**9)


def make_cluster(one, vm_mads=("dummylive", "dummylive", "dummy"), timeout_s=120):
    """A new cluster with one new dummy host per VM_MAD (16 GiB each), all MONITORED: tests in
    it see no other VM (cvem's ``clusters`` filter) and migrate only inside it (oned's rule).
    Returns (cluster_id, [host_ids])."""
    name = _unique("c")
    cluster_id = one.rpc("one.cluster.allocate", name)
    for datastore in one.xml("one.datastorepool.info").findall("DATASTORE"):
        one.rpc("one.cluster.adddatastore", cluster_id, int(datastore.findtext("ID")))
    host_ids = [one.rpc("one.host.allocate", "%s-h%d" % (name, i), "dummy", mad, cluster_id)
                for i, mad in enumerate(vm_mads)]

    def monitored():
        states = {int(h.findtext("ID")): h.findtext("STATE") for h in one.hosts()}
        return all(states.get(h) == "2" for h in host_ids)
    one.wait(monitored, "hosts of cluster %s MONITORED" % name, timeout_s, step_s=1)
    return cluster_id, host_ids


def terminate_vms_of(one, cluster_id, timeout_s=60):
    """Terminate every VM of the cluster and wait until oned has them DONE."""
    def of_cluster():
        return [int(vm.findtext("ID")) for vm in one.vms()
                if vm.findtext("HISTORY_RECORDS/HISTORY[last()]/CID") == str(cluster_id)]
    for vm_id in of_cluster():
        try:
            one.rpc("one.vm.action", "terminate-hard", vm_id)
        except OneCallError:
            pass   # in a transient state: recover below
            try:
                one.rpc("one.vm.recover", vm_id, 3)   # delete
            except OneCallError:
                pass
    one.wait(lambda: not of_cluster(), "VMs of cluster %s DONE" % cluster_id, timeout_s)


def drop_cluster(one, cluster_id, host_ids):
    """Terminate the cluster's VMs, delete its hosts and the cluster (best effort)."""
    try:
        terminate_vms_of(one, cluster_id)
    except AssertionError:
        pass
    deadline = time.monotonic() + 60
    for host_id in host_ids:
        while time.monotonic() < deadline:
            try:
                one.rpc("one.host.delete", host_id)
                break
            except OneCallError:
                time.sleep(0.5)   # VMs still leaving it
    try:
        one.rpc("one.cluster.delete", cluster_id)
    except OneCallError:
        pass


def make_user(one, name=None, password="real-tier"):
    """A new core user (group users); returns (uid, "name:password")."""
    name = name or _unique("u")
    uid = one.rpc("one.user.allocate", name, password, "core", [])
    return uid, "%s:%s" % (name, password)


class GuestReports:
    """Guest figures published the way the OneGate publisher does (one merge-mode
    ``one.vm.update`` of USER_TEMPLATE per report, a new CLOUDVAMP_SEQ each time)."""

    def __init__(self, one):
        self.one = one
        self.seq = int(time.time())

    def publish(self, vm_id, used_kib, total_kib, swap_used_kib=0, pressure=False):
        self.seq += 1
        used_kib = min(int(used_kib), int(total_kib))
        attrs = {
            "CLOUDVAMP_MEM_TOTAL_KIB": int(total_kib),
            "CLOUDVAMP_MEM_AVAILABLE_KIB": int(total_kib) - used_kib,
            "CLOUDVAMP_MEM_USED_KIB": used_kib,
            "CLOUDVAMP_SWAP_USED_KIB": int(swap_used_kib),
            "CLOUDVAMP_SWAP_IN_KIB_S": "4096.0" if pressure else "0.0",
            "CLOUDVAMP_SWAP_OUT_KIB_S": "1024.0" if pressure else "0.0",
            "CLOUDVAMP_PSI_SOME_AVG10": "30.00" if pressure else "0.00",
            "CLOUDVAMP_PSI_FULL_AVG10": "12.00" if pressure else "0.00",
            "CLOUDVAMP_SEQ": self.seq,
            "CLOUDVAMP_TIME": int(time.time()),
        }
        body = "\n".join('%s="%s"' % kv for kv in attrs.items())
        for attempt in range(5):
            try:
                self.one.rpc("one.vm.update", int(vm_id), body, 1)
                return
            except OneCallError as error:
                # oned on sqlite under load (a busy CI machine, oned just restarted): a
                # locked database reads as "Error getting virtual machine" / "Cannot update"
                if attempt == 4 or not any(m in str(error) for m in (
                        "Error getting virtual machine", "Cannot update", "authenticated")):
                    raise
                time.sleep(0.5 * (attempt + 1))

    def memory_kib(self, vm_id):
        return int(self.one.vm(vm_id).findtext("TEMPLATE/MEMORY")) * 1024


class FastClock:
    """cvem's clock, moved on by hand (a 10 s period without waiting for it)."""

    def __init__(self):
        self.offset_s = 0.0

    def __call__(self):
        return time.time() + self.offset_s

    def advance(self, seconds):
        self.offset_s += seconds


def cvem_config_text(one, state_db, clusters="", users="", extra="", guards="cooldown_s = 0\n",
                     period_s=10.0):
    """A cvem.conf for this OpenNebula: dummylive is the bed's live-resize VM_MAD."""
    auth_file = Path(state_db).parent / "one_auth"
    auth_file.write_text(one.auth + "\n")
    auth_file.chmod(0o600)
    return ("[cvem]\nperiod_s = %s\nstate_db = %s\nlive_resize_vm_mads = cloudvamp,kvm,dummylive\n"
            "clusters = %s\nusers = %s\nstale_after_s = 120\n%s\n"
            "[one]\nendpoint = %s\nauth_file = %s\ntimeout_s = 30\n[guards]\n%s"
            % (period_s, state_db, clusters, users, extra, one.endpoint, auth_file, guards))


def cvem_service(one, tmp_dir, **config):
    """cvem's Service on this OpenNebula (pyone over XML-RPC, a state DB in ``tmp_dir``)."""
    from cvem.adapters.one import OneCloud
    from cvem.config import parse_config
    from cvem.service.runner import Service
    from cvem.service.state import StateStore
    state_db = Path(tmp_dir) / "state.db"
    cfg = parse_config(cvem_config_text(one, state_db, **config), "real-tier")
    return Service(cfg, OneCloud(one.endpoint, one.auth, timeout_s=30), StateStore(str(state_db)))


def remember_nominal(service, vm_id, nominal_mib):
    """What cvem's state DB holds for a VM it shrank earlier from ``nominal_mib``."""
    memory_kib = int(service.cloud.vm_brief(vm_id).memory_mib) * 1024
    service.sizes[vm_id] = (nominal_mib * 1024, memory_kib)
    service.store.save_sizes({vm_id: service.sizes[vm_id]})
