"""deflate-on-OOM and free page reporting on real qemu/TCG guests (issue 14).

Three guests on nodeB are deployed through ``vmm/cloudvamp/deploy`` from an OpenNebula-shaped
deployment file (no ``<memballoon>``, as LibVirtDriverKVM.cc writes it): one-201's template
turns both options off (``CLOUDVAMP_AUTODEFLATE``/``CLOUDVAMP_FREE_PAGE_REPORTING="NO"``),
one-202 gets both, one-203 only deflate-on-OOM (the free page reporting control). All have
512 MiB; the resize action inflates their balloons to 192 MiB;
then each guest's init takes 256 MiB of anonymous memory in 32 MiB parts (the hog: asked for
on its kernel command line, see scripts/build-guest.sh), holds it, and frees it.

What must happen: one-201's OOM killer kills the hog; one-202 kills nothing, its balloon
deflates by itself, the probe says so, cvem decides to grow it at once and the resize action
settles the target there; after one-202's hog frees its memory, qemu's RSS on the host falls
with no resize, and one-203's (same hog, no free page reporting) does not.
"""

import math
import re
import textwrap
import threading
import time

import pytest
from hostkit import VM_PROBE, error_lines, run_action, run_probe, vm_reports

pytestmark = pytest.mark.lab

MAX_MIB = 512
TARGET_MIB = 192
HOG_MIB = 256
HOG_BELOW_KIB = 100 * 1024    # the hog starts once MemAvailable is below this (inflated)
HOLD_S = 15
HOG_TIMEOUT_S = 240           # TCG under load; measured well below (see lab measurements)
FREE_PAGE_WAIT_S = 40
GUESTS = {  # vm id: (uuid, VM template switches)
    201: ("c10da000-0000-4000-8000-000000000201",
          "<CLOUDVAMP_AUTODEFLATE>NO</CLOUDVAMP_AUTODEFLATE>"
          "<CLOUDVAMP_FREE_PAGE_REPORTING>NO</CLOUDVAMP_FREE_PAGE_REPORTING>"),
    202: ("c10da000-0000-4000-8000-000000000202", ""),
    203: ("c10da000-0000-4000-8000-000000000203",
          "<CLOUDVAMP_FREE_PAGE_REPORTING>NO</CLOUDVAMP_FREE_PAGE_REPORTING>"),
}


def one_deployment(lab, vm_id, uuid):
    """A deployment file as OpenNebula 7.4 writes it (tabs, metadata, no <memballoon>)."""
    cmdline = "console=ttyS0 panic=-1 cloudvamp.hog=%d cloudvamp.hog_below=%d cloudvamp.hold=%d" % (
        HOG_MIB, HOG_BELOW_KIB, HOLD_S)
    return textwrap.dedent("""\
        <domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
        \t<name>one-{id}</name>
        \t<title>hog-{id}</title>
        \t<uuid>{uuid}</uuid>
        \t<vcpu>1</vcpu>
        \t<cputune>
        \t\t<shares>1024</shares>
        \t</cputune>
        \t<memory>{max_kib}</memory>
        \t<currentMemory>{max_kib}</currentMemory>
        \t<os>
        \t\t<type arch='x86_64' machine='pc'>hvm</type>
        \t\t<kernel>{guest}/vmlinuz</kernel>
        \t\t<initrd>{guest}/initrd.gz</initrd>
        \t\t<cmdline>{cmdline}</cmdline>
        \t</os>
        \t<on_poweroff>destroy</on_poweroff>
        \t<on_reboot>destroy</on_reboot>
        \t<on_crash>destroy</on_crash>
        \t<devices>
        \t\t<emulator><![CDATA[/usr/bin/qemu-system-x86_64]]></emulator>
        \t\t<controller type='usb' model='none'/>
        \t\t<serial type='file'><source path='{console}' append='on'/><target port='0'/></serial>
        \t\t<video><model type='none'/></video>
        \t</devices>
        \t<metadata>
        \t\t<one:vm xmlns:one="http://opennebula.org/xmlns/libvirt/1.0">
        \t\t\t<one:name><![CDATA[hog-{id}]]></one:name>
        \t\t</one:vm>
        \t</metadata>
        </domain>
        """).format(id=vm_id, uuid=uuid, max_kib=MAX_MIB * 1024, guest=lab.guest_dir,
                    cmdline=cmdline, console=lab.console("one-%d" % vm_id))


