"""The resize action, run as one_vmm_exec runs it: ``resize <deploy_id> <vm_id> <host>``."""

import sys
import time

import pytest
from hostkit import UUID_ONE_5, UUID_ONE_6, UUID_ONE_7
from hostkit import HOST_LIB, action_xml, driver_env, error_lines, run_action


@pytest.fixture
def kvm_log(tmp_path):
    return tmp_path / "kvm-calls.log"


def resize(installed, uri, deploy_id, new_mib, old_mib, kvm_log=None, vm_id=5, **xml_options):
    env = driver_env(uri, CLOUDVAMP_FAKE_KVM_LOG=kvm_log or "/dev/null")
    env.update(xml_options.pop("env", {}))
    xml = action_xml(deploy_id, vm_id, new_mib, old_mib, **xml_options)
    return run_action(installed.remotes, "resize", [deploy_id, vm_id, "node1"], xml, env), xml


def test_shrink_balloons_and_verifies(installed, node_uri, kvm_log):
    result, _ = resize(installed, node_uri, UUID_ONE_5, 1024, 2048, kvm_log)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert error_lines(result.stderr) == []
    assert "set from 2048 to 1024 MiB, actual 1048576 KiB" in result.stderr
    assert "could not record" not in result.stderr  # the target went into the metadata
    assert not kvm_log.exists(), "a BALLOONING memory resize must not call kvm/resize"


def test_grow_up_to_max_memory(installed, node_uri):
    result, _ = resize(installed, node_uri, UUID_ONE_5, 4096, 2048)
    assert result.returncode == 0, result.stderr
    assert "actual 4194304 KiB" in result.stderr


def test_default_mode_is_ballooning(installed, node_uri):
    result, _ = resize(installed, node_uri, UUID_ONE_5, 3000, 2048, mode=None)
    assert result.returncode == 0 and "actual 3072000 KiB" in result.stderr


def test_refuses_above_max_memory(installed, node_uri, kvm_log):
    result, _ = resize(installed, node_uri, UUID_ONE_5, 8192, 2048, kvm_log)
    assert result.returncode == 1
    [message] = error_lines(result.stderr)
    assert "refusing" in message and "8192 MiB" in message and "maxMemory of 4096 MiB" in message
    assert not kvm_log.exists()


def test_domain_gone(installed, node_uri):
    missing = "00000000-dead-4000-8000-000000000000"
    result, _ = resize(installed, node_uri, missing, 1024, 2048)
    assert result.returncode == 1
    [message] = error_lines(result.stderr)
    assert message.startswith("cloudvamp resize: ") and "not found" in message and missing in message


def test_domain_not_running(installed, node_uri):
    result, _ = resize(installed, node_uri, UUID_ONE_7, 512, 1024, vm_id=7)
    assert result.returncode == 1
    [message] = error_lines(result.stderr)
    assert "not running" in message


def test_deploy_id_may_be_the_domain_name(installed, node_uri):
    """OpenNebula 5.x used one-<id> as DEPLOY_ID."""
    result, _ = resize(installed, node_uri, "one-6", 1024, 2048, vm_id=6)
    assert result.returncode == 0, result.stderr


def test_hotplug_mode_is_delegated_to_kvm_verbatim(installed, node_uri, kvm_log):
    result, xml = resize(installed, node_uri, UUID_ONE_5, 3072, 2048, kvm_log, mode="HOTPLUG",
                         env={"CLOUDVAMP_FAKE_KVM_RC": "3", "CLOUDVAMP_FAKE_KVM_STDERR": "dimm failed",
                              "CLOUDVAMP_FAKE_KVM_STDOUT": "stock-out"})
    assert result.returncode == 3
    assert result.stdout == "stock-out\n"
    assert result.stderr == "dimm failed\n"
    log = kvm_log.read_text()
    assert "ACTION resize\nARGV %s 5 node1\n" % UUID_ONE_5 in log
    assert xml in log


def test_cpu_only_resize_is_delegated(installed, node_uri, kvm_log):
    result, xml = resize(installed, node_uri, UUID_ONE_5, 2048, 2048, kvm_log, vcpu=4, old_vcpu=2)
    assert result.returncode == 0
    assert xml in kvm_log.read_text()


