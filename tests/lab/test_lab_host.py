"""cloudvamp's probes and actions on real libvirtd + qemu/TCG guests with a virtio balloon.

The tests share two guests booted by the session fixture and run in file order:
one-101 (balloon stats every 2 s) is resized and probed; one-102 (no stats period at boot)
gets its period from the probe and is live-migrated nodeA -> nodeB -> nodeA.
"""

import re
import time

import pytest
from hostkit import HOST_PROBE, VM_PROBE, action_xml, error_lines, run_action, run_probe, vm_reports
from one_template import as_dict, parse_template

pytestmark = pytest.mark.lab

UUID_101 = "c10da000-0000-4000-8000-000000000101"
UUID_102 = "c10da000-0000-4000-8000-000000000102"
MAX_MIB = 512
GUEST_WAIT_S = 15  # the guest prints /proc/meminfo every 2 s; TCG is slow under load


def lv(uri):
    import libvirt
    return libvirt.open(uri)


def wait_guest_memtotal(lab, domain_name, expected_kib, since_s, tolerance_kib=1024):
    """Seconds until the guest's own MemTotal (serial console) is within tolerance of expected."""
    deadline = time.monotonic() + GUEST_WAIT_S
    while time.monotonic() < deadline:
        for line in reversed(lab.meminfo_lines(domain_name)):
            if abs(line["MemTotal"] - expected_kib) <= tolerance_kib:
                return time.monotonic() - since_s
            break
        time.sleep(0.1)
    raise AssertionError("guest %s MemTotal never reached %d kB; last: %s"
                         % (domain_name, expected_kib, lab.guest_meminfo(domain_name)))


def libvirt_current_kib(dom, expected_kib, timeout_s=10):
    """libvirt's current memory (info) once it shows expected_kib, or its last value.

    It is not asked from qemu: libvirt keeps it from qemu's BALLOON_CHANGE events, which
    qemu sends at most once a second, so it can trail the balloon (seen: seconds on a
    loaded machine) while memoryStats' 'actual' is already there.
    """
    deadline = time.monotonic() + timeout_s
    while dom.info()[2] != expected_kib and time.monotonic() < deadline:
        time.sleep(0.2)
    return dom.info()[2]


def resize(lab, host, deploy_id, vm_id, new_mib, old_mib):
    started = time.monotonic()
    result = run_action(lab.one.remotes, "resize", [deploy_id, vm_id, host.name],
                        action_xml(deploy_id, vm_id, new_mib, old_mib, mode="BALLOONING"),
                        lab.env(), prefix=host.on_host)
    return result, time.monotonic() - started


# the resize action accepts a balloon within this of its target (CLOUDVAMP_BALLOON_TOLERANCE_KIB)
BALLOON_TOLERANCE_KIB = 1024


@pytest.fixture(scope="module")
def full_memtotal_kib(lab):
    """Guest MemTotal at the full 512 MiB (kernel-reserved memory is not in MemTotal)."""
    return lab.guest_meminfo("one-101")["MemTotal"]


def test_resize_shrinks_and_grows_a_running_guest(lab, full_memtotal_kib):
    node_a = lab.hosts["nodeA"]
    for step, (old_mib, new_mib) in enumerate([(512, 256), (256, 448), (448, 384)]):
        started = time.monotonic()
        result, action_s = resize(lab, node_a, UUID_101, 101, new_mib, old_mib)
        assert result.returncode == 0, result.stderr
        assert error_lines(result.stderr) == [] and result.stdout == ""
        actual_kib = int(re.search(r"actual (\d+) KiB", result.stderr).group(1))
        assert abs(actual_kib - new_mib * 1024) <= BALLOON_TOLERANCE_KIB, result.stderr
        guest_s = wait_guest_memtotal(lab, "one-101",
                                      full_memtotal_kib - (MAX_MIB - new_mib) * 1024, started)
        kind = "shrink" if new_mib < old_mib else "grow"
        lab.measure("resize_%d_%s_%d_to_%d_action_s" % (step, kind, old_mib, new_mib), action_s)
        lab.measure("resize_%d_%s_%d_to_%d_guest_memtotal_s" % (step, kind, old_mib, new_mib), guest_s)
    dom = lv(node_a.socket_uri).lookupByUUIDString(UUID_101)
    assert dom.memoryStats()["actual"] == 384 * 1024
    assert libvirt_current_kib(dom, 384 * 1024) == 384 * 1024