def lv(uri):
    import libvirt
    return libvirt.open(uri)


def console_text(lab, vm_id):
    try:
        return lab.console("one-%d" % vm_id).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def hog_lines(lab, vm_id, step):
    """[(guest uptime s, rest of line)] of the guest's ``HOG <step>`` lines."""
    return [(float(m.group(2)), m.group(3)) for m in re.finditer(
        r"^HOG %s (part=\d+ )?t=([\d.]+)(.*)$" % step, console_text(lab, vm_id), re.M)]


def hog_line(lab, vm_id, step):
    lines = hog_lines(lab, vm_id, step)
    return lines[0] if lines else None


def qemu_rss_kib(host, domain_name):
    pid = (host.home / "run" / "qemu" / ("%s.pid" % domain_name)).read_text().strip()
    with open("/proc/%s/status" % pid) as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


class Sampler(threading.Thread):
    """Every 0.25 s: (monotonic s, {vm: (qemu RSS KiB, balloon actual KiB, libvirt current KiB)})."""

    def __init__(self, host):
        super().__init__(daemon=True)
        self.host, self.samples, self.stopping = host, [], threading.Event()

    def run(self):
        conn = lv(self.host.socket_uri)
        doms = {vm: conn.lookupByUUIDString(uuid) for vm, (uuid, _) in GUESTS.items()}
        while not self.stopping.is_set():
            row = {}
            for vm, dom in doms.items():
                try:
                    row[vm] = (qemu_rss_kib(self.host, "one-%d" % vm),
                               int(dom.memoryStats()["actual"]), int(dom.info()[2]))
                except Exception:
                    pass
            self.samples.append((time.monotonic(), row))
            time.sleep(0.25)

    def series(self, vm, column):
        return [(t, row[vm][column]) for t, row in self.samples if vm in row]


def resize(lab, host, vm_id, new_mib, old_mib):
    uuid = GUESTS[vm_id][0]
    from hostkit import action_xml
    return run_action(lab.one.remotes, "resize", [uuid, vm_id, host.name],
                      action_xml(uuid, vm_id, new_mib, old_mib, mode="BALLOONING"),
                      lab.env(), prefix=host.on_host)


@pytest.fixture(scope="module")
def hog_run(lab):
    """Deploy both guests, inflate, let the hogs run; everything the tests look at."""
    node_b = lab.hosts["nodeB"]
    run = {"deploy": {}}
    conn = lv(node_b.socket_uri)
    try:
        for vm_id, (uuid, switches) in GUESTS.items():
            vm_dir = lab.root / "datastores" / "0" / str(vm_id)
            vm_dir.mkdir(parents=True)
            (vm_dir / "vm.xml").write_text("<VM><ID>%d</ID><TEMPLATE/><USER_TEMPLATE>%s"
                                           "</USER_TEMPLATE></VM>" % (vm_id, switches))
            xml = one_deployment(lab, vm_id, uuid)
            result = run_action(lab.one.remotes, "deploy",
                                [vm_dir / "deployment.0", node_b.name, vm_id, node_b.name],
                                xml, lab.env(), prefix=node_b.on_host)
            run["deploy"][vm_id] = (result, xml, vm_dir / "deployment.0")
            assert result.returncode == 0, result.stderr
        started = time.monotonic()
        while not all(lab.guest_meminfo("one-%d" % vm) for vm in GUESTS):
            assert time.monotonic() - started < 180, "hog guests did not boot"
            time.sleep(0.2)
        lab.measure("deflate_guests_boot_s", time.monotonic() - started)
        run["full_meminfo"] = {vm: lab.guest_meminfo("one-%d" % vm) for vm in GUESTS}
        sampler = Sampler(node_b)
        sampler.start()
        time.sleep(1)
        run["resize_started"] = time.monotonic()
        for vm_id in GUESTS:
            result = resize(lab, node_b, vm_id, TARGET_MIB, MAX_MIB)
            assert result.returncode == 0, result.stderr
        run["resized_at"] = time.monotonic()
        run["resized_meminfo"], run["end_seen"] = {}, {}
        deadline = time.monotonic() + HOG_TIMEOUT_S
        while not all(hog_line(lab, vm, "END") for vm in GUESTS):
            if time.monotonic() > deadline:
                raise AssertionError("hogs did not finish in %d s: %s" % (
                    HOG_TIMEOUT_S, {vm: console_text(lab, vm)[-2000:] for vm in GUESTS}))
            for vm in GUESTS:
                if vm not in run["end_seen"] and hog_line(lab, vm, "END"):
                    run["end_seen"][vm] = time.monotonic()
                if vm not in run["resized_meminfo"] and hog_line(lab, vm, "START"):
                    lines = lab.meminfo_lines("one-%d" % vm)
                    run["resized_meminfo"][vm] = lines[-1]
            time.sleep(0.25)
        for vm in GUESTS:
            run["end_seen"].setdefault(vm, time.monotonic())
        # free page reporting: watch one-202's RSS until it has fallen, without any resize
        deadline = time.monotonic() + FREE_PAGE_WAIT_S
        while time.monotonic() < deadline:
            rss = sampler.series(202, 0)
            if rss and rss[-1][1] < min_after(sampler, 202, run["resize_started"]) + 48 * 1024:
                break
            time.sleep(0.5)
        # as long again for the control without free page reporting
        time.sleep(max(2.0, max(run["end_seen"].values()) + 8.0 - time.monotonic()))
        sampler.stopping.set()
        sampler.join(10)
        run["sampler"] = sampler
        run["consoles"] = {vm: console_text(lab, vm) for vm in GUESTS}
        yield run
    finally:
        for vm_id, (uuid, _) in GUESTS.items():
            try:
                conn.lookupByUUIDString(uuid).destroy()
            except Exception:
                pass


