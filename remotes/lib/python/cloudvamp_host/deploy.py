"""VMM action ``deploy`` for the cloudvamp driver (``remotes/vmm/cloudvamp/deploy``).

one_vmm_exec calls it on the host exactly as the stock ``kvm/deploy``:
``deploy <remote_deployment_file> <host> <vm_id> <host>`` with the libvirt domain XML on
stdin (the stock script writes stdin to the deployment file and ``virsh create``s it, then
prints the domain UUID: the deploy_id). Before that, the driver has written the VM's XML
to ``vm.xml`` next to the deployment file; that is where per-VM choices are read.

This wrapper puts deflate-on-OOM, free page reporting and a statistics period on the
virtio balloon (:mod:`.memballoon`, only inserted bytes) and hands over to the stock
deploy, whose stdout and exit code are ours. Anything unexpected (malformed XML, no virtio
balloon, unreadable settings) means the stock deploy with the unchanged XML and one log
line: a VM must never fail to start because of cloudvamp's extras. If libvirt/QEMU rejects
the options (too old), the stock deploy is run once more with the unchanged XML.
"""

import os
import re
import xml.etree.ElementTree as ElementTree

from . import keys
from .driver_io import ActionError, call_stock_kvm, log_info, pass_through, run_action
from .memballoon import BalloonOptions, NoBalloonEdit, set_balloon_options
from .settings import load_settings

OFF_VALUES = ("NO", "FALSE", "OFF", "0", "DISABLED")
# what libvirt/QEMU say when they cannot do one of our options
_REJECTED_OPTION = re.compile(r"autodeflate|deflate-on-oom|free.?page.?reporting|memballoon|"
                              r"balloon|stats period", re.IGNORECASE)


def vm_template_switches(vm_xml_path):
    """{key: [values]} of our per-VM switches in vm.xml: USER_TEMPLATE (where oned puts a
    template's custom attributes), TEMPLATE and TEMPLATE/CONTEXT (the owner's guest-proof
    place, as for the opt-out)."""
    try:
        root = ElementTree.parse(vm_xml_path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    found = {}
    for section in ("USER_TEMPLATE", "TEMPLATE", "TEMPLATE/CONTEXT"):
        for key in keys.DEPLOY_SWITCH_KEYS:
            node = root.find("%s/%s" % (section, key))
            if node is not None and node.text and node.text.strip():
                found.setdefault(key, []).append(node.text.strip())
    return found


def balloon_options(settings, switches):
    """Host settings, each of which the VM's template may only turn off, wherever it says so
    (never on: USER_TEMPLATE is writable by the owner and, through OneGate, by the guest)."""
    def off(key):
        return any(value.upper() in OFF_VALUES for value in (switches or {}).get(key, ()))

    if off(keys.VM_OPT_OUT):
        return BalloonOptions(False, False, None)
    return BalloonOptions(
        autodeflate=settings.autodeflate and not off(keys.VM_AUTODEFLATE),
        free_page_reporting=settings.free_page_reporting and not off(keys.VM_FREE_PAGE_REPORTING),
        stats_period_s=settings.stats_period_s
        if settings.deploy_stats_period and not off(keys.VM_BALLOON_STATS) else None)


def edited_domain(argv, stdin_bytes, environ=None):
    """(bytes for the stock deploy, one log line)."""
    dep_file = argv[1] if len(argv) > 1 else ""
    vm_id = argv[3] if len(argv) > 3 else "?"
    try:
        settings = load_settings(environ)
        switches = vm_template_switches(os.path.join(os.path.dirname(dep_file), "vm.xml"))
        options = balloon_options(settings, switches)
        new_bytes, summary = set_balloon_options(stdin_bytes, options)
    except NoBalloonEdit as reason:
        return stdin_bytes, "deploy of VM %s as stock kvm: %s" % (vm_id, reason)
    except Exception as error:  # a bug here must not stop a VM from starting
        return stdin_bytes, "deploy of VM %s as stock kvm: %s: %s" % (
            vm_id, type(error).__name__, error)
    return new_bytes, "deploy of VM %s: balloon %s" % (vm_id, summary)


def deploy(argv, stdin_bytes, environ=None):
    if len(argv) < 2 or not argv[1]:
        raise ActionError("usage: deploy <deployment_file> <host> <vm_id> <host> "
                          "(domain XML on stdin)")
    script_dir = os.path.dirname(os.path.abspath(argv[0]))
    new_bytes, line = edited_domain(argv, stdin_bytes, environ)
    log_info(line)
    completed = call_stock_kvm("deploy", argv, new_bytes, script_dir)
    if completed.returncode != 0 and new_bytes != stdin_bytes \
            and _REJECTED_OPTION.search(completed.stderr.decode("utf-8", "replace")):
        first_error = " ".join(completed.stderr.decode("utf-8", "replace").split())[-300:]
        log_info("deploy with the balloon options failed (%s); deploying the unchanged "
                 "domain XML" % first_error)
        completed = call_stock_kvm("deploy", argv, stdin_bytes, script_dir)
    return pass_through(completed)


def main(argv):
    run_action("deploy", deploy, argv)
