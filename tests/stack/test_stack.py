"""cloudvamp driven by a real OpenNebula 7.4.0 on real libvirtd hosts (see conftest.py).

Everything goes through OpenNebula: monitord runs the cloudvamp IM over ssh, oned's
one_vmm_exec runs cloudvamp's resize and migrate over ssh, and every check reads oned's
answer (one.host.info, one.vm.info, the VM log) or the guest itself, never a probe's stdout.
The tests share the session's one VM and run in file order: 512 MiB at boot on nodeA,
resized to 256 MiB, a refused resize, cvem shrinks it and grows it back on a surge,
live-migrated to nodeB by oned, then moved back to nodeA by cvem when nodeB is full.
"""

import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.real, pytest.mark.lab]

MIB = 1024
SHRUNK_MIB = 256
RESIZE_TIMEOUT_S = 90
MIGRATE_TIMEOUT_S = 180
MONITORING_TIMEOUT_S = 60


def template_value(xml, path_tag, key):
    """Text of <key> inside the first <path_tag> element of an oned document."""
    section = re.search(r"<%s>(.*?)</%s>" % (path_tag, path_tag), xml, re.S)
    if not section:
        return None
    found = re.search(r"<%s>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</%s>" % (key, key), section.group(1), re.S)
    return found.group(1) if found else None


def monitoring(stack, vm_id):
    body = stack.vm_xml(vm_id)
    section = re.search(r"<MONITORING>(.*?)</MONITORING>", body, re.S)
    return dict(re.findall(r"<(\w+)><!\[CDATA\[(.*?)\]\]></\1>", section.group(1) if section else ""))


def test_hosts_are_monitored_through_the_cloudvamp_im(stack):
    for name, host_id in stack.host_ids.items():
        body = stack.rpc("one.host.info", host_id)
        assert re.search(r"<STATE>2</STATE>", body), "%s not MONITORED\n%s" % (name, stack.logs())
        assert template_value(body, "TEMPLATE", "IM_MAD") == "cloudvamp"
        # host/system: our probe's keys are merged into the host template, beside kvm's
        for key in ("CLOUDVAMP_STOLEN_KIB", "CLOUDVAMP_HOST_MEM_TOTAL_KIB", "HYPERVISOR", "KVM_MACHINES"):
            assert template_value(body, "TEMPLATE", key) not in (None, ""), (name, key)
        assert int(template_value(body, "HOST_SHARE", "TOTAL_MEM")) > 0
        # host/monitor (stock probes) reached monitord too
        assert template_value(body, "MONITORING", "FREE_MEMORY") not in (None, "")


def test_vm_monitoring_carries_the_probe_keys(stack):
    vm_id = stack.vm_id
    stack.wait("CLOUDVAMP_* balloon statistics in the VM's MONITORING",
               lambda: int(monitoring(stack, vm_id).get("CLOUDVAMP_STATS_TIME", "0") or 0) > 0,
               MONITORING_TIMEOUT_S, poll_s=1, vm_id=vm_id)
    keys = monitoring(stack, vm_id)
    assert int(keys["CLOUDVAMP_BALLOON_ACTUAL_KIB"]) == 512 * MIB
    assert int(keys["CLOUDVAMP_MAX_KIB"]) == 512 * MIB
    # the guest's own figures, through libvirt's balloon statistics, the probe and monitord
    assert 0 < int(keys["CLOUDVAMP_AVAILABLE_KIB"]) <= 512 * MIB
    assert 0 < int(keys["CLOUDVAMP_USABLE_KIB"]) <= int(keys["CLOUDVAMP_AVAILABLE_KIB"])
    assert "MEMORY" in keys and "CPU" in keys   # the stock poll.rb keys are kept as well
    stack.measure("vm_monitoring_cloudvamp_keys",
                  ",".join(sorted(k for k in keys if k.startswith("CLOUDVAMP_"))))