def min_after(sampler, vm, since):
    values = [v for t, v in sampler.series(vm, 0) if t >= since]
    return min(values) if values else math.inf


def test_deploy_wrapper_puts_the_options_on_a_real_domain(lab, hog_run):
    node_b = lab.hosts["nodeB"]
    for vm_id, (uuid, _) in GUESTS.items():
        result, xml, dep_file = hog_run["deploy"][vm_id]
        assert result.stdout.strip() == uuid        # the stock deploy's deploy_id, passed on
        assert error_lines(result.stderr) == []
        written = dep_file.read_text()
        # the deployment file differs from OpenNebula's by the inserted balloon line only
        balloon = re.search(r"\t\t<memballoon [^\n]*\n", written).group(0)
        assert written.replace(balloon, "") == xml
    live = {vm: lv(node_b.socket_uri).lookupByUUIDString(uuid).XMLDesc(0)
            for vm, (uuid, _) in GUESTS.items()}
    assert "autodeflate" not in live[201] and "freePageReporting" not in live[201]
    assert "<memballoon model='virtio' autodeflate='on' freePageReporting='on'>" in live[202]
    assert "<memballoon model='virtio' autodeflate='on'>" in live[203]
    assert all("<stats period='10'/>" in xml for xml in live.values())


def test_deflate_off_guest_oom_killer_fires(lab, hog_run):
    console = hog_run["consoles"][201]
    kills = re.findall(r"Out of memory: Killed process \d+ \((\w+)\)", console)
    assert kills, console[-3000:]
    lost = hog_lines(lab, 201, "LOST")
    assert lost, console[-3000:]
    started, _ = hog_line(lab, 201, "START")
    lab.measure("deflate_off_oom_kills", len(kills))
    lab.measure("deflate_off_oom_victims", ",".join(sorted(set(kills))))
    lab.measure("deflate_off_hog_parts_lost", len(lost))
    lab.measure("deflate_off_hog_parts_held", len(hog_lines(lab, 201, "HELD")))
    lab.measure("deflate_off_first_kill_after_s", lost[0][0] - started)
    # the balloon stayed where the host put it
    actual = hog_run["sampler"].series(201, 1)
    assert max(v for t, v in actual if t >= hog_run["resized_at"]) <= TARGET_MIB * 1024 + 1024


