"""vm/monitor and host/system probes, run as monitord-client runs them, on the test driver."""

import base64
import time

import cvem.keys
import hostkit
from hostkit import UUID_ONE_5, UUID_ONE_6
from hostkit import HOST_PROBE, VM_PROBE, driver_env, run_probe, vm_reports
from one_template import as_dict, parse_template


def test_vm_probe_reports_each_running_one_domain(installed, node_uri):
    result = run_probe(installed.remotes, VM_PROBE, driver_env(node_uri))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    reports = vm_reports(result.stdout)
    # one-7 is shut off and wild-vm is not OpenNebula's: neither is reported
    assert set(reports) == {"5", "6"}
    assert reports["5"]["DEPLOY_ID"] == UUID_ONE_5
    assert reports["6"]["DEPLOY_ID"] == UUID_ONE_6
    one5 = reports["5"]["MONITOR"]
    assert one5["CLOUDVAMP_BALLOON_ACTUAL_KIB"] == str(2048 * 1024)
    assert one5["CLOUDVAMP_MAX_KIB"] == str(4096 * 1024)
    # the test driver's statistics are synthetic (lab.md §2); only their presence is checked here
    for key in ("CLOUDVAMP_USABLE_KIB", "CLOUDVAMP_AVAILABLE_KIB", "CLOUDVAMP_UNUSED_KIB",
                "CLOUDVAMP_RSS_KIB", "CLOUDVAMP_SWAP_IN_KIB", "CLOUDVAMP_SWAP_OUT_KIB",
                "CLOUDVAMP_MAJOR_FAULTS", "CLOUDVAMP_STATS_TIME"):
        assert one5[key].isdigit(), key
    assert set(one5) <= set(cvem.keys.PROBE_KEYS)


def test_vm_probe_monitor_field_is_kvm_style_quoted_lines(installed, node_uri):
    result = run_probe(installed.remotes, VM_PROBE, driver_env(node_uri))
    text = vm_reports(result.stdout)["5"]["MONITOR_TEXT"]
    for line in text.splitlines():
        name, _, value = line.partition("=")
        assert name.startswith("CLOUDVAMP_") and value.startswith('"') and value.endswith('"')


def test_vm_probe_merges_with_stock_probes_in_the_installed_dir(installed, node_uri):
    """monitord concatenates every probe of the dir; the whole must still parse."""
    probe_dir = installed.remotes / "im/cloudvamp-probes.d/vm/monitor"
    outputs = []
    for probe in sorted(probe_dir.iterdir()):
        result = run_probe(installed.remotes, "im/cloudvamp-probes.d/vm/monitor/" + probe.name,
                           driver_env(node_uri))
        assert result.returncode == 0
        outputs.append(result.stdout)
    attributes = parse_template("".join(outputs))
    assert ("STOCK_POLL_RB", "1") in attributes
    assert sum(1 for name, _ in attributes if name == "VM") == 2


def test_vm_probe_with_no_domains_prints_nothing(installed, tmp_path):
    uri = hostkit.write_test_node(tmp_path / "empty.xml", [])
    result = run_probe(installed.remotes, VM_PROBE, driver_env(uri))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_host_probe_reports_stolen_and_meminfo(installed, node_uri, tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684092 kB\nMemFree:        20000000 kB\n"
                       "MemAvailable:   22000000 kB\nBuffers:           1000 kB\n")
    before = int(time.time())
    result = run_probe(installed.remotes, HOST_PROBE,
                       driver_env(node_uri, CLOUDVAMP_PROC_MEMINFO=meminfo))
    assert result.returncode == 0 and result.stderr == ""
    values = as_dict(parse_template(result.stdout))
    # one-5: 4096-2048 MiB, wild-vm: 1024-512 MiB (host RAM is host RAM), one-7 is off
    assert values["CLOUDVAMP_STOLEN_KIB"] == str((2048 + 512) * 1024)
    assert values["CLOUDVAMP_HOST_MEM_TOTAL_KIB"] == "24684092"
    assert values["CLOUDVAMP_HOST_MEM_AVAILABLE_KIB"] == "22000000"
    assert before <= int(values["CLOUDVAMP_HOST_PROBE_TIME"]) <= int(time.time())


def test_host_probe_reads_real_proc_meminfo_by_default(installed, node_uri):
    result = run_probe(installed.remotes, HOST_PROBE, driver_env(node_uri))
    values = as_dict(parse_template(result.stdout))
    real_total = next(int(line.split()[1]) for line in open("/proc/meminfo")
                      if line.startswith("MemTotal:"))
    assert values["CLOUDVAMP_HOST_MEM_TOTAL_KIB"] == str(real_total)


# --- failure injection: the probe must exit 0 with valid (possibly empty) output ---------

