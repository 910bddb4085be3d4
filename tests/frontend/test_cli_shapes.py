"""Every CLI command against every awkward shape of cloud a new operator meets first.

``status``, ``plan``, ``run --once`` and ``check-config`` against: no host, hosts and no VM,
nothing managed, every managed VM in flight, every report stale, oned down, a wrong
password. Each must exit with the right code; a failure is ONE clear line (``Error: ...``),
never a traceback, and never a secret.
"""
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cvem.cli import cli
from fe_support import GIB, write_config

MIB = 1024
COMMANDS = (("status",), ("plan",), ("run", "--once"), ("check-config",))


def no_host(oned):
    pass


def hosts_no_vm(oned):
    oned.add_host("kvm-1", total_mem_kib=32 * GIB)
    oned.add_host("kvm-2", total_mem_kib=32 * GIB)


def nothing_managed(oned):
    host = oned.add_host("kvm-1", total_mem_kib=32 * GIB)
    oned.add_vm("legacy", host, 1024)                                     # no MEMORY_MAX
    oned.add_vm("owner-no", host, 2048, 4096, template={"CONTEXT": {"CLOUDVAMP": "NO"}})
    guest_no = oned.add_vm("guest-no", host, 2048, 4096)
    oned.merge_user_template(guest_no, {"CLOUDVAMP": "NO"})
    oned.add_vm("off", host, 2048, 4096, lcm_state=0, state=8)            # POWEROFF


def all_in_flight(oned):
    host = oned.add_host("kvm-1", total_mem_kib=32 * GIB)
    for i in range(3):
        vm = oned.add_vm("busy-%d" % i, host, 4096, 4096)
        oned.set_guest(vm, 300 * MIB)
        oned.set_lcm_state(vm, 66)                                        # HOTPLUG_RESIZE


def all_stale(oned):
    host = oned.add_host("kvm-1", total_mem_kib=32 * GIB)
    for i in range(3):
        vm = oned.add_vm("stale-%d" % i, host, 4096, 4096)
        oned.set_guest(vm, 300 * MIB, time_s=oned.epoch() - 3600)        # an hour old


SHAPES = {"no-host": no_host, "hosts-no-vm": hosts_no_vm, "nothing-managed": nothing_managed,
          "all-in-flight": all_in_flight, "all-stale": all_stale}


def invoke(endpoint, auth_file, config, *args):
    return CliRunner().invoke(cli, ["--endpoint", endpoint, "--auth", auth_file,
                                    "--config", config] + list(args))


def lines(result):
    return [line for line in result.output.splitlines() if line.strip()]


def assert_one_error_line(result, *words):
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    out = lines(result)
    assert len(out) == 1 and out[0].startswith("Error: "), result.output
    for word in words:
        assert word in out[0], out[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_on_every_awkward_cloud(oned, auth_file, tmp_path, shape, command):
    SHAPES[shape](oned)
    result = invoke(oned.endpoint, auth_file, write_config(tmp_path), *command)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "Error" not in result.output
    if command == ("plan",):
        assert lines(result) == ["nothing to do"]
    if command == ("check-config",):
        assert len(lines(result)) == 1 and ": OK (" in result.output
    if command[0] == "run":
        assert not oned.calls_of("one.vm.resize")
    if command[0] in ("status", "plan"):
        assert not oned.calls_of("one.vm.resize") and not oned.calls_of("one.vm.update")


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", COMMANDS[:3], ids=lambda c: " ".join(c))
def test_oned_down_is_one_clear_line(tmp_path, auth_file, command):
    endpoint = "http://127.0.0.1:%d/RPC2" % closed_port()
    result = invoke(endpoint, auth_file, write_config(tmp_path), *command)
    assert_one_error_line(result, "unreachable", "Connection refused")


@pytest.mark.parametrize("command", COMMANDS[:3], ids=lambda c: " ".join(c))
def test_wrong_password_is_one_clear_line(oned, tmp_path, command):
    hosts_no_vm(oned)
    auth = tmp_path / "bad_auth"
    auth.write_text("oneadmin:hunter2\n")
    result = invoke(oned.endpoint, str(auth), write_config(tmp_path), *command)
    assert_one_error_line(result, "authenticated")
    assert "hunter2" not in result.output


def test_check_config_does_not_need_oned(oned, tmp_path, auth_file):
    """check-config validates the file alone: oned down or a wrong password do not matter."""
    bad = tmp_path / "bad_auth"
    bad.write_text("oneadmin:hunter2\n")
    for endpoint, auth in (("http://127.0.0.1:%d/RPC2" % closed_port(), auth_file),
                           (oned.endpoint, str(bad))):
        result = invoke(endpoint, auth, write_config(tmp_path), "check-config")
        assert result.exit_code == 0 and len(lines(result)) == 1, result.output
        assert "hunter2" not in result.output


def test_run_once_as_a_process_exits_1_with_the_reason_last(tmp_path, auth_file):
    """What the operator sees in a terminal: log lines, then the reason; exit status 1."""
    endpoint = "http://127.0.0.1:%d/RPC2" % closed_port()
    done = subprocess.run([sys.executable, "-m", "cvem", "--endpoint", endpoint, "--auth",
                           auth_file, "--config", write_config(tmp_path), "run", "--once"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    err = done.stderr.strip().splitlines()
    assert err[-1].startswith("Error: oned at ") and "Connection refused" in err[-1]
    assert "Traceback" not in done.stderr