def test_deflate_on_guest_kills_nothing_and_deflates_its_balloon(lab, hog_run):
    console = hog_run["consoles"][202]
    assert "Killed process" not in console and "invoked oom-killer" not in console, console[-3000:]
    assert hog_lines(lab, 202, "LOST") == []
    held = hog_lines(lab, 202, "HELD")
    assert len(held) == HOG_MIB // 32
    started, _ = hog_line(lab, 202, "START")
    _, end_rest = hog_line(lab, 202, "END")
    assert "oom_kills=0" in end_rest
    actual = [(t, v) for t, v in hog_run["sampler"].series(202, 1) if t > hog_run["resized_at"]]
    peak_kib = max(v for _, v in actual)
    deflated_kib = peak_kib - TARGET_MIB * 1024
    assert deflated_kib >= 64 * 1024, actual[-20:]
    lab.measure("deflate_on_hog_all_held_after_s", max(t for t, _ in held) - started)
    lab.measure("deflate_on_balloon_deflated_kib", deflated_kib)
    lab.measure("deflate_on_balloon_peak_actual_kib", peak_kib)
    first_up = next(t for t, v in actual if v > TARGET_MIB * 1024 + 1024)
    most = next(t for t, v in actual if v >= TARGET_MIB * 1024 + 0.9 * deflated_kib)
    top = next(t for t, v in actual if v == peak_kib)
    lab.measure("deflate_on_balloon_90pct_deflated_after_s", most - first_up)
    # libvirt's current memory follows the balloon once the guest deflated it: the target
    # can only be known from what cloudvamp recorded (the domain metadata)
    current = dict(hog_run["sampler"].series(202, 2))
    lab.measure("deflate_on_libvirt_current_at_peak_kib", current.get(top))
    # with deflate-on-OOM the guest keeps counting its balloon in MemTotal
    lab.measure("deflate_on_guest_memtotal_full_kib", hog_run["full_meminfo"][202]["MemTotal"])
    lab.measure("deflate_on_guest_memtotal_inflated_kib",
                hog_run["resized_meminfo"].get(202, {}).get("MemTotal"))
    lab.measure("deflate_off_guest_memtotal_inflated_kib",
                hog_run["resized_meminfo"].get(201, {}).get("MemTotal"))


def test_deflate_probe_reports_the_guest_took_memory_back(lab, hog_run):
    node_b = lab.hosts["nodeB"]
    result = run_probe(lab.one.remotes, VM_PROBE, lab.env(), prefix=node_b.on_host)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    reports = {vm: r["MONITOR"] for vm, r in vm_reports(result.stdout).items()}
    one202, one201 = reports["202"], reports["201"]
    assert int(one202["CLOUDVAMP_BALLOON_TARGET_KIB"]) == TARGET_MIB * 1024
    deflated = int(one202["CLOUDVAMP_SELF_DEFLATED_KIB"])
    assert deflated == int(one202["CLOUDVAMP_BALLOON_ACTUAL_KIB"]) - TARGET_MIB * 1024
    assert deflated >= 64 * 1024
    assert one201["CLOUDVAMP_SELF_DEFLATED_KIB"] == "0"
    assert (one201["CLOUDVAMP_BALLOON_AUTODEFLATE"], one202["CLOUDVAMP_BALLOON_AUTODEFLATE"]) \
        == ("0", "1")
    lab.measure("deflate_probe_self_deflated_kib", deflated)
    hog_run["probe_202"] = one202


def cvem_plan_for(monitor, vm_id, memory_mib):
    """What cvem decides for a VM at MEMORY=memory_mib from these probe figures (no OneGate)."""
    from cvem.config import ServiceParams
    from cvem.core.decide import Decider, decide
    from cvem.core.fleet import FleetHistory
    from cvem.policies.base import load_policy
    from cvem.ports import CloudRead, RawHost, RawVm
    from cvem.service.observe import observe
    vm = RawVm(vm_id=vm_id, name="hog", uid=0, gid=0, uname="oneadmin", gname="oneadmin",
               state=3, lcm_state=3, memory_mib=memory_mib, memory_max_mib=MAX_MIB,
               resize_mode="BALLOONING", host_id=0, host_name="nodeB", vm_mad="cloudvamp",
               cluster_id=0)
    host = RawHost(host_id=0, name="nodeB", state=2, vm_mad="cloudvamp", im_mad="cloudvamp",
                   cluster_id=0, total_mem_kib=16 << 20, max_mem_kib=16 << 20,
                   mem_usage_kib=memory_mib * 1024, reserved_mem="")
    params = ServiceParams()
    obs = observe(CloudRead(vms=[vm], hosts=[host], monitoring={vm_id: monitor}), params, {},
                  time.time())
    plan, _ = decide(obs.snapshot, FleetHistory(), Decider(load_policy("default")))
    return obs, plan


