"""Issue 10: a new operator's first steps and a hostile guest's first tries.

Each test names the defect of issue 10 it pins (the state DB's are in test_state_loss.py,
install.sh's in tests/host/test_host_install_user.py, the CLI shapes in test_cli_shapes.py).
"""
import logging
import socket

import numpy as np
from click.testing import CliRunner

from cvem import keys
from cvem.cli import cli
from cvem.core.fleet import obs_from_snapshot
from cvem.core.migration import host_demand_kib
from cvem.core.model import Snapshot
from fe_support import Clock, GIB, make_service, settle, write_config

MIB = 1024


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -------------------------------------------------------------------------------- 1
def test_host_demand_of_an_empty_fleet_is_zero_per_host():
    obs = obs_from_snapshot(Snapshot(now_s=0.0, hosts=(), vms=()))[0]
    demand = host_demand_kib(obs, 3)
    assert demand.dtype.kind == "f" and np.array_equal(demand, np.zeros(3))


def test_cycles_run_when_no_vm_is_managed(oned, tmp_path):
    """A one-VM cloud whose guest publishes CLOUDVAMP=NO: every cycle used to crash."""
    host = oned.add_host("kvm-1", total_mem_kib=16 * GIB)
    vm = oned.add_vm("only", host, 4096, 4096)
    oned.set_guest(vm, 300 * MIB, extra={"CLOUDVAMP": "NO"})
    service = make_service(oned, tmp_path)
    service.clock = clock = Clock(oned)
    for _ in range(3):
        report = service.cycle()
        assert not report.plan.actions and report.result is not None
        clock.advance(10)
    assert [s.managed for s in report.observation.statuses] == [False]


# -------------------------------------------------------------------------------- 3
def test_a_guest_cannot_lift_its_owners_opt_out(oned, tmp_path):
    """CONTEXT=[CLOUDVAMP="NO"] is where an owner's opt-out is out of a guest's reach (a
    real oned 7.4 keeps it in TEMPLATE/CONTEXT; OneGate only writes USER_TEMPLATE)."""
    host = oned.add_host("kvm-1", total_mem_kib=16 * GIB)
    vm = oned.add_vm("kept-out", host, 4096, 4096,
                     template={"CONTEXT": {"TOKEN": "YES", "CLOUDVAMP": "NO"}})
    oned.set_guest(vm, 300 * MIB, extra={"CLOUDVAMP": "YES"})        # through OneGate
    service = make_service(oned, tmp_path)
    report = service.cycle()
    status = report.observation.statuses[0]
    assert not status.managed and status.reason.startswith("opted out")
    assert not report.plan.actions and not oned.calls_of("one.vm.resize")


def test_opt_out_precedence_in_the_vm_document():
    from cvem.adapters.one_xml import parse_vm
    def vm(template="", user=""):
        return parse_vm("<VM><ID>7</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE>"
                        "<TEMPLATE><MEMORY>1024</MEMORY>%s</TEMPLATE>"
                        "<USER_TEMPLATE>%s</USER_TEMPLATE></VM>" % (template, user)).opt_out
    no_ctx = "<CONTEXT><CLOUDVAMP>NO</CLOUDVAMP></CONTEXT>"
    assert vm(no_ctx, "<CLOUDVAMP>YES</CLOUDVAMP>") == "NO"
    assert vm("<CLOUDVAMP>no</CLOUDVAMP>", "<CLOUDVAMP>YES</CLOUDVAMP>") == "no"
    assert vm("<CONTEXT><CLOUDVAMP>YES</CLOUDVAMP></CONTEXT>", "<CLOUDVAMP>off</CLOUDVAMP>") == "off"
    assert vm("", "<CLOUDVAMP>NO</CLOUDVAMP>") == "NO"
    assert vm() == ""


def test_a_guest_may_still_opt_itself_out(oned, tmp_path):
    host = oned.add_host("kvm-1", total_mem_kib=16 * GIB)
    vm = oned.add_vm("leaving", host, 4096, 4096,
                     template={"CONTEXT": {"TOKEN": "YES", "CLOUDVAMP": "YES"}})
    oned.set_guest(vm, 300 * MIB, extra={"CLOUDVAMP": "off"})
    status = make_service(oned, tmp_path).cycle(dry_run=True).observation.statuses[0]
    assert not status.managed and status.reason.startswith("opted out")


