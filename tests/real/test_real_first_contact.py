"""Issue 10 on a genuine oned 7.4: where an owner's opt-out lives, and the CLI's first contact."""
import json

import pytest
from click.testing import CliRunner

from cvem.adapters.one_xml import parse_vm
from cvem.cli import cli


def live_host(real_one):
    return next(int(h.findtext("ID")) for h in real_one.hosts()
                if h.findtext("VM_MAD") == "dummylive")


def test_owner_opt_out_in_context_survives_a_guests_write(real_one):
    """oned moves a top-level CLOUDVAMP into USER_TEMPLATE (a guest can overwrite it through
    OneGate, which merges into USER_TEMPLATE with one.vm.update type 1); CONTEXT stays in
    TEMPLATE, out of OneGate's reach, and cvem honours it."""
    host = live_host(real_one)
    top = real_one.make_vm(host, 1024, 2048, name="i10-top-no", extra='CLOUDVAMP="NO"\n')
    ctx = real_one.make_vm(host, 1024, 2048, name="i10-ctx-no",
                           extra='CONTEXT=[CLOUDVAMP="NO"]\n')
    try:
        top_xml = real_one.vm(top)
        assert top_xml.findtext("USER_TEMPLATE/CLOUDVAMP") == "NO"
        assert top_xml.find("TEMPLATE/CLOUDVAMP") is None
        assert real_one.vm(ctx).findtext("TEMPLATE/CONTEXT/CLOUDVAMP") == "NO"
        for vm_id in (top, ctx):                     # what a guest's PUT /vm does
            real_one.rpc("one.vm.update", vm_id, 'CLOUDVAMP="YES"', 1)
        ctx_doc = parse_vm(real_one.rpc("one.vm.info", ctx, False))
        top_doc = parse_vm(real_one.rpc("one.vm.info", top, False))
        assert ctx_doc.opt_out == "NO"
        assert top_doc.opt_out == "YES"    # the documented limit of a USER_TEMPLATE opt-out
    finally:
        for vm_id in (top, ctx):
            real_one.rpc("one.vm.action", "terminate-hard", vm_id)


def cvem(real_one, tmp_path, *args, auth_file=None):
    config = tmp_path / "cvem.conf"
    config.write_text("[cvem]\nstate_db = %s\nlive_resize_vm_mads = dummylive\n"
                      % (tmp_path / "state.db"))
    return CliRunner().invoke(cli, ["--endpoint", real_one.endpoint, "--auth",
                                    str(auth_file or real_one.auth_file), "--config",
                                    str(config)] + list(args))


def test_status_and_plan_read_a_real_cloud(real_one, tmp_path):
    if not real_one.managed:
        pytest.skip("needs the bed's auth file")
    status = cvem(real_one, tmp_path, "status", "--json")
    assert status.exit_code == 0, status.output
    doc = json.loads(status.output)
    assert doc["hosts"] and {"hosts", "vms", "migrations"} == set(doc)
    plan = cvem(real_one, tmp_path, "plan", "--json")
    assert plan.exit_code == 0, plan.output
    assert isinstance(json.loads(plan.output), list)


def test_wrong_password_on_a_real_oned_is_one_line(real_one, tmp_path):
    bad = tmp_path / "bad_auth"
    bad.write_text(real_one.auth.split(":")[0] + ":not-the-password\n")
    for command in (("status",), ("plan",), ("run", "--once")):
        result = cvem(real_one, tmp_path, *command, auth_file=bad)
        out = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(out) == 1, result.output
        assert out[0].startswith("Error: ") and "authenticated" in out[0]
        assert "not-the-password" not in result.output
