"""`cvem run` lends memory to OpenNebula's stock scheduler on a real oned 7.4 (marker `real`).

One dummy host (16 GiB) holds three 5 GiB VMs: full on nominal memory, so a pending 4 GiB VM
stays PENDING. `cvem run` (the installed CLI, as a process) with the `percentile` lending
strategy and the `none` sizing policy — VMs keep their MEMORY, so any room the scheduler
finds can only come from lent memory — writes a negative RESERVED_MEM (MAX_MEM above the
physical memory) and the real rank scheduler deploys the pending VM. When the guests become
hungry the strategy takes the memory back (RESERVED_MEM rises until MAX_MEM − MEM_USAGE is below
the next VM's size) and the next VM stays PENDING.

The test bed (`../shared/oned-testbed`) is started here with its own scripts; PREFIX and
ONE_PORT come from CVEM_TESTBED_PREFIX / CVEM_TESTBED_PORT (defaults: a temporary folder,
the real tier's second-bed port, CLOUDVAMP_REAL_PORT2 or CLOUDVAMP_REAL_PORT + 10). Without
the test bed it skips, except under CI=true where it fails.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import xmlrpc.client
from pathlib import Path

import pytest
from realkit import real_port

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
BED = ROOT.parent / "shared" / "oned-testbed"
GIB_KIB = 1024 * 1024


def _unavailable(reason):
    if os.environ.get("CI") == "true" or os.environ.get("CLOUDVAMP_REAL") == "require":
        pytest.fail(f"real tier required under CI: {reason}")
    pytest.skip(reason)


class Bed:
    def __init__(self, prefix: Path, port: int):
        self.prefix, self.port = prefix, port
        self.env = dict(os.environ, PREFIX=str(prefix), ONE_PORT=str(port))
        self.endpoint = f"http://127.0.0.1:{port}/RPC2"
        self.auth = prefix / "run" / "one_auth"
        self.proxy = xmlrpc.client.ServerProxy(self.endpoint)

    def rpc(self, method, *args):
        res = getattr(self.proxy, method)(self.auth.read_text().strip(), *args)
        assert res[0], f"{method}{args}: {res[1]}"
        return res[1]

    def host(self, host_id=0):
        return ET.fromstring(self.rpc("one.host.info", host_id))

    def vm_state(self, vm_id):
        vm = ET.fromstring(self.rpc("one.vm.info", vm_id))
        return int(vm.findtext("STATE")), vm.findtext("HISTORY_RECORDS/HISTORY[last()]/HID")

    def testbed(self, *args):
        env = dict(self.env, ONE_XMLRPC=self.endpoint, ONE_AUTH=str(self.auth),
                   TESTBED_STATE=str(self.prefix / "run" / "profiles.json"))
        subprocess.run([sys.executable, str(BED / "testbed.py"), *args], env=env, check=True,
                       capture_output=True, timeout=120)


def _script(bed, name, **env):
    """Run a test-bed script with its output in a file: oned and its drivers, started in the
    background, inherit it and must not be left writing into a closed pipe."""
    with open(bed.prefix / f"{name}.log", "a") as out:
        done = subprocess.run(["bash", str(BED / name)], env=dict(bed.env, **env), stdout=out,
                              stderr=subprocess.STDOUT, timeout=1800)
    if done.returncode:
        _unavailable(f"{name} failed: {(bed.prefix / f'{name}.log').read_text()[-800:]}")


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    if not (BED / "start.sh").exists():
        _unavailable(f"no OpenNebula test bed at {BED}")
    if os.geteuid() != 0:
        _unavailable("the test bed needs root (Debian packages)")
    prefix = Path(os.environ.get("CVEM_TESTBED_PREFIX") or tmp_path_factory.mktemp("tb"))
    prefix.mkdir(parents=True, exist_ok=True)
    # the second bed's port (conftest.own_one; modules run one after the other), never a
    # fixed one: two engineers' or CI's runs at once would share it
    b = Bed(prefix, int(os.environ.get("CVEM_TESTBED_PORT") or os.environ.get("CLOUDVAMP_REAL_PORT2")
                        or real_port() + 10))
    _script(b, "stop.sh")   # a bed left over by a killed session
    _script(b, "build.sh")
    _script(b, "start.sh", FRESH="1", LIVE_HOSTS="1", VMS_PER_HOST="3", VM_MEMORY_MIB="5120",
            VM_MEMORY_MAX_MIB="5120", PROBE_PERIOD_S="5", REPORT_LOOP_S="2")
    yield b
    _script(b, "stop.sh")


def _wait(pred, what, timeout_s=180.0, step_s=2.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(step_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for "
                f"{what() if callable(what) else what}")


def _new_vm(bed, name, mib=4096):
    tmpl = (f'NAME="{name}"\nMEMORY="{mib}"\nMEMORY_MAX="{mib}"\nCPU="0.1"\nVCPU="1"\n'
            'MEMORY_RESIZE_MODE="BALLOONING"\n')
    return bed.rpc("one.vm.allocate", tmpl, False)   # not on hold: the scheduler places it


def _reserved_kib(bed):
    text = bed.host().findtext("TEMPLATE/RESERVED_MEM") or ""
    return int(text) if text.strip() else 0


def _room_kib(bed):
    share = bed.host().find("HOST_SHARE")
    return int(share.findtext("MAX_MEM")) - int(share.findtext("MEM_USAGE"))


def test_scheduler_places_a_vm_only_thanks_to_lent_memory_and_stops_when_taken_back(bed, tmp_path):
    cvem = shutil.which("cvem", path=str(ROOT / ".venv" / "bin")) or "cvem"
    probe = _new_vm(bed, "before-lending")
    time.sleep(20)   # a scheduling window passes: no room on nominal memory
    assert bed.vm_state(probe)[0] == 1, "placed before any lending: the bed is not full"
    assert _room_kib(bed) < 4 * GIB_KIB
    bed.rpc("one.vm.recover", probe, 3)   # delete it: oned's retry of old pending VMs is slow

    conf = tmp_path / "cvem.conf"
    conf.write_text(
        f"[cvem]\npolicy = none\nperiod_s = 2\nstate_db = {tmp_path / 'state.db'}\n"
        "live_resize_vm_mads = dummylive\nstale_after_s = 30\n"
        f"[one]\nendpoint = {bed.endpoint}\nauth_file = {bed.auth}\n"
        "[lend]\nstrategy = percentile\nwindow_s = 10\nhistory_windows = 1\n"
        "min_change_kib = 0\n")
    log = tmp_path / "cvem.log"
    proc = subprocess.Popen([cvem, "--config", str(conf), "run"], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, text=True)
    def alive(pred):
        def check():
            assert proc.poll() is None, f"cvem run exited: {log.read_text()[-3000:]}"
            return pred()
        return check
    try:
        _wait(alive(lambda: _reserved_kib(bed) < 0 and _room_kib(bed) >= 4 * GIB_KIB),
              "a negative RESERVED_MEM with room for 4 GiB", 120)
        share = bed.host().find("HOST_SHARE")
        total, usage = int(share.findtext("TOTAL_MEM")), int(share.findtext("MEM_USAGE"))
        assert int(share.findtext("MAX_MEM")) > total
        assert total - usage < 4 * GIB_KIB      # without the loan it would not fit
        first = _new_vm(bed, "wants-lent-memory")
        _wait(lambda: bed.vm_state(first) == (3, "0"),
              lambda: f"the new VM deployed on host 0 (room {_room_kib(bed)} KiB, "
                      f"state {bed.vm_state(first)}); cvem said:\n{log.read_text()[-3000:]}", 120)

        lent_most = -_reserved_kib(bed)
        # the guests need their memory: the strategy takes the loan back
        for vm in (0, 1, 2, first):
            bed.testbed("profile", str(vm), "hungry")
        _wait(lambda: _room_kib(bed) < 4 * GIB_KIB and -_reserved_kib(bed) < lent_most,
              lambda: f"the loan taken back (RESERVED_MEM {_reserved_kib(bed)}, room "
                      f"{_room_kib(bed)} KiB); cvem said:\n{log.read_text()[-3000:]}", 120)
        second = _new_vm(bed, "finds-no-room")
        time.sleep(40)   # the new VM opens a scheduling window (SCHED_MAX_WND_TIME 10 s)
        assert bed.vm_state(second)[0] == 1, "placed although the loan was taken back"
        assert _room_kib(bed) < 4 * GIB_KIB
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    out = log.read_text()
    assert proc.returncode == 0, out
    assert "action=lend RESERVED_MEM=" in out
    assert "Traceback" not in out
