"""The in-guest publisher through the release's real OneGate server (issue 15, item 2).

A VM allocated with CONTEXT TOKEN="YES" on the real oned 7.4; ``onegate/cloudvamp-publisher
--once`` reads a fake /proc and PUTs its figures with the VM's real token to the real OneGate,
which merges them into USER_TEMPLATE; a cvem cycle shrinks the idle VM; a surge report (PSI,
swap in use and swapping) sent the same way makes cvem grow it back.
"""
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realkit import cvem_service

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from tests.doubles.guest import FakeProc  # noqa: E402

MIB_KIB = 1024
SIZE_MIB = 4096


def _onegate_endpoint(one):
    conf = (one.one_location / "etc" / "oned.conf").read_text()
    found = re.search(r'^\s*ONEGATE_ENDPOINT\s*=\s*"([^"]+)"', conf, re.M)
    if not found:
        pytest.skip("the test bed runs without OneGate (start it with ONEGATE=1)")
    return found.group(1)


class Guest:
    """The publisher as one-context runs it in the guest: endpoint, VMID and token in its env."""

    def __init__(self, one, vm_id, proc_dir, work_dir):
        self.env = {"ONEGATE_ENDPOINT": _onegate_endpoint(one), "VMID": str(vm_id),
                    "TOKENTXT": one.testbed("token", vm_id).strip(), "PATH": "/usr/bin:/bin"}
        self.proc_dir, self.work_dir = proc_dir, work_dir
        self.last_run_s = 0.0

    def publish(self, while_sampling=None):
        """One ``--once`` run; ``while_sampling()`` is called every 0.2 s while it runs (its
        two samples, a rate window apart, see what changed in between)."""
        time.sleep(max(0.0, self.last_run_s + 1.1 - time.time()))   # SEQ is the wall-clock second
        command = [sys.executable, str(REPO / "onegate" / "cloudvamp-publisher"), "--once",
                   "--verbose", "--proc", str(self.proc_dir), "--rate-window", "1",
                   "--one-env", str(self.work_dir / "no-one-env"),
                   "--context-dir", str(self.work_dir / "no-context-cd")]
        proc = subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        while while_sampling and proc.poll() is None:
            while_sampling()
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=60)
        self.last_run_s = time.time()
        assert proc.returncode == 0, out
        return out


def _user_template(one, vm_id):
    return {e.tag: e.text for e in one.vm(vm_id).find("USER_TEMPLATE")}


def _idle_guest(real_one, empty_cluster, tmp_path):
    """(cluster, VM with a OneGate token on host A, its fake /proc using 500 MiB, Guest)."""
    if not real_one.managed:
        pytest.skip("needs the test bed's OneGate server and testbed.py token")
    cluster_id, (a, _b, _d) = empty_cluster
    vm = real_one.make_vm(a, SIZE_MIB, SIZE_MIB, extra='CONTEXT=[TOKEN="YES"]\n')
    fake = FakeProc(tmp_path / "proc").write(mem_total_kib=SIZE_MIB * MIB_KIB,
                                             mem_available_kib=(SIZE_MIB - 500) * MIB_KIB)
    return cluster_id, vm, fake, Guest(real_one, vm, fake.root, tmp_path)


def test_publisher_reports_through_real_onegate_and_cvem_shrinks_then_grows(real_one, empty_cluster,
                                                                            tmp_path):
    cluster_id, vm, fake, guest = _idle_guest(real_one, empty_cluster, tmp_path)

    guest.publish()
    keys = _user_template(real_one, vm)
    assert int(keys["CLOUDVAMP_MEM_TOTAL_KIB"]) == SIZE_MIB * MIB_KIB, keys
    assert int(keys["CLOUDVAMP_MEM_AVAILABLE_KIB"]) == (SIZE_MIB - 500) * MIB_KIB, keys
    assert "CLOUDVAMP_SEQ" in keys and "CLOUDVAMP_PSI_SOME_AVG10" in keys, keys

    svc = cvem_service(real_one, tmp_path, clusters=str(cluster_id),
                       guards="cooldown_s = 0\nmax_shrink_ratio = 0.5\n")
    report = svc.cycle()
    shrunk = [s for s in report.result.applied if s.vm_id == vm and not s.is_grow]
    assert shrunk, report.plan.actions
    real_one.wait_running(vm, 60)
    shrunk_mib = int(real_one.vm(vm).findtext("TEMPLATE/MEMORY"))
    assert 500 < shrunk_mib < SIZE_MIB

    # the guest surges: nearly all of its (ballooned) memory in use, swapping, PSI up
    def surge(swapped_pages=0):
        fake.write(mem_total_kib=shrunk_mib * MIB_KIB, mem_available_kib=40 * MIB_KIB,
                   swap_free_kib=1048576 - 300 * MIB_KIB, swapped_in_pages=swapped_pages,
                   swapped_out_pages=swapped_pages // 2, psi=(45.0, 20.0))
    surge()
    guest.publish(while_sampling=lambda: surge(2000))
    keys = _user_template(real_one, vm)
    assert float(keys["CLOUDVAMP_PSI_SOME_AVG10"]) == pytest.approx(45.0), keys
    assert int(keys["CLOUDVAMP_SWAP_USED_KIB"]) == 300 * MIB_KIB, keys
    assert float(keys["CLOUDVAMP_SWAP_IN_KIB_S"]) > 0, keys

    report = svc.cycle()
    grown = [g for g in report.result.applied if g.vm_id == vm and g.is_grow]
    assert grown, (report.plan.actions, keys)
    real_one.wait_running(vm, 60)
    assert shrunk_mib < int(real_one.vm(vm).findtext("TEMPLATE/MEMORY")) <= SIZE_MIB


def test_publisher_loop_writes_on_change_through_real_onegate(real_one, empty_cluster, tmp_path):
    """The loop (not --once) with its default 30 min heartbeat: one PUT for a quiet guest,
    one more when used memory moves past the deadband; nothing else reaches oned."""
    _cluster, vm, fake, guest = _idle_guest(real_one, empty_cluster, tmp_path)
    command = [sys.executable, str(REPO / "onegate" / "cloudvamp-publisher"), "--verbose",
               "--interval", "0.3", "--cycles", "16", "--timeout", "60", "--proc", str(fake.root),
               "--one-env", str(tmp_path / "no-one-env"),
               "--context-dir", str(tmp_path / "no-context-cd")]
    proc = subprocess.Popen(command, env=guest.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "published seq=" in line and len([x for x in lines if "published seq=" in x]) == 1:
            # the guest now uses 300 MiB more: past the 64 MiB / 2 % deadband
            fake.write(mem_total_kib=SIZE_MIB * MIB_KIB,
                       mem_available_kib=(SIZE_MIB - 800) * MIB_KIB)
    proc.wait(timeout=60)
    out = "".join(lines)
    assert proc.returncode == 0, out
    published = re.findall(r"published seq=(\d+) \(([^)]+)\)", out)
    assert [reason for _seq, reason in published] == ["first", "used moved"], out
    keys = _user_template(real_one, vm)
    assert keys["CLOUDVAMP_SEQ"] == published[-1][0]
    assert int(keys["CLOUDVAMP_MEM_USED_KIB"]) == 800 * MIB_KIB, keys