def test_probes_survive_unreachable_libvirt(installed, tmp_path):
    env = driver_env("qemu+unix:///system?socket=%s" % (tmp_path / "nothing-here"))
    vm_result = run_probe(installed.remotes, VM_PROBE, env)
    assert vm_result.returncode == 0 and vm_result.stdout == ""
    assert "cannot connect to libvirt" in vm_result.stderr
    host_result = run_probe(installed.remotes, HOST_PROBE, env)
    assert host_result.returncode == 0
    values = as_dict(parse_template(host_result.stdout))
    # STOLEN is unknown, so absent (not 0); physical figures still flow
    assert "CLOUDVAMP_STOLEN_KIB" not in values
    assert "CLOUDVAMP_HOST_MEM_TOTAL_KIB" in values
    assert "stolen memory unknown" in host_result.stderr


def test_probes_are_bounded_by_a_hung_libvirtd(installed, hung_libvirt_uri):
    env = driver_env(hung_libvirt_uri, CLOUDVAMP_LIBVIRT_TIMEOUT_S=1)
    for probe in (VM_PROBE, HOST_PROBE):
        started = time.monotonic()
        result = run_probe(installed.remotes, probe, env, timeout=30)
        took_s = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert took_s < 5, "probe took %.1f s against a hung libvirtd" % took_s
        assert "did not return within 1 s" in result.stderr
        parse_template(result.stdout)


def test_probe_survives_a_broken_library(installed, tmp_path, node_uri):
    """Even a broken install (library missing) must not fail the probe category."""
    import shutil
    broken = tmp_path / "remotes"
    shutil.copytree(installed.remotes, broken, symlinks=True)
    shutil.rmtree(broken / "lib/python/cloudvamp_host")
    result = run_probe(broken, VM_PROBE, driver_env(node_uri))
    assert result.returncode == 0 and result.stdout == ""
    assert "cannot load cloudvamp_host" in result.stderr


def test_probe_does_not_wait_for_an_unclosed_stdin(installed, node_uri):
    """monitord-client closes stdin; if something ever does not, the probe still finishes."""
    import subprocess
    process = subprocess.Popen([str(installed.remotes / VM_PROBE), "cloudvamp", "3", "node1"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=driver_env(node_uri))
    try:
        process.stdin.write(b"<MONITOR_CONFIGURATION>")  # and never closed
        process.stdin.flush()
        assert process.wait(timeout=15) == 0
        assert b"VM=[" in process.stdout.read()
    finally:
        process.stdin.close()
        if process.poll() is None:
            process.kill()


def test_monitor_base64_is_strict_base64(installed, node_uri):
    result = run_probe(installed.remotes, VM_PROBE, driver_env(node_uri))
    for _, vector in parse_template(result.stdout):
        base64.b64decode(vector["MONITOR"], validate=True)
        assert "\n" not in vector["MONITOR"]


def test_stats_period_set_on_domains_without_one(installed, node_uri):
    """The test driver accepts setMemoryStatsPeriod (without effect, lab.md §2): the call must
    not produce an error; the lab tier checks that guest figures then flow for real."""
    result = run_probe(installed.remotes, VM_PROBE, driver_env(node_uri))
    assert "stats period" not in result.stderr


def test_vm_probe_reports_a_guest_that_deflated_on_its_own(installed, tmp_path):
    """The resize action records its target in the domain metadata; a balloon above it is a
    guest that took memory back itself (deflate-on-OOM)."""
    uri = hostkit.write_test_node(tmp_path / "node.xml", [
        hostkit.fake_domain_xml("one-5", UUID_ONE_5, 4096, 2048, recorded_target_mib=1024),
        hostkit.fake_domain_xml("one-6", UUID_ONE_6, 2048, 1024, recorded_target_mib=1024),
        hostkit.fake_domain_xml("one-7", hostkit.UUID_ONE_7, 2048, 1024)])
    result = run_probe(installed.remotes, VM_PROBE, driver_env(uri))
    assert result.returncode == 0 and result.stderr == ""
    reports = {vm: r["MONITOR"] for vm, r in vm_reports(result.stdout).items()}
    assert reports["5"]["CLOUDVAMP_BALLOON_TARGET_KIB"] == str(1024 * 1024)
    assert reports["5"]["CLOUDVAMP_SELF_DEFLATED_KIB"] == str(1024 * 1024)
    assert reports["6"]["CLOUDVAMP_SELF_DEFLATED_KIB"] == "0"
    # never resized by cloudvamp: no target known, so nothing is claimed
    assert "CLOUDVAMP_BALLOON_TARGET_KIB" not in reports["7"]
    assert "CLOUDVAMP_SELF_DEFLATED_KIB" not in reports["7"]
