"""The migrate wrapper: ``migrate <deploy_id> <dst_host> <src_host> <vm_id> <host>``.

The test driver cannot migrate (lab.md §2), so here the stock ``../kvm/migrate`` is the
recording stand-in and the "destination" is a second test-driver node file reached through
``CLOUDVAMP_MIGRATE_DEST_URI=test:///.../{host}.xml``. What this proves: argv/stdin/exit
code pass-through, the balloon read on the source, the check and the repair on the
destination. A real live migration is in the lab tier.
"""

import hostkit
import pytest
from hostkit import UUID_ONE_5
from hostkit import action_xml, driver_env, error_lines, run_action

ARGS = [UUID_ONE_5, "node2", "node1", 5, "node1"]


@pytest.fixture
def hosts(tmp_path):
    """Source node1: one-5 ballooned to 2048 of 4096 MiB. node2 is where it 'arrives'."""
    source_uri = hostkit.write_test_node(tmp_path / "node1.xml", [
        hostkit.fake_domain_xml("one-5", UUID_ONE_5, 4096, 2048, stats_period_s=10)])
    return tmp_path, source_uri


def arrive(tmp_path, current_mib):
    hostkit.write_test_node(tmp_path / "node2.xml", [
        hostkit.fake_domain_xml("one-5", UUID_ONE_5, 4096, current_mib, stats_period_s=10)])


def migrate(installed, tmp_path, source_uri, **env):
    kvm_log = tmp_path / "kvm.log"
    env.setdefault("CLOUDVAMP_MIGRATE_DEST_URI", "test://%s/{host}.xml" % tmp_path)
    full_env = driver_env(source_uri, CLOUDVAMP_FAKE_KVM_LOG=kvm_log, **env)
    xml = action_xml(UUID_ONE_5, 5, 2048, host="node1", migr_host="node2")
    return run_action(installed.remotes, "migrate", ARGS, xml, full_env), xml, kvm_log


def test_stock_migrate_gets_our_argv_and_stdin(installed, hosts):
    tmp_path, source_uri = hosts
    arrive(tmp_path, 2048)
    result, xml, kvm_log = migrate(installed, tmp_path, source_uri,
                                   CLOUDVAMP_FAKE_KVM_STDOUT="stock says hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "stock says hi\n"
    log = kvm_log.read_text()
    assert "ACTION migrate\nARGV %s node2 node1 5 node1\n" % UUID_ONE_5 in log
    assert xml in log


def test_balloon_that_held_is_only_checked(installed, hosts):
    tmp_path, source_uri = hosts
    arrive(tmp_path, 2048)
    result, _, _ = migrate(installed, tmp_path, source_uri)
    assert result.returncode == 0
    assert "held across migration to node2: 2097152 KiB" in result.stderr
    assert error_lines(result.stderr) == []


def test_balloon_lost_on_destination_is_restored(installed, hosts):
    tmp_path, source_uri = hosts
    arrive(tmp_path, 4096)  # arrived with the balloon deflated to maxMemory
    result, _, _ = migrate(installed, tmp_path, source_uri)
    assert result.returncode == 0, result.stderr
    assert "is 4194304 KiB on node2 after migration, setting it back to 2097152 KiB" in result.stderr
    assert "restored on node2: 2097152 KiB" in result.stderr
    assert error_lines(result.stderr) == []


def test_failed_stock_migration_is_passed_through(installed, hosts):
    tmp_path, source_uri = hosts
    result, _, _ = migrate(installed, tmp_path, source_uri, CLOUDVAMP_FAKE_KVM_RC=1,
                           CLOUDVAMP_FAKE_KVM_STDERR="error: operation failed: migration job: unexpectedly failed")
    assert result.returncode == 1
    assert error_lines(result.stderr) == ["error: operation failed: migration job: unexpectedly failed"]
    assert "node2" not in result.stderr  # no destination check after a failed migration


def test_unverifiable_destination_still_reports_the_migration(installed, hosts):
    """The VM moved; failing now would make oned roll back a migration that happened."""
    tmp_path, source_uri = hosts
    unreachable = "qemu+unix:///system?socket=%s/{host}-sock" % tmp_path
    result, _, _ = migrate(installed, tmp_path, source_uri, CLOUDVAMP_MIGRATE_DEST_URI=unreachable)
    assert result.returncode == 0
    assert error_lines(result.stderr) == []
    # "ERROR: <vm_id> ...": OpenNebula 7.4 files a driver log line under the VM id it carries
    assert any(line.startswith("ERROR: 5 cloudvamp: VM migrated, but its balloon (2097152 KiB")
               for line in result.stderr.splitlines())


def test_source_unreadable_falls_back_to_template_memory(installed, tmp_path):
    arrive(tmp_path, 4096)
    broken_source = "qemu+unix:///system?socket=%s" % (tmp_path / "nothing-here")
    result, _, _ = migrate(installed, tmp_path, broken_source)
    assert result.returncode == 0, result.stderr
    assert "using VM MEMORY" in result.stderr
    assert "setting it back to 2097152 KiB" in result.stderr  # TEMPLATE/MEMORY 2048 MiB


def test_missing_arguments(installed, hosts):
    tmp_path, source_uri = hosts
    result = run_action(installed.remotes, "migrate", [UUID_ONE_5], "", driver_env(source_uri))
    assert result.returncode == 1 and "usage: migrate" in result.stderr
