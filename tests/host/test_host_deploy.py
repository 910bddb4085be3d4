"""The deploy wrapper: ``deploy <deployment_file> <host> <vm_id> <host>``, domain XML on stdin.

The stock ``../kvm/deploy`` is the recording stand-in of hostkit: it gets our argv, and on
stdin the domain XML with only the balloon options inserted (every other byte the same),
and its stdout (the deploy_id) and exit code are the wrapper's. A real ``virsh create`` of
the edited XML, with the guest using the options, is in the lab tier.
"""

import os
import re
import shutil
import textwrap

import hostkit
import pytest
from hostkit import driver_env, error_lines, run_action

# OpenNebula 7.4's deployment file as LibVirtDriverKVM.cc writes it (tabs, no <memballoon>:
# libvirt adds its default virtio balloon), trimmed to one disk and one NIC.
ONE_DEPLOYMENT = textwrap.dedent("""\
    <domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
    \t<name>one-42</name>
    \t<title>web-42</title>
    \t<uuid>2b4bd8b2-5a4e-4c39-9d5a-2f6c0b3d0042</uuid>
    \t<vcpu>1</vcpu>
    \t<cputune>
    \t\t<shares>1024</shares>
    \t</cputune>
    \t<memory>4194304</memory>
    \t<currentMemory>1048576</currentMemory>
    \t<os>
    \t\t<type arch='x86_64'>hvm</type>
    \t</os>
    \t<devices>
    \t\t<emulator><![CDATA[/usr/bin/qemu-kvm-one]]></emulator>
    \t\t<disk type='file' device='disk'>
    \t\t\t<source file='/var/lib/one//datastores/0/42/disk.0'/>
    \t\t\t<target dev='vda'/>
    \t\t\t<driver name='qemu' type='qcow2' cache='none' discard="unmap"/>
    \t\t</disk>
    \t\t<interface type='bridge'>
    \t\t\t<source bridge='br0'/>
    \t\t\t<mac address='02:00:0a:00:00:2a'/>
    \t\t\t<model type='virtio'/>
    \t\t</interface>
    \t\t<graphics type='vnc' listen='0.0.0.0' port='5942'/>
    \t</devices>
    \t<features>
    \t\t<acpi/>
    \t</features>
    \t<metadata>
    \t\t<one:vm xmlns:one="http://opennebula.org/xmlns/libvirt/1.0">
    \t\t\t<one:system_datastore><![CDATA[/var/lib/one//datastores/0/42]]></one:system_datastore>
    \t\t\t<one:name><![CDATA[web-42 "</devices>"]]></one:name>
    \t\t</one:vm>
    \t</metadata>
    </domain>
    """)
ALL_ON = "<memballoon model='virtio' autodeflate='on' freePageReporting='on'>" \
         "<stats period='10'/></memballoon>"
ARGS = ["/var/lib/one//datastores/0/42/deployment.0", "node1", "42", "node1"]


def with_balloon(balloon_xml):
    """ONE_DEPLOYMENT with a <memballoon> (e.g. from the admin's RAW data) as first device."""
    return ONE_DEPLOYMENT.replace("\t\t<disk type='file'", "\t\t%s\n\t\t<disk type='file'"
                                  % balloon_xml, 1)


def balloon_span(text):
    """(start, end) of the one <memballoon> element in text."""
    start = text.index("<memballoon")
    close = text.find("</memballoon>", start)
    end = close + len("</memballoon>") if close >= 0 else text.index("/>", start) + 2
    return start, end


def assert_only_the_balloon_changed(before, after):
    b0, b1 = balloon_span(before)
    a0, a1 = balloon_span(after)
    assert before[:b0] == after[:a0] and before[b1:] == after[a1:]


def deploy(fake, tmp_path, stdin, vm_template="", **env):
    """Run the installed wrapper; the deployment dir gets vm.xml, as one_vmm_exec writes it.
    ``vm_template``: USER_TEMPLATE body, or (TEMPLATE body, USER_TEMPLATE body)."""
    vm_dir = tmp_path / "datastores/0/42"
    vm_dir.mkdir(parents=True, exist_ok=True)
    template, user = vm_template if isinstance(vm_template, tuple) else ("", vm_template)
    (vm_dir / "vm.xml").write_text("<VM><ID>42</ID><TEMPLATE>%s</TEMPLATE>"
                                   "<USER_TEMPLATE>%s</USER_TEMPLATE></VM>" % (template, user))
    args = [str(vm_dir / "deployment.0")] + ARGS[1:]
    kvm_log = tmp_path / "kvm.log"
    if kvm_log.exists():
        kvm_log.unlink()
    result = run_action(fake.remotes, "deploy", args, stdin,
                        driver_env(None, CLOUDVAMP_FAKE_KVM_LOG=kvm_log, **env))
    return result, args, recorded_stdin(kvm_log)


