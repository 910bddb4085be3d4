"""VMM action ``migrate`` for the cloudvamp driver (``remotes/vmm/cloudvamp/migrate``).

oned runs it on the *source* host as ``migrate <deploy_id> <dst_host> <src_host> <vm_id>
<host>`` with the action XML on stdin. The stock ``../kvm/migrate`` does the migration;
afterwards we make sure the destination domain still has the balloon size it had on the
source, because oned's MEMORY (and so the host's MEM_USAGE) assumes it, and a balloon that
silently springs back to maxMemory on arrival would overcommit the destination.

Exit code: the stock migration's. If the migration succeeded but the balloon cannot be
verified or restored, we still exit 0 (the VM *is* on the destination; a failure would make
oned roll back a migration that happened) and log an ERROR: line to the VM log instead.
"""

import os

from . import action_xml
from .balloon import balloon_actual_kib, domain_memory_kib, set_balloon, wait_for_balloon
from .bounded import BoundedLibvirt
from .driver_io import ActionError, log_error, log_info, run_action, run_stock_kvm
from .settings import load_settings


def read_source_balloon_kib(settings, deploy_id, stdin_bytes):
    """The balloon size to keep: measured on the source, else the template's MEMORY."""
    try:
        lv = BoundedLibvirt(settings.libvirt_uri, settings.libvirt_call_timeout_s)
        try:
            return balloon_actual_kib(lv, lv.lookup_domain(deploy_id)), "source balloon"
        finally:
            lv.close()
    except Exception as error:
        log_info("could not read the balloon of %s before migrating (%s); using VM MEMORY"
                 % (deploy_id, error))
    memory_mib = action_xml.template_memory_mib(stdin_bytes)
    if memory_mib:
        return memory_mib * 1024, "VM/TEMPLATE/MEMORY"
    return None, None


def hold_balloon_on_destination(settings, deploy_id, dst_host, target_kib):
    """Re-assert the balloon target on the destination and wait until it is reached.

    The target is always set again, even when the balloon looks right: 'actual' is only
    where the balloon is now, not where it is heading (a balloon already deflating towards
    maxMemory can still read the old size for a moment), and libvirt shows no target.
    Setting an unchanged target is a no-op for qemu.
    """
    dest_uri = settings.migrate_dest_uri.replace("{host}", dst_host)
    lv = BoundedLibvirt(dest_uri, settings.libvirt_call_timeout_s)
    try:
        dom = lv.lookup_domain(deploy_id)
        _state, max_kib, _current_kib = domain_memory_kib(lv, dom)
        target_kib = min(target_kib, max_kib)
        arrived_kib = balloon_actual_kib(lv, dom)
        held = abs(arrived_kib - target_kib) <= settings.balloon_tolerance_kib
        if not held:
            log_info("balloon of %s is %d KiB on %s after migration, setting it back to %d KiB"
                     % (deploy_id, arrived_kib, dst_host, target_kib))
        set_balloon(lv, dom, target_kib)
        actual_kib, waited_s = wait_for_balloon(lv, dom, target_kib, settings.balloon_tolerance_kib,
                                                settings.resize_timeout_s)
        if held:
            log_info("balloon of %s held across migration to %s: %d KiB"
                     % (deploy_id, dst_host, actual_kib))
        else:
            log_info("balloon of %s restored on %s: %d KiB after %.2f s"
                     % (deploy_id, dst_host, actual_kib, waited_s))
    finally:
        lv.close()


def migrate(argv, stdin_bytes, environ=None):
    if len(argv) < 4 or not argv[1] or not argv[2]:
        raise ActionError("usage: migrate <deploy_id> <dst_host> <src_host> <vm_id> <host>"
                          " (action XML on stdin)")
    deploy_id, dst_host = argv[1], argv[2]
    script_dir = os.path.dirname(os.path.abspath(argv[0]))
    settings = load_settings(environ)

    target_kib, source = read_source_balloon_kib(settings, deploy_id, stdin_bytes)
    exit_code = run_stock_kvm("migrate", argv, stdin_bytes, script_dir)
    if exit_code != 0 or target_kib is None:
        return exit_code
    try:
        hold_balloon_on_destination(settings, deploy_id, dst_host, target_kib)
    except Exception as error:
        log_error("VM migrated, but its balloon (%d KiB, from %s) could not be verified on %s: %s"
                  % (target_kib, source, dst_host, error))
    return 0


def main(argv):
    run_action("migrate", migrate, argv)