# -------------------------------------------------------------------------------- 5
def test_a_frozen_report_is_warned_about_once_not_every_cycle(oned, tmp_path, caplog):
    host = oned.add_host("kvm-1", total_mem_kib=16 * GIB)
    vm = oned.add_vm("frozen", host, 4096, 4096)
    service = make_service(oned, tmp_path)
    service.clock = clock = Clock(oned)
    with caplog.at_level(logging.INFO, logger="cvem"):
        oned.set_guest(vm, 300 * MIB)
        for _ in range(38):                     # the guest freezes its SEQ from here on
            service.cycle()
            settle(oned)
            clock.advance(10)
    warnings = [r for r in caplog.records
                if r.levelname == "WARNING" and "vm=%d guest report unusable" % vm in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "stale" in warnings[0].getMessage()


def test_a_guest_writing_new_garbage_each_cycle_is_warned_about_once(oned, tmp_path, caplog):
    host = oned.add_host("kvm-1", total_mem_kib=16 * GIB)
    vm = oned.add_vm("noisy", host, 4096, 4096)
    service = make_service(oned, tmp_path)
    service.clock = clock = Clock(oned)
    with caplog.at_level(logging.WARNING, logger="cvem"):
        for i in range(10):
            oned.set_guest(vm, 300 * MIB, extra={keys.GUEST_MEM_USED_KIB: "junk%d" % i})
            service.cycle()
            settle(oned)
            clock.advance(10)
    assert caplog.text.count("vm=%d guest report unusable" % vm) == 1


# -------------------------------------------------------------------------------- 7
def test_credentials_in_the_endpoint_are_never_shown(tmp_path, auth_file):
    endpoint = "http://cvem:s3cr3t-pw@127.0.0.1:%d/RPC2" % closed_port()
    for args in (["status"], ["run", "--once"]):
        result = CliRunner().invoke(cli, ["--endpoint", endpoint, "--auth", auth_file,
                                          "--config", write_config(tmp_path)] + args)
        assert result.exit_code == 1 and "unreachable" in result.output
        assert "s3cr3t-pw" not in result.output and "***@127.0.0.1" in result.output
    bad = CliRunner().invoke(cli, ["--endpoint", "ftp://cvem:s3cr3t-pw@fe/RPC2", "status"])
    assert bad.exit_code == 1 and "s3cr3t-pw" not in bad.output


def test_the_run_log_line_hides_endpoint_credentials(oned, tmp_path, caplog):
    from cvem.adapters.one import OneCloud
    cloud = OneCloud("http://cvem:s3cr3t-pw@127.0.0.1:%d/RPC2" % closed_port(), "a:b")
    assert "s3cr3t-pw" not in repr(cloud) and "s3cr3t-pw" not in cloud.endpoint


def test_a_secret_given_as_auth_file_is_not_echoed(oned, tmp_path):
    result = CliRunner().invoke(cli, ["--endpoint", oned.endpoint, "--auth",
                                      "oneadmin:s3cr3t-pw", "--config", write_config(tmp_path),
                                      "status"])
    assert result.exit_code == 1 and "auth_file" in result.output
    assert "s3cr3t-pw" not in result.output


# -------------------------------------------------------------------------------- 8
def test_cloudvamp_reason_shows_why_the_report_is_unusable(oned, tmp_path):
    host = oned.add_host("kvm-1", total_mem_kib=16 * GIB)
    vm = oned.add_vm("liar", host, 4096, 4096)
    service = make_service(oned, tmp_path)
    service.clock = clock = Clock(oned)
    updates = []
    for i in range(3):
        oned.set_guest(vm, 300 * MIB, total_kib=64 * GIB)            # above its nominal
        service.cycle()
        settle(oned)
        clock.advance(10)
        updates.append(len(oned.calls_of("one.vm.update")))
    reason = oned.user_template(vm)[keys.SHOW_REASON]
    assert "OneGate report rejected" in reason
    assert updates[0] == updates[-1]            # stable: not rewritten every cycle


# -------------------------------------------------------------------------------- 9
def test_one_adapter_error_fails_that_vm_only_and_earns_no_cooldown(oned, tmp_path):
    host = oned.add_host("kvm-1", total_mem_kib=64 * GIB)
    vms = [oned.add_vm("idle-%d" % i, host, 4096, 4096) for i in range(3)]
    service = make_service(oned, tmp_path, guards="cooldown_s = 600\n")
    service.clock = clock = Clock(oned)
    for vm in vms:
        oned.set_guest(vm, 600 * MIB)
    oned.fail_next("one.vm.info", "Internal error reading the VM", 0x2000)
    report = service.cycle()
    settle(oned)
    assert len(report.result.failed) == 1 and len(report.result.applied) == 2
    failed = report.result.failed[0][0].vm_id
    assert {c[1][0] for c in oned.calls_of("one.vm.resize")} == set(vms) - {failed}
    clock.advance(10)
    for vm in vms:
        oned.set_guest(vm, 600 * MIB)
    report = service.cycle()
    settle(oned)
    # the VM that was not resized is planned again at once; the others sit in cooldown
    assert [a.vm_id for a in report.result.applied] == [failed]
    assert oned.memory_mib(failed) < 4096