def recorded_stdin(kvm_log):
    """What the stock deploy stand-in got on stdin, per call."""
    if not kvm_log.exists():
        return []
    text = kvm_log.read_text()
    return [m.group(1) for m in re.finditer(r"STDIN\n(.*?)\nEND\n", text, re.S)]


def info_lines(stderr):
    # "INFO: <vm_id> cloudvamp: ...": OpenNebula 7.4 files the line under the VM id it carries
    return [line for line in stderr.splitlines() if re.match(r"INFO: \d+ cloudvamp:", line)]


def test_stock_deploy_gets_our_argv_the_edited_xml_and_gives_its_uuid(installed, tmp_path):
    result, args, [stock_stdin] = deploy(installed, tmp_path, ONE_DEPLOYMENT,
                                         CLOUDVAMP_FAKE_KVM_STDOUT="2b4bd8b2-uuid")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2b4bd8b2-uuid\n"   # the deploy_id oned records
    log = (tmp_path / "kvm.log").read_text()
    assert "ACTION deploy\nARGV %s\n" % " ".join(args) in log
    # OpenNebula writes no <memballoon>: the wrapper adds libvirt's default one, with options,
    # as one line indented like the other devices, and changes no other byte
    assert "\n\t\t%s\n\t</devices>" % ALL_ON in stock_stdin
    assert stock_stdin.replace("\t\t%s\n" % ALL_ON, "") == ONE_DEPLOYMENT
    assert error_lines(result.stderr) == []
    [line] = info_lines(result.stderr)
    assert "deploy of VM 42: balloon autodeflate='on', freePageReporting='on'" in line


@pytest.mark.parametrize("rc", [1, 255])
def test_stock_exit_code_and_error_pass_through(installed, tmp_path, rc):
    result, _, _ = deploy(installed, tmp_path, ONE_DEPLOYMENT, CLOUDVAMP_FAKE_KVM_RC=rc,
                          CLOUDVAMP_FAKE_KVM_STDERR="Could not create domain from x")
    assert result.returncode == rc
    assert error_lines(result.stderr) == ["Could not create domain from x"]
    assert result.stdout == ""


@pytest.mark.parametrize("balloon, expected", [
    ("<memballoon model='virtio'/>", ALL_ON),
    ('<memballoon model="virtio"></memballoon>',
     "<memballoon model=\"virtio\" autodeflate='on' freePageReporting='on'>"
     "<stats period='10'/></memballoon>"),
    # explicit choices in the file (RAW data) are kept: a period, an autodeflate='off'
    ("<memballoon model='virtio' autodeflate='off'>\n\t\t\t<stats period='3'/>\n"
     "\t\t\t<address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/>\n"
     "\t\t</memballoon>",
     "<memballoon model='virtio' autodeflate='off' freePageReporting='on'>\n\t\t\t"
     "<stats period='3'/>\n\t\t\t<address type='pci' domain='0x0000' bus='0x00' slot='0x06' "
     "function='0x0'/>\n\t\t</memballoon>"),
    ("<memballoon  model = 'virtio-non-transitional' >  <alias name='balloon0'/></memballoon>",
     "<memballoon  model = 'virtio-non-transitional'  autodeflate='on' freePageReporting='on'>"
     "<stats period='10'/>  <alias name='balloon0'/></memballoon>"),
])
def test_an_existing_balloon_gets_the_options_and_nothing_else_changes(
        installed, tmp_path, balloon, expected):
    before = with_balloon(balloon)
    result, _, [stock_stdin] = deploy(installed, tmp_path, before)
    assert result.returncode == 0, result.stderr
    assert stock_stdin == with_balloon(expected)
    assert_only_the_balloon_changed(before, stock_stdin)
    assert len(info_lines(result.stderr)) == 1