def test_resize_through_oned_balloons_the_guest(stack):
    vm_id = stack.vm_id
    before_kib = stack.guest_memtotal_kib(vm_id)
    started = time.monotonic()
    stack.rpc("one.vm.resize", vm_id, "MEMORY=%d" % SHRUNK_MIB, True)
    at_target_s = stack.wait(
        "balloon at %d MiB on nodeA" % SHRUNK_MIB,
        lambda: stack.balloon("nodeA", "one-%d" % vm_id).get("actual") == SHRUNK_MIB * MIB,
        RESIZE_TIMEOUT_S, vm_id=vm_id)
    stack.wait("VM RUNNING again after the resize",
               lambda: stack.vm_state(vm_id)[:2] == (3, 3), RESIZE_TIMEOUT_S, vm_id=vm_id)
    stack.measure("resize_rpc_to_balloon_at_target_s", at_target_s)
    stack.measure("resize_rpc_to_running_s", time.monotonic() - started)
    assert template_value(stack.vm_xml(vm_id), "TEMPLATE", "MEMORY") == str(SHRUNK_MIB)
    # cloudvamp's resize ran (not the stock one): its line is in this VM's log
    assert re.search(r"cloudvamp: balloon of \S+ set from 512 to %d MiB" % SHRUNK_MIB,
                     stack.vm_log(vm_id)), stack.logs(vm_id)
    # the guest itself has less memory (it prints /proc/meminfo every 2 s): MemTotal drops,
    # or, with the balloon's deflate-on-oom (autodeflate, set by cloudvamp's deploy), Linux
    # keeps MemTotal and the inflated pages leave MemAvailable instead; either way
    # MemAvailable falls below the new size
    stack.wait("guest MemAvailable below %d KiB" % (SHRUNK_MIB * MIB),
               lambda: (stack.guest_memtotal_kib(vm_id, "MemAvailable") or before_kib) <= SHRUNK_MIB * MIB,
               RESIZE_TIMEOUT_S, poll_s=0.5, vm_id=vm_id)
    stack.measure("resize_rpc_to_guest_memavailable_s", time.monotonic() - started)
    # and oned's VM MONITORING follows: the probe -> monitord -> oned path
    monitored_s = stack.wait(
        "MONITORING CLOUDVAMP_BALLOON_ACTUAL_KIB at the new size",
        lambda: monitoring(stack, vm_id).get("CLOUDVAMP_BALLOON_ACTUAL_KIB") == str(SHRUNK_MIB * MIB),
        MONITORING_TIMEOUT_S, poll_s=0.5, vm_id=vm_id)
    stack.measure("guest_memtotal_to_vm_monitoring_s", monitored_s)


def test_a_resize_the_driver_refuses_leaves_the_vm_running_at_its_old_size(stack):
    vm_id = stack.vm_id
    # above the domain's maximum (MEMORY_MAX 512): libvirt refuses, the action exits 1,
    # oned rolls MEMORY back; enforce=false so oned's capacity check does not stop it first
    stack.rpc("one.vm.resize", vm_id, "MEMORY=1024", False)
    stack.wait("the failed resize settled",
               lambda: stack.vm_state(vm_id)[:2] == (3, 3)
               and template_value(stack.vm_xml(vm_id), "TEMPLATE", "MEMORY") == str(SHRUNK_MIB),
               RESIZE_TIMEOUT_S, vm_id=vm_id)
    assert stack.balloon("nodeA", "one-%d" % vm_id)["actual"] == SHRUNK_MIB * MIB
    log = stack.vm_log(vm_id)
    assert "cloudvamp resize:" in log, stack.logs(vm_id)   # our one-line reason reached oned
    host = stack.rpc("one.host.info", stack.host_ids["nodeA"])
    assert re.search(r"<STATE>2</STATE>", host)


CVEM_CONFIG = """
[cvem]
period_s = 5
state_db = {state_db}
live_resize_vm_mads = cloudvamp
probe_fallback = yes
metrics_address =
[one]
endpoint = {endpoint}
auth_file = {auth}
[guards]
floor_kib = {floor_kib}
cooldown_s = 5
max_shrink_ratio = 0.5
min_size_kib = {min_kib}
[migration]
enabled = no
"""
CVEM_MIN_MIB = 320   # the surge (100 MiB more in tmpfs) must fit in the guest at this size
CVEM_FLOOR_MIB = 192  # headroom above guest used: idle (~90 MiB used) fits 320, the surge (~190) does not
CVEM_TIMEOUT_S = 180


def memory_mib(stack, vm_id):
    return int(template_value(stack.vm_xml(vm_id), "TEMPLATE", "MEMORY"))


def send_keys(stack, host, vm_id, *keys):
    """Type on the guest's keyboard (the stack guest reads commands from /dev/tty1)."""
    subprocess.run(["virsh", "-c", stack.libvirt_uri(host), "send-key", "one-%d" % vm_id] + list(keys),
                   check=True, capture_output=True, timeout=30)


CVEM = Path(sys.executable).with_name("cvem")


