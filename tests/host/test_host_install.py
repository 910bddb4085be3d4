"""install.sh into a throw-away OpenNebula tree: layout, idempotence, --dry-run, --uninstall."""

import os
import subprocess
from pathlib import Path

import hostkit
import pytest
from hostkit import build_fake_one, run_install
from one_template import parse_template

COMMON = ("--no-package",)


def snapshot(root):
    """Every path under root with its type, link target, mode and content."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                state[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                state[relative] = ("dir", oct(path.stat().st_mode))
            else:
                state[relative] = ("file", oct(path.stat().st_mode), path.read_bytes())
    return state


@pytest.fixture
def fake(tmp_path):
    return build_fake_one(tmp_path / "one")


def test_layout(fake):
    result = run_install(fake, *COMMON)
    remotes = fake.remotes
    assert os.readlink(remotes / "im/cloudvamp.d") == "kvm.d"
    vmm = remotes / "vmm/cloudvamp"
    for name in ("shutdown", "cancel", "reboot", "poll", "opennebula_vm.rb"):
        assert os.readlink(vmm / name) == "../kvm/" + name
        assert (vmm / name).resolve() == (remotes / "vmm/kvm" / name).resolve()
    for name in ("deploy", "resize", "migrate"):
        assert not (vmm / name).is_symlink() and os.access(vmm / name, os.X_OK)
    probes = remotes / "im/cloudvamp-probes.d"
    # categories we add to are real dirs with the kvm probes linked one by one
    assert not (probes / "vm/monitor").is_symlink()
    assert os.readlink(probes / "vm/monitor/poll.rb") == "../../../kvm-probes.d/vm/monitor/poll.rb"
    assert (probes / "vm/monitor/poll.rb").exists()
    assert os.access(probes / "vm/monitor/cloudvamp_balloon.py", os.X_OK)
    assert os.readlink(probes / "host/system/linux_host.rb") == \
        "../../../kvm-probes.d/host/system/linux_host.rb"
    assert os.access(probes / "host/system/cloudvamp_host_memory.py", os.X_OK)
    # the others are whole-dir links
    for category in ("host/beacon", "host/monitor", "vm/status", "vm/snapshot"):
        assert os.readlink(probes / category) == "../../kvm-probes.d/" + category
        assert (probes / category).is_dir()
    assert (remotes / "lib/python/cloudvamp_host/vm_monitor.py").is_file()
    assert (remotes / "etc/vmm/cloudvamp/cloudvamprc").is_file()
    assert "onehost sync -f" in result.stdout
    assert "onehost create <host> -i cloudvamp -v cloudvamp" in result.stdout
    assert 'MEMORY_RESIZE_MODE="BALLOONING"' in result.stdout and 'TOKEN="YES"' in result.stdout
    assert "deflate-on-OOM" in result.stdout and "CLOUDVAMP_AUTODEFLATE=no" in result.stdout


def test_config_blocks_parse_and_register_the_drivers(fake):
    run_install(fake, *COMMON)
    oned = dict(parse_template((fake.etc / "oned.conf").read_text()).__iter__())
    monitord = parse_template((fake.etc / "monitord.conf").read_text())
    vm_mads = [value for name, value in parse_template((fake.etc / "oned.conf").read_text())
               if name == "VM_MAD"]
    assert [v["NAME"] for v in vm_mads] == ["kvm", "cloudvamp"]  # the stock kvm one stays
    ours = vm_mads[1]
    assert ours["LIVE_RESIZE"] == "yes" and ours["TYPE"] == "kvm"
    assert ours["ARGUMENTS"] == "-t 15 -r 0 cloudvamp -p" and ours["EXECUTABLE"] == "one_vmm_exec"
    im_mads = [value for name, value in monitord if name == "IM_MAD"]
    assert im_mads[1]["NAME"] == "cloudvamp"
    assert im_mads[1]["ARGUMENTS"] == "-r 3 -t 15 -w 90 cloudvamp"
    assert im_mads[1]["EXECUTABLE"] == "one_im_ssh"
    assert oned  # parsed


def test_systemd_unit_runs_cvem(fake):
    run_install(fake, *COMMON)
    unit = (fake.systemd / "cloudvamp-cvem.service").read_text()
    assert "ExecStart=%s/bin/cvem --config %s/cvem.conf run" % (fake.root / "venv", fake.etc) in unit
    assert "@" not in unit


def test_second_run_changes_nothing(fake):
    run_install(fake, *COMMON)
    before = snapshot(fake.root)
    run_install(fake, *COMMON)
    assert snapshot(fake.root) == before
    assert (fake.etc / "oned.conf").read_text().count('NAME              = "cloudvamp"') == 1


def test_dry_run_writes_nothing(fake):
    before = snapshot(fake.root)
    result = run_install(fake, "--dry-run")  # with the package step too
    assert snapshot(fake.root) == before
    assert "would run: " in result.stdout and "venv" in result.stdout
    assert "would add to %s/oned.conf" % fake.etc in result.stdout
    assert "dry run: nothing was changed" in result.stdout


def test_print_config_only_prints(fake):
    before = snapshot(fake.root)
    result = run_install(fake, "--print-config")
    assert snapshot(fake.root) == before
    attributes = [a for a in parse_template(result.stdout)]
    assert [name for name, _ in attributes] == ["IM_MAD", "VM_MAD"]
    assert attributes[1][1]["LIVE_RESIZE"] == "yes"


def test_uninstall_restores_the_tree(fake):
    before = snapshot(fake.root)
    run_install(fake, *COMMON)
    run_install(fake, "--uninstall")
    assert snapshot(fake.root) == before


def test_uninstall_dry_run_writes_nothing(fake):
    run_install(fake, *COMMON)
    before = snapshot(fake.root)
    result = run_install(fake, "--uninstall", "--dry-run")
    assert snapshot(fake.root) == before
    assert "would run: rm -rf" in result.stdout


def test_sample_cvem_conf_is_installed_once_and_kept_when_edited(fake):
    sample = hostkit.REPO / "etc" / "cvem.conf"
    if not sample.is_file():
        pytest.skip("no etc/cvem.conf sample in this tree yet")
    run_install(fake, *COMMON)
    installed = fake.etc / "cvem.conf"
    assert installed.read_bytes() == sample.read_bytes()
    installed.write_text(installed.read_text() + "\n# edited by the operator\n")
    run_install(fake, *COMMON)
    assert "edited by the operator" in installed.read_text()
    result = run_install(fake, "--uninstall")
    assert installed.is_file() and "keeping %s" % installed in result.stdout


def test_edited_settings_survive_reinstall(fake):
    run_install(fake, *COMMON)
    rc = fake.remotes / "etc/vmm/cloudvamp/cloudvamprc"
    rc.write_text(rc.read_text() + "CLOUDVAMP_RESIZE_TIMEOUT_S=90\n")
    run_install(fake, *COMMON)
    assert "CLOUDVAMP_RESIZE_TIMEOUT_S=90" in rc.read_text()


def test_follows_kvm_upgrades(fake):
    run_install(fake, *COMMON)
    kvm = fake.remotes / "vmm/kvm"
    (kvm / "backup").write_text("#!/bin/sh\n")
    (kvm / "poll").unlink()
    run_install(fake, *COMMON)
    vmm = fake.remotes / "vmm/cloudvamp"
    assert os.readlink(vmm / "backup") == "../kvm/backup"
    assert not os.path.lexists(vmm / "poll")


def test_refuses_a_tree_without_kvm(tmp_path):
    bare = hostkit.FakeOne(root=tmp_path, remotes=tmp_path / "remotes", etc=tmp_path / "etc",
                           systemd=tmp_path / "systemd")
    (tmp_path / "remotes").mkdir()
    result = run_install(bare, *COMMON, check=False)
    assert result.returncode != 0
    assert "vmm/kvm not found" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["remotes"]


def test_help():
    result = subprocess.run(["bash", str(hostkit.INSTALL_SH), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--dry-run" in result.stdout and "--uninstall" in result.stdout


def test_installs_the_cvem_package_into_a_venv(fake):
    """The real package step (pip builds from this tree; --no-deps keeps the test short)."""
    result = run_install(fake, "--pip-options", "--no-deps")
    assert result.returncode == 0
    cvem = fake.root / "venv/bin/cvem"
    assert cvem.is_file() and os.access(cvem, os.X_OK)
    assert "cvem.cli" in cvem.read_text()
    run_install(fake, "--uninstall")
    assert not (fake.root / "venv").exists()


def test_unit_command_line_is_accepted_by_cvem(fake, tmp_path):
    """The unit's arguments, handed to this tree's cvem (with --help so nothing runs)."""
    import shlex
    import sys
    run_install(fake, *COMMON)
    unit = (fake.systemd / "cloudvamp-cvem.service").read_text()
    exec_start = next(line.split("=", 1)[1] for line in unit.splitlines()
                      if line.startswith("ExecStart="))
    arguments = shlex.split(exec_start)[1:]
    config = tmp_path / "cvem.conf"
    config.write_text("")
    arguments[arguments.index("--config") + 1] = str(config)
    cvem = Path(sys.executable).parent / "cvem"
    result = subprocess.run([str(cvem)] + arguments + ["--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Usage: cvem run" in result.stdout