@pytest.mark.parametrize("stdin, reason", [
    (ONE_DEPLOYMENT.replace("</devices>", "</device>"), "not well-formed XML"),
    ("", "not well-formed XML"),
    (with_balloon("<memballoon model='none'/>"), "<memballoon model='none'> is not a virtio"),
    (with_balloon("<memballoon model='xen'/>"), "is not a virtio balloon"),
    (with_balloon("<memballoon model='virtio'/><memballoon model='virtio'/>"),
     "has 2 <memballoon> elements"),
    ("<VM><ID>42</ID></VM>", "not a libvirt <domain>"),
    ("<domain type='kvm'><name>one-42</name></domain>", "no <devices> element"),
    (with_balloon("<memballoon model='virtio' autodeflate='on' freePageReporting='off'>"
                  "<stats period='2'/></memballoon>"), "already has every option"),
])
def test_no_usable_balloon_means_stock_deploy_and_one_line(installed, tmp_path, stdin, reason):
    result, _, [stock_stdin] = deploy(installed, tmp_path, stdin, CLOUDVAMP_FAKE_KVM_STDOUT="u")
    assert result.returncode == 0 and result.stdout == "u\n"
    assert stock_stdin == stdin   # byte for byte
    [line] = info_lines(result.stderr)
    assert "deploy of VM 42 as stock kvm: " in line and reason in line, line
    assert error_lines(result.stderr) == []


@pytest.mark.parametrize("env, expected", [
    ({"CLOUDVAMP_AUTODEFLATE": "no"},
     "<memballoon model='virtio' freePageReporting='on'><stats period='10'/></memballoon>"),
    ({"CLOUDVAMP_FREE_PAGE_REPORTING": "off", "CLOUDVAMP_BALLOON_STATS_PERIOD_S": "4"},
     "<memballoon model='virtio' autodeflate='on'><stats period='4'/></memballoon>"),
    ({"CLOUDVAMP_DEPLOY_STATS_PERIOD": "no"},
     "<memballoon model='virtio' autodeflate='on' freePageReporting='on'/>"),
])
def test_host_settings_switch_each_option(installed, tmp_path, env, expected):
    result, _, [stock_stdin] = deploy(installed, tmp_path, ONE_DEPLOYMENT, **env)
    assert result.returncode == 0
    assert "\t\t%s\n\t</devices>" % expected in stock_stdin


def test_host_settings_all_off_deploy_as_stock(installed, tmp_path):
    result, _, [stock_stdin] = deploy(installed, tmp_path, ONE_DEPLOYMENT,
                                      CLOUDVAMP_AUTODEFLATE="no", CLOUDVAMP_FREE_PAGE_REPORTING="no",
                                      CLOUDVAMP_DEPLOY_STATS_PERIOD="no")
    assert stock_stdin == ONE_DEPLOYMENT
    assert "every balloon option is off" in result.stderr


def test_settings_come_from_the_installed_cloudvamprc(tmp_path):
    fake = hostkit.build_fake_one(tmp_path / "one")
    hostkit.run_install(fake, "--no-package")
    rc = fake.remotes / "etc/vmm/cloudvamp/cloudvamprc"
    assert "CLOUDVAMP_AUTODEFLATE=yes" in rc.read_text()
    rc.write_text(rc.read_text().replace("CLOUDVAMP_AUTODEFLATE=yes", "CLOUDVAMP_AUTODEFLATE=no"))
    _, _, [stock_stdin] = deploy(fake, tmp_path, ONE_DEPLOYMENT)
    assert "autodeflate" not in stock_stdin and "freePageReporting='on'" in stock_stdin


@pytest.mark.parametrize("template, env, expected", [
    ("<CLOUDVAMP_AUTODEFLATE>NO</CLOUDVAMP_AUTODEFLATE>", {},
     "<memballoon model='virtio' freePageReporting='on'><stats period='10'/></memballoon>"),
    ("<CLOUDVAMP_FREE_PAGE_REPORTING>off</CLOUDVAMP_FREE_PAGE_REPORTING>"
     "<CLOUDVAMP_BALLOON_STATS>no</CLOUDVAMP_BALLOON_STATS>", {},
     "<memballoon model='virtio' autodeflate='on'/>"),
    # a template cannot turn on what the host turned off (the guest can write USER_TEMPLATE)
    ("<CLOUDVAMP_AUTODEFLATE>YES</CLOUDVAMP_AUTODEFLATE>", {"CLOUDVAMP_AUTODEFLATE": "no"},
     "<memballoon model='virtio' freePageReporting='on'><stats period='10'/></memballoon>"),
    (("<CLOUDVAMP_AUTODEFLATE>NO</CLOUDVAMP_AUTODEFLATE>",
      "<CLOUDVAMP_AUTODEFLATE>YES</CLOUDVAMP_AUTODEFLATE>"), {},
     "<memballoon model='virtio' freePageReporting='on'><stats period='10'/></memballoon>"),
])
def test_vm_template_turns_options_off_never_on(installed, tmp_path, template, env, expected):
    result, _, [stock_stdin] = deploy(installed, tmp_path, ONE_DEPLOYMENT, template, **env)
    assert result.returncode == 0
    assert "\t\t%s\n\t</devices>" % expected in stock_stdin