def test_resize_refuses_more_than_max_memory(lab):
    result, _ = resize(lab, lab.hosts["nodeA"], UUID_101, 101, 1024, 384)
    assert result.returncode == 1
    [message] = error_lines(result.stderr)
    assert "maxMemory of 512 MiB" in message
    dom = lv(lab.hosts["nodeA"].socket_uri).lookupByUUIDString(UUID_101)
    assert dom.memoryStats()["actual"] == 384 * 1024
    assert libvirt_current_kib(dom, 384 * 1024) == 384 * 1024


def test_vm_probe_sets_a_stats_period_so_guest_figures_flow(lab):
    """Without a period the guest's figures are the ones it pushed once at boot, frozen."""
    node_a = lab.hosts["nodeA"]
    dom = lv(node_a.socket_uri).lookupByUUIDString(UUID_102)
    env = lab.env(CLOUDVAMP_BALLOON_STATS_PERIOD_S=2)
    assert "<stats period" not in dom.XMLDesc(0)  # booted without one
    frozen_time = dom.memoryStats().get("last_update", 0)
    run_probe(lab.one.remotes, VM_PROBE, env, prefix=node_a.on_host)
    assert "<stats period='2'/>" in dom.XMLDesc(0)  # the probe set one (live)
    started = time.monotonic()
    deadline = started + GUEST_WAIT_S
    while True:
        monitor = vm_reports(run_probe(lab.one.remotes, VM_PROBE, env,
                                       prefix=node_a.on_host).stdout)["102"]["MONITOR"]
        if int(monitor["CLOUDVAMP_STATS_TIME"]) > frozen_time:
            break
        assert time.monotonic() < deadline, "guest statistics never refreshed: %s" % monitor
        time.sleep(0.5)
    lab.measure("guest_stats_fresh_after_period_set_s", time.monotonic() - started)
    assert int(monitor["CLOUDVAMP_AVAILABLE_KIB"]) == lab.guest_meminfo("one-102")["MemTotal"]
    assert time.time() - int(monitor["CLOUDVAMP_STATS_TIME"]) < 10


def test_vm_probe_reports_the_real_balloon(lab):
    node_a = lab.hosts["nodeA"]
    time.sleep(2.5)  # one statistics period after the last resize
    started = time.monotonic()
    result = run_probe(lab.one.remotes, VM_PROBE, lab.env(), prefix=node_a.on_host)
    lab.measure("vm_probe_2_guests_s", time.monotonic() - started)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    reports = vm_reports(result.stdout)
    assert set(reports) == {"101", "102"}
    assert reports["101"]["DEPLOY_ID"] == UUID_101
    one101 = {k: int(v) for k, v in reports["101"]["MONITOR"].items()}
    guest = lab.guest_meminfo("one-101")
    assert one101["CLOUDVAMP_BALLOON_ACTUAL_KIB"] == 384 * 1024
    assert one101["CLOUDVAMP_MAX_KIB"] == MAX_MIB * 1024
    # qemu's guest statistics are the guest's own /proc/meminfo (lab.md §4):
    # available = MemTotal, unused = MemFree, usable = MemAvailable
    assert one101["CLOUDVAMP_AVAILABLE_KIB"] == guest["MemTotal"]
    assert abs(one101["CLOUDVAMP_UNUSED_KIB"] - guest["MemFree"]) < 8 * 1024
    assert abs(one101["CLOUDVAMP_USABLE_KIB"] - guest["MemAvailable"]) < 8 * 1024
    assert one101["CLOUDVAMP_RSS_KIB"] > 64 * 1024
    assert time.time() - one101["CLOUDVAMP_STATS_TIME"] < 30
    lab.measure("probe_one101_monitor", reports["101"]["MONITOR"])


def test_host_probe_reports_stolen_memory(lab):
    result = run_probe(lab.one.remotes, HOST_PROBE, lab.env(), prefix=lab.hosts["nodeA"].on_host)
    assert result.returncode == 0 and result.stderr == ""
    values = as_dict(parse_template(result.stdout))
    assert values["CLOUDVAMP_STOLEN_KIB"] == str((512 - 384) * 1024)  # one-101; one-102 is full
    real_total = next(int(line.split()[1]) for line in open("/proc/meminfo")
                      if line.startswith("MemTotal:"))
    assert values["CLOUDVAMP_HOST_MEM_TOTAL_KIB"] == str(real_total)