def test_deflate_cvem_grows_at_once_and_the_resize_settles_the_target(lab, hog_run):
    node_b = lab.hosts["nodeB"]
    obs, plan = cvem_plan_for(hog_run["probe_202"], 202, TARGET_MIB)
    status = obs.statuses[0]
    assert status.managed and status.self_deflated_kib >= 64 * 1024, status
    assert "deflate-on-OOM): pressure" in status.reason
    # the guest's used figure no longer counts the balloon it keeps in MemTotal
    lab.measure("deflate_cvem_guest_used_kib", status.guest_used_kib)
    [grow] = plan.resizes()
    actual_kib = int(hog_run["probe_202"]["CLOUDVAMP_BALLOON_ACTUAL_KIB"])
    assert grow.is_grow and grow.reason == "pressure" and grow.to_kib >= actual_kib, grow
    settled_mib = grow.to_kib // 1024
    started = time.monotonic()
    result = resize(lab, node_b, 202, settled_mib, TARGET_MIB)
    assert result.returncode == 0, result.stderr
    lab.measure("deflate_settle_resize_s", time.monotonic() - started)
    lab.measure("deflate_settle_target_mib", settled_mib)
    dom = lv(node_b.socket_uri).lookupByUUIDString(GUESTS[202][0])
    assert int(dom.memoryStats()["actual"]) == settled_mib * 1024
    report = vm_reports(run_probe(lab.one.remotes, VM_PROBE, lab.env(),
                                  prefix=node_b.on_host).stdout)["202"]["MONITOR"]
    assert report["CLOUDVAMP_BALLOON_TARGET_KIB"] == str(settled_mib * 1024)
    assert report["CLOUDVAMP_SELF_DEFLATED_KIB"] == "0"
    # settled: no more pressure at the new size
    obs, _ = cvem_plan_for(report, 202, settled_mib)
    assert obs.statuses[0].self_deflated_kib == 0


def test_free_page_reporting_gives_freed_memory_back_to_the_host(lab, hog_run):
    sampler = hog_run["sampler"]
    end_202 = hog_end_time(lab, hog_run, 202)
    rss = sampler.series(202, 0)
    during = max(v for t, v in rss if t <= end_202)
    after = [(t, v) for t, v in rss if t > end_202]
    low = min(v for _, v in after)
    fell_by = during - low
    assert fell_by >= HOG_MIB * 1024 // 2, (during, low, rss[-10:])
    reached = next(t for t, v in after if v <= during - HOG_MIB * 1024 // 2)
    lab.measure("free_page_rss_during_hog_kib", during)
    lab.measure("free_page_rss_after_kib", low)
    lab.measure("free_page_rss_fell_kib", fell_by)
    lab.measure("free_page_rss_half_hog_back_after_s", reached - end_202)
    # the same hog without free page reporting: qemu keeps what the guest once touched
    end_203 = hog_end_time(lab, hog_run, 203)
    rss_203 = sampler.series(203, 0)
    during_203 = max(v for t, v in rss_203 if t <= end_203)
    after_203 = min(v for t, v in rss_203 if t > end_203)
    lab.measure("free_page_off_rss_during_hog_kib", during_203)
    lab.measure("free_page_off_rss_after_kib", after_203)
    assert during_203 - after_203 <= 32 * 1024, (during_203, after_203)
    lab.measure("free_page_off_oom_victim_guest_rss_kib", max(v for _, v in sampler.series(201, 0)))
    # no resize happened in between: the balloon target is still the one set before the hog
    actual = [v for t, v in sampler.series(202, 1) if t > end_202]
    assert max(actual) - min(actual) <= 1024


def hog_end_time(lab, hog_run, vm_id):
    """Host time when the guest's hog freed its memory: the HOG END line comes 1 s later."""
    return hog_run["end_seen"][vm_id] - 1.0