@pytest.mark.parametrize("template", [
    "<CLOUDVAMP>NO</CLOUDVAMP>",
    # the owner's guest-proof opt-out (a guest cannot write CONTEXT)
    ("<CONTEXT><TOKEN>YES</TOKEN><CLOUDVAMP>no</CLOUDVAMP></CONTEXT>", ""),
    # a guest's USER_TEMPLATE "YES" does not undo the owner's CONTEXT "NO"
    ("<CONTEXT><CLOUDVAMP>NO</CLOUDVAMP></CONTEXT>", "<CLOUDVAMP>YES</CLOUDVAMP>"),
])
def test_opted_out_vm_deploys_as_stock(installed, tmp_path, template):
    _, _, [stock_stdin] = deploy(installed, tmp_path, ONE_DEPLOYMENT, template)
    assert stock_stdin == ONE_DEPLOYMENT


REJECTING_KVM_DEPLOY = textwrap.dedent("""\
    #!/bin/sh
    # stand-in for an old QEMU: virsh create refuses the balloon options
    xml=$(cat); echo "$xml" >> "$CLOUDVAMP_FAKE_KVM_LOG"; echo "----" >> "$CLOUDVAMP_FAKE_KVM_LOG"
    if echo "$xml" | grep -q autodeflate; then
      echo "error: unsupported configuration: deflate-on-oom is not supported by this QEMU binary" >&2
      echo "ERROR: Could not create domain from $1" >&2
      exit 255
    fi
    echo 2b4bd8b2-uuid
    """)


def test_options_refused_by_libvirt_deploy_again_unchanged(tmp_path):
    fake = hostkit.build_fake_one(tmp_path / "one", kvm_actions={"deploy": REJECTING_KVM_DEPLOY})
    hostkit.run_install(fake, "--no-package")
    kvm_log = tmp_path / "kvm.log"
    result = run_action(fake.remotes, "deploy", ARGS, ONE_DEPLOYMENT,
                        driver_env(None, CLOUDVAMP_FAKE_KVM_LOG=kvm_log))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2b4bd8b2-uuid\n"
    first, second = kvm_log.read_text().split("----\n")[:2]
    assert "autodeflate='on'" in first and second == ONE_DEPLOYMENT
    assert "deploying the unchanged domain XML" in result.stderr
    assert error_lines(result.stderr) == []


def test_a_broken_host_library_still_deploys_as_stock(tmp_path):
    fake = hostkit.build_fake_one(tmp_path / "one")
    hostkit.run_install(fake, "--no-package")
    shutil.rmtree(fake.remotes / "lib/python/cloudvamp_host")
    kvm_log = tmp_path / "kvm.log"
    result = run_action(fake.remotes, "deploy", ARGS, ONE_DEPLOYMENT,
                        driver_env(None, CLOUDVAMP_FAKE_KVM_LOG=kvm_log,
                                   CLOUDVAMP_FAKE_KVM_STDOUT="u", CLOUDVAMP_FAKE_KVM_RC=3))
    assert result.returncode == 3 and result.stdout == "u\n"
    assert recorded_stdin(kvm_log) == [ONE_DEPLOYMENT]
    assert "ARGV %s\n" % " ".join(ARGS) in kvm_log.read_text()
    assert "deploy as stock kvm: cannot load cloudvamp_host" in result.stderr
    assert error_lines(result.stderr) == []


def test_install_puts_our_deploy_in_place_of_the_kvm_link(installed):
    deploy_path = installed.remotes / "vmm/cloudvamp/deploy"
    assert not deploy_path.is_symlink() and os.access(deploy_path, os.X_OK)


def test_upgrade_replaces_the_old_deploy_link(tmp_path):
    """An install from before deploy was ours has vmm/cloudvamp/deploy -> ../kvm/deploy."""
    fake = hostkit.build_fake_one(tmp_path / "one")
    hostkit.run_install(fake, "--no-package")
    deploy_path = fake.remotes / "vmm/cloudvamp/deploy"
    deploy_path.unlink()
    deploy_path.symlink_to("../kvm/deploy")
    hostkit.run_install(fake, "--no-package")
    assert not deploy_path.is_symlink()
    assert (fake.remotes / "vmm/kvm/deploy").read_text().startswith("#!/bin/sh\n# test stand-in")