def test_memory_and_cpu_balloon_here_and_vcpu_in_kvm(installed, node_uri, kvm_log):
    result, _ = resize(installed, node_uri, UUID_ONE_5, 1024, 2048, kvm_log, vcpu=4, old_vcpu=2)
    assert result.returncode == 0, result.stderr
    assert "actual 1048576 KiB" in result.stderr
    log = kvm_log.read_text()
    # kvm/resize gets MEMORY == RESIZE/MEMORY so it does not balloon a second time
    assert "<MEMORY>2048</MEMORY>" in log and "<MEMORY>1024</MEMORY>" not in log
    assert "<VCPU>4</VCPU>" in log


def test_unreachable_libvirt(installed, tmp_path):
    uri = "qemu+unix:///system?socket=%s" % (tmp_path / "nothing-here")
    result, _ = resize(installed, uri, UUID_ONE_5, 1024, 2048)
    assert result.returncode == 1
    [message] = error_lines(result.stderr)
    assert message.startswith("cloudvamp resize: libvirt:")


def test_hung_libvirt_fails_within_the_deadline(installed, hung_libvirt_uri):
    started = time.monotonic()
    result, _ = resize(installed, hung_libvirt_uri, UUID_ONE_5, 1024, 2048,
                       env={"CLOUDVAMP_LIBVIRT_TIMEOUT_S": "1"})
    assert time.monotonic() - started < 5
    assert result.returncode == 1
    [message] = error_lines(result.stderr)
    assert "did not return within 1 s" in message


@pytest.mark.parametrize("stdin, expected", [
    ("", "no action XML"),
    ("<VMM_DRIVER_ACTION_DATA><VM>", "not valid XML"),
    ("<VMM_DRIVER_ACTION_DATA/>", "no VM/TEMPLATE"),
    ("<VMM_DRIVER_ACTION_DATA><VM><TEMPLATE><MEMORY>lots</MEMORY></TEMPLATE></VM>"
     "</VMM_DRIVER_ACTION_DATA>", "not an integer"),
])
def test_bad_action_xml(installed, node_uri, stdin, expected):
    result = run_action(installed.remotes, "resize", [UUID_ONE_5, 5, "node1"], stdin,
                        driver_env(node_uri))
    assert result.returncode == 1
    [message] = error_lines(result.stderr)
    assert expected in message


def test_missing_arguments(installed, node_uri):
    result = run_action(installed.remotes, "resize", [], action_xml(UUID_ONE_5, 5, 1024, 2048),
                        driver_env(node_uri))
    assert result.returncode == 1 and "usage: resize" in result.stderr


# --- verification timeout, in-process with a guest that never moves its balloon ----------

class _StuckDomain:
    """A domain whose guest ignores the balloon (no virtio_balloon driver, or no free memory)."""

    def __init__(self):
        self.targets = []

    def info(self):
        return [1, 4194304, 2097152, 1, 0]

    def memoryStats(self):
        return {"actual": 2097152}

    def isPersistent(self):
        return False

    def setMemoryFlags(self, kib, flags):
        self.targets.append(kib)


class _DirectLibvirt:
    def __init__(self):
        class _Libvirt:
            VIR_DOMAIN_AFFECT_LIVE, VIR_DOMAIN_AFFECT_CONFIG = 1, 2
        self.libvirt = _Libvirt

    def call(self, _what, function, *args):
        return function(*args)


def test_balloon_that_never_moves_times_out_and_is_put_back():
    sys.path.insert(0, str(HOST_LIB))
    from cloudvamp_host.balloon import resize_balloon
    from cloudvamp_host.driver_io import ActionError
    from cloudvamp_host.settings import load_settings
    settings = load_settings({"CLOUDVAMP_RESIZE_TIMEOUT_S": "0.3"}, "/nonexistent", "/nonexistent")
    dom = _StuckDomain()
    with pytest.raises(ActionError, match="did not reach 1048576 KiB within 0.3 s"):
        resize_balloon(_DirectLibvirt(), dom, "uuid", 1048576, 2097152, settings)
    assert dom.targets == [1048576, 2097152]  # set, then put back for oned's rollback
