"""VMM action ``resize`` for the cloudvamp driver (``remotes/vmm/cloudvamp/resize``).

oned calls it on the host as ``resize <deploy_id> <vm_id> <host>`` with the action XML on
stdin; the new MEMORY (MiB) is in VM/TEMPLATE/MEMORY, the old one in
VM/TEMPLATE/RESIZE/MEMORY. A BALLOONING memory change is done here, through libvirt, and
verified; HOTPLUG memory and VCPU changes are left to the stock ``../kvm/resize``.
"""

import os

from . import action_xml
from .balloon import resize_balloon
from .bounded import BoundedLibvirt
from .driver_io import ActionError, log_info, run_action, run_stock_kvm
from .settings import load_settings


def resize(argv, stdin_bytes, environ=None):
    """Return the exit code; raise ActionError for a failure with a one-line reason."""
    if len(argv) < 2 or not argv[1]:
        raise ActionError("usage: resize <deploy_id> <vm_id> <host> (action XML on stdin)")
    deploy_id = argv[1]
    script_dir = os.path.dirname(os.path.abspath(argv[0]))
    request = action_xml.parse_resize_request(stdin_bytes)

    if request.memory_resize_mode != "BALLOONING" or not request.memory_changes:
        # HOTPLUG DIMMs and CPU-only resizes are the stock driver's business.
        return run_stock_kvm("resize", argv, stdin_bytes, script_dir)
    if request.new_memory_mib <= 0:
        raise ActionError("new MEMORY %d MiB is not positive" % request.new_memory_mib)

    settings = load_settings(environ)
    target_kib = request.new_memory_mib * 1024
    restore_kib = request.old_memory_mib * 1024 if request.old_memory_mib else None
    lv = BoundedLibvirt(settings.libvirt_uri, settings.libvirt_call_timeout_s)
    try:
        dom = lv.lookup_domain(deploy_id)
        actual_kib, took_s = resize_balloon(lv, dom, deploy_id, target_kib, restore_kib, settings)
    finally:
        lv.close()
    log_info("balloon of %s set from %s to %d MiB, actual %d KiB after %.2f s"
             % (deploy_id, request.old_memory_mib, request.new_memory_mib, actual_kib, took_s))

    if request.vcpu_changes:
        # Memory is done; let stock kvm/resize do the VCPUs without ballooning again.
        return run_stock_kvm("resize", argv, action_xml.with_memory_unchanged(stdin_bytes),
                             script_dir)
    return 0


def main(argv):
    run_action("resize", resize, argv)