@contextlib.contextmanager
def cvem_service(config, log_path):
    """`cvem --config FILE run`, the operator's command, stopped by SIGTERM; must exit 0."""
    with open(log_path, "w") as log:
        service = subprocess.Popen([str(CVEM), "--config", str(config), "-v", "run"], stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        yield service
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
    assert service.returncode == 0, log_path.read_text()[-3000:]


def wait_for_cvem(stack, config, what, predicate, timeout_s):
    """stack.wait, and on failure what cvem, oned and the guest saw."""
    try:
        return stack.wait(what, predicate, timeout_s, poll_s=0.5, vm_id=stack.vm_id)
    except pytest.fail.Exception as failure:
        status = subprocess.run([str(CVEM), "--config", str(config), "status"],
                                capture_output=True, text=True, timeout=60)
        console = stack.console("cvguest").read_text(errors="replace").splitlines()[-4:]
        pytest.fail("%s\n--- cvem status\n%s%s\n--- MONITORING\n%s\n--- console\n%s" % (
            failure, status.stdout, status.stderr, monitoring(stack, stack.vm_id), "\n".join(console)),
            pytrace=False)


def test_cvem_shrinks_the_guest_and_grows_it_back_on_a_surge(stack, tmp_path):
    vm_id = stack.vm_id
    # the VM back at its full size, through oned (a grow through the driver)
    started = time.monotonic()
    stack.rpc("one.vm.resize", vm_id, "MEMORY=512", True)
    stack.wait("grown back to 512 MiB", lambda: stack.vm_state(vm_id)[:2] == (3, 3)
               and stack.balloon("nodeA", "one-%d" % vm_id).get("actual") == 512 * MIB,
               RESIZE_TIMEOUT_S, vm_id=vm_id)
    stack.measure("grow_rpc_to_balloon_at_target_s", time.monotonic() - started)
    config = tmp_path / "cvem.conf"
    config.write_text(CVEM_CONFIG.format(state_db=tmp_path / "state.db", endpoint=stack.endpoint,
                                         auth=stack.prefix / "run/one_auth", min_kib=CVEM_MIN_MIB * MIB,
                                         floor_kib=CVEM_FLOOR_MIB * MIB))
    log_path = tmp_path / "cvem.log"
    with cvem_service(config, log_path):
        started = time.monotonic()
        stack.wait("cvem shrinks the VM (log: %s)" % log_path,
                   lambda: memory_mib(stack, vm_id) < 512 and stack.vm_state(vm_id)[:2] == (3, 3),
                   CVEM_TIMEOUT_S, poll_s=1, vm_id=vm_id)
        stack.measure("cvem_start_to_first_shrink_s", time.monotonic() - started)
        stack.wait("cvem settles the VM at its floor",
                   lambda: memory_mib(stack, vm_id) == CVEM_MIN_MIB, CVEM_TIMEOUT_S, poll_s=1, vm_id=vm_id)
        shrunk_mib = memory_mib(stack, vm_id)
        assert stack.balloon("nodeA", "one-%d" % vm_id)["actual"] == shrunk_mib * MIB
        stack.measure("cvem_shrunk_to_mib", shrunk_mib)
        time.sleep(6)   # one more cycle: a settled VM stays where it is
        assert memory_mib(stack, vm_id) == shrunk_mib
        surge_started = time.monotonic()
        send_keys(stack, "nodeA", vm_id, "KEY_S")
        send_keys(stack, "nodeA", vm_id, "KEY_ENTER")
        stack.wait("the guest's surge", lambda: "SURGE on" in stack.console("cvguest").read_text(errors="replace"),
                   30, poll_s=0.5, vm_id=vm_id)
        wait_for_cvem(stack, config, "cvem grows the VM after the guest's surge (log: %s)" % log_path,
                      lambda: memory_mib(stack, vm_id) > shrunk_mib, CVEM_TIMEOUT_S)
        stack.measure("guest_surge_to_cvem_grow_rpc_s", time.monotonic() - surge_started)
        stack.wait("the grown balloon in the guest",
                   lambda: stack.balloon("nodeA", "one-%d" % vm_id).get("actual", 0) > shrunk_mib * MIB,
                   RESIZE_TIMEOUT_S, vm_id=vm_id)
        stack.measure("guest_surge_to_balloon_grown_s", time.monotonic() - surge_started)
        stack.measure("cvem_grown_to_mib", memory_mib(stack, vm_id))
        # the guest lived through it: still printing, never below what it uses
        text = stack.console("cvguest").read_text(errors="replace")
        assert "SURGE on" in text and "Out of memory" not in text
        send_keys(stack, "nodeA", vm_id, "KEY_R")
        send_keys(stack, "nodeA", vm_id, "KEY_ENTER")


def test_live_migration_through_oned_keeps_the_balloon(stack):
    vm_id = stack.vm_id
    size_kib = memory_mib(stack, vm_id) * MIB
    assert size_kib < 512 * MIB   # ballooned, so there is something to keep
    started = time.monotonic()
    stack.rpc("one.vm.migrate", vm_id, stack.host_ids["nodeB"], True, False, -1, 0)
    stack.wait("VM RUNNING on nodeB",
               lambda: stack.vm_state(vm_id) == (3, 3, "nodeB")
               and "migrate." in stack.vm_log(vm_id).split("New LCM state is MIGRATE")[-1],
               MIGRATE_TIMEOUT_S, poll_s=0.5, vm_id=vm_id)
    stack.measure("migrate_rpc_to_running_on_destination_s", time.monotonic() - started)
    assert stack.balloon("nodeB", "one-%d" % vm_id)["actual"] == size_kib
    assert "actual" not in stack.balloon("nodeA", "one-%d" % vm_id)   # gone from the source
    migration_log = stack.vm_log(vm_id).split("New LCM state is MIGRATE")[-1]
    assert re.search(r"cloudvamp: balloon of \S+ (held across migration|restored)", migration_log), \
        stack.logs(vm_id)
    took = re.search(r"migrate --live .*\(([\d.]+)s\)", migration_log)
    if took:
        stack.measure("virsh_migrate_s", float(took.group(1)))
    # the guest kept running through the move (its console goes on from the same file)
    printed = len(re.findall(r"^MEMINFO", stack.console("cvguest").read_text(errors="replace"), re.M))
    stack.wait("the guest printing on nodeB",
               lambda: len(re.findall(r"^MEMINFO", stack.console("cvguest").read_text(errors="replace"),
                                      re.M)) > printed, 30, poll_s=0.5, vm_id=vm_id)
    # monitoring now comes from nodeB's probes
    stack.wait("MONITORING from nodeB",
               lambda: monitoring(stack, vm_id).get("CLOUDVAMP_BALLOON_ACTUAL_KIB") == str(size_kib)
               and int(monitoring(stack, vm_id).get("TIMESTAMP", "0")) > time.time() - 30,
               MONITORING_TIMEOUT_S, poll_s=1, vm_id=vm_id)


def host_share(stack, host_name, key):
    return int(template_value(stack.rpc("one.host.info", stack.host_ids[host_name]), "HOST_SHARE", key))


def test_cvem_relieves_a_full_host_by_a_live_migration(stack, tmp_path):
    """nodeB is made full (RESERVED_MEM leaves room for the shrunk guest only): when the guest
    surges, its grow does not fit there, so cvem moves it to nodeA through oned and grows it."""
    vm_id = stack.vm_id
    assert stack.vm_state(vm_id) == (3, 3, "nodeB")
    config = tmp_path / "cvem.conf"
    config.write_text(CVEM_CONFIG.replace("enabled = no", "enabled = yes").format(
        state_db=tmp_path / "state.db", endpoint=stack.endpoint, auth=stack.prefix / "run/one_auth",
        min_kib=CVEM_MIN_MIB * MIB, floor_kib=CVEM_FLOOR_MIB * MIB))
    log_path = tmp_path / "cvem.log"
    with cvem_service(config, log_path):
        stack.wait("cvem settles the VM at its floor on nodeB",
                   lambda: memory_mib(stack, vm_id) == CVEM_MIN_MIB and stack.vm_state(vm_id)[:2] == (3, 3),
                   CVEM_TIMEOUT_S, poll_s=1, vm_id=vm_id)
        # nodeB full: MAX_MEM = what the VM holds now + 8 MiB (RESERVED_MEM is the admin's knob)
        total_kib = host_share(stack, "nodeB", "TOTAL_MEM")
        usage_kib = host_share(stack, "nodeB", "MEM_USAGE")
        stack.rpc("one.host.update", stack.host_ids["nodeB"],
                  'RESERVED_MEM="%d"' % (total_kib - usage_kib - 8 * MIB), 1)
        assert host_share(stack, "nodeB", "MAX_MEM") == usage_kib + 8 * MIB
        surge_started = time.monotonic()
        send_keys(stack, "nodeB", vm_id, "KEY_S")
        send_keys(stack, "nodeB", vm_id, "KEY_ENTER")
        wait_for_cvem(stack, config, "cvem moves the VM to nodeA (log: %s)" % log_path,
                      lambda: stack.vm_state(vm_id) == (3, 3, "nodeA"), MIGRATE_TIMEOUT_S + CVEM_TIMEOUT_S)
        stack.measure("guest_surge_to_cvem_migration_done_s", time.monotonic() - surge_started)
        stack.wait("cvem grows the VM on nodeA",
                   lambda: memory_mib(stack, vm_id) > CVEM_MIN_MIB and stack.vm_state(vm_id)[:2] == (3, 3)
                   and stack.balloon("nodeA", "one-%d" % vm_id).get("actual") == memory_mib(stack, vm_id) * MIB,
                   CVEM_TIMEOUT_S, poll_s=0.5, vm_id=vm_id)
        stack.measure("guest_surge_to_grown_on_new_host_s", time.monotonic() - surge_started)
        assert host_share(stack, "nodeB", "MEM_USAGE") == 0   # nodeB relieved
        text = stack.console("cvguest").read_text(errors="replace")
        assert "Out of memory" not in text
    assert re.search(r"migrat", log_path.read_text()), log_path.read_text()[-3000:]