def migrate(lab, source, destination, deploy_id, vm_id, memory_mib, **env):
    started = time.monotonic()
    result = run_action(lab.one.remotes, "migrate",
                        [deploy_id, destination.name, source.name, vm_id, source.name],
                        action_xml(deploy_id, vm_id, memory_mib, host=source.name,
                                   migr_host=destination.name),
                        lab.env(**env), prefix=source.on_host)
    return result, time.monotonic() - started


def assert_guest_alive(lab, domain_name, timeout_s=GUEST_WAIT_S):
    count = len(lab.meminfo_lines(domain_name))
    deadline = time.monotonic() + timeout_s
    while len(lab.meminfo_lines(domain_name)) <= count:
        assert time.monotonic() < deadline, "guest %s stopped printing" % domain_name
        time.sleep(0.2)


def test_migrate_keeps_the_balloon_on_the_destination(lab, full_memtotal_kib):
    node_a, node_b = lab.hosts["nodeA"], lab.hosts["nodeB"]
    started = time.monotonic()
    result, _ = resize(lab, node_a, UUID_102, 102, 320, 512)
    assert result.returncode == 0, result.stderr
    wait_guest_memtotal(lab, "one-102", full_memtotal_kib - (512 - 320) * 1024, started)

    result, migrate_s = migrate(lab, node_a, node_b, UUID_102, 102, 320)
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == []
    held = re.search(r"held across migration to nodeB: (\d+) KiB", result.stderr)
    assert held and abs(int(held.group(1)) - 320 * 1024) <= BALLOON_TOLERANCE_KIB, result.stderr
    lab.measure("migrate_wrapper_A_to_B_s", migrate_s)
    dom = lv(node_b.socket_uri).lookupByUUIDString(UUID_102)
    assert dom.isActive()
    assert abs(dom.memoryStats()["actual"] - 320 * 1024) <= BALLOON_TOLERANCE_KIB
    assert UUID_102 not in [d.UUIDString() for d in lv(node_a.socket_uri).listAllDomains()]
    assert_guest_alive(lab, "one-102")
    assert abs(lab.guest_meminfo("one-102")["MemTotal"]
               - (full_memtotal_kib - (512 - 320) * 1024)) <= 1024


def test_migrate_restores_a_balloon_lost_on_arrival(lab, full_memtotal_kib):
    node_a, node_b = lab.hosts["nodeA"], lab.hosts["nodeB"]
    result, migrate_s = migrate(lab, node_b, node_a, UUID_102, 102, 320,
                                CLOUDVAMP_LAB_LOSE_BALLOON=1)
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == []
    # the stand-in's setmem to 512 MiB may still be deflating when the wrapper looks
    lost = re.search(r"is (\d+) KiB on nodeA after migration, setting it back to %d KiB"
                     % (320 * 1024), result.stderr)
    assert lost and int(lost.group(1)) > 320 * 1024, result.stderr
    restored = re.search(r"restored on nodeA: (\d+) KiB after ([\d.]+) s", result.stderr)
    assert restored, result.stderr
    assert abs(int(restored.group(1)) - 320 * 1024) <= BALLOON_TOLERANCE_KIB, result.stderr
    lab.measure("migrate_wrapper_B_to_A_with_restore_s", migrate_s)
    lab.measure("migrate_balloon_restore_on_destination_s", float(restored.group(2)))
    dom = lv(node_a.socket_uri).lookupByUUIDString(UUID_102)
    assert abs(dom.memoryStats()["actual"] - 320 * 1024) <= BALLOON_TOLERANCE_KIB
    started = time.monotonic()
    wait_guest_memtotal(lab, "one-102", full_memtotal_kib - (512 - 320) * 1024, started - 5)
    assert_guest_alive(lab, "one-102")


def test_resize_after_migration_works_on_the_new_host(lab, full_memtotal_kib):
    node_a = lab.hosts["nodeA"]
    started = time.monotonic()
    result, action_s = resize(lab, node_a, UUID_102, 102, 512, 320)
    assert result.returncode == 0, result.stderr
    wait_guest_memtotal(lab, "one-102", full_memtotal_kib, started)
    lab.measure("resize_after_migration_grow_320_to_512_action_s", action_s)
