"""`cvem status --json`, `plan --json`, `run --once` and `check-config` through click."""
import json

from click.testing import CliRunner

from cvem.cli import cli
from fe_support import GIB, write_config

MIB = 1024


def invoke(oned, auth_file, config, *args):
    result = CliRunner().invoke(cli, ["--endpoint", oned.endpoint, "--auth", auth_file,
                                      "--config", config] + list(args))
    return result


def world(oned):
    host = oned.add_host("kvm-1", total_mem_kib=32 * GIB)
    idle = oned.add_vm("idle", host, 4096, 4096)
    oned.set_guest(idle, 300 * MIB)
    legacy = oned.add_vm("legacy", host, 1024)
    return host, idle, legacy


def test_status_json(oned, auth_file, tmp_path):
    host, idle, legacy = world(oned)
    result = invoke(oned, auth_file, write_config(tmp_path), "status", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert set(doc) == {"hosts", "vms", "migrations"} and doc["migrations"] == []
    h = doc["hosts"][0]
    assert (h["host"], h["physical_mib"], h["max_mem_mib"], h["mem_usage_mib"],
            h["reclaimed_mib"]) == (host, 32768, 32768, 5120, 0)
    vms = {v["vm"]: v for v in doc["vms"]}
    assert vms[idle]["managed"] and vms[idle]["guest_used_mib"] == 300
    assert (vms[idle]["nominal_mib"], vms[idle]["current_mib"]) == (4096, 4096)
    assert vms[legacy]["managed"] is False
    assert vms[legacy]["reason"] == "no MEMORY_MAX in the VM template"
    assert not oned.calls_of("one.vm.resize") and not oned.calls_of("one.vm.update")


def test_plan_json_is_a_dry_run(oned, auth_file, tmp_path):
    host, idle, legacy = world(oned)
    result = invoke(oned, auth_file, write_config(tmp_path), "plan", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and set(rows[0]) == {"vm", "host", "action", "from_mib", "to_mib", "reason",
                                     "to_host"}
    assert rows[0]["vm"] == idle and rows[0]["action"] == "shrink"
    assert rows[0]["from_mib"] == 4096 and rows[0]["to_mib"] < 4096
    assert not oned.calls_of("one.vm.resize") and not oned.calls_of("one.vm.update")
    table = invoke(oned, auth_file, write_config(tmp_path), "plan")
    assert "shrink" in table.output and "FROM_MIB" in table.output


def test_run_once_acts(oned, auth_file, tmp_path):
    host, idle, legacy = world(oned)
    result = invoke(oned, auth_file, write_config(tmp_path), "run", "--once")
    assert result.exit_code == 0, result.output
    assert oned.memory_mib(idle) < 4096


def test_status_table(oned, auth_file, tmp_path):
    world(oned)
    result = invoke(oned, auth_file, write_config(tmp_path), "status")
    assert result.exit_code == 0 and "RECLAIMED_MIB" in result.output
    assert "no MEMORY_MAX" in result.output


def test_bad_config_names_the_key(oned, auth_file, tmp_path):
    cases = [("[cvem]\nperiod_s = soon\n", "[cvem] period_s: expected float"),
             ("[cvem]\nperiod_s = 0\n", "period_s=0.0 is below its minimum"),
             ("[cvem]\nbogus = 1\n", "unknown parameter(s) bogus"),
             ("[guards]\ncooldown = 1\n", "[guards] unknown parameter(s) cooldown"),
             ("[cvem]\npolicy = nope\n", "unknown policy 'nope'"),
             ("[policy:default]\nfoo = 1\n", "[policy:default] unknown parameter(s) foo"),
             ("[one]\nendpoint = localhost:2633\n", "[one] endpoint"),
             ("[wat]\n", "unknown section(s) [wat]"),
             ("[cvem]\nlend_ratio = 2\n", "lend_ratio=2.0 is above its maximum")]
    for text, message in cases:
        path = tmp_path / "bad.conf"
        path.write_text(text)
        result = CliRunner().invoke(cli, ["--config", str(path), "--endpoint",
                                          oned.endpoint, "--auth", auth_file, "check-config"])
        assert result.exit_code != 0, text
        assert message in result.output, (text, result.output)


def test_shipped_config_is_valid():
    import os
    from fe_support import ROOT
    result = CliRunner().invoke(cli, ["--config", os.path.join(ROOT, "etc", "cvem.conf"),
                                      "check-config"])
    assert result.exit_code == 0, result.output
    assert "OK (policy default, period 10 s" in result.output


def test_wrong_credentials_are_a_clear_error(oned, tmp_path):
    world(oned)
    auth = tmp_path / "bad_auth"
    auth.write_text("oneadmin:nope\n")
    result = CliRunner().invoke(cli, ["--endpoint", oned.endpoint, "--auth", str(auth),
                                      "--config", write_config(tmp_path), "status"])
    assert result.exit_code == 1
    assert "User couldn't be authenticated" in result.output and "nope" not in result.output
    missing = CliRunner().invoke(cli, ["--endpoint", oned.endpoint, "--auth",
                                       str(tmp_path / "none"), "status"])
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_environment_fallbacks(monkeypatch, tmp_path):
    from cvem.adapters.one import auth_file_path, resolve_endpoint
    monkeypatch.setenv("ONE_XMLRPC", "http://fe:2633/RPC2")
    monkeypatch.setenv("ONE_AUTH", "/etc/one/auth")
    assert resolve_endpoint(None) == "http://fe:2633/RPC2"
    assert resolve_endpoint("http://x/RPC2") == "http://x/RPC2"
    assert auth_file_path(None) == "/etc/one/auth"
    monkeypatch.delenv("ONE_XMLRPC")
    monkeypatch.delenv("ONE_AUTH")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_endpoint(None) == "http://localhost:2633/RPC2"
    assert auth_file_path(None) == str(tmp_path / ".one" / "one_auth")
