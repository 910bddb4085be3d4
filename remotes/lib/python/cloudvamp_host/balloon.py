"""Set a running domain's balloon and wait until it has really moved."""

import time
import xml.etree.ElementTree as ElementTree

from .driver_io import ActionError, log_info

_POLL_INTERVAL_S = 0.1

# virDomainState values for which a balloon change makes sense.
_RUNNING, _PAUSED = 1, 3


def balloon_actual_kib(lv, dom):
    """Current balloon size: memoryStats 'actual', or libvirt's current memory without stats."""
    stats = lv.call("memoryStats", dom.memoryStats)
    if "actual" in stats:
        return int(stats["actual"])
    return int(lv.call("info", dom.info)[2])


def domain_memory_kib(lv, dom):
    """(state, max_kib, current_kib) from virDomainGetInfo."""
    info = lv.call("info", dom.info)
    return int(info[0]), int(info[1]), int(info[2])


def check_target(lv, dom, deploy_id, target_kib):
    state, max_kib, _current_kib = domain_memory_kib(lv, dom)
    if state not in (_RUNNING, _PAUSED):
        raise ActionError("domain %s is not running (libvirt state %d); cannot balloon it"
                          % (deploy_id, state))
    if target_kib > max_kib:
        raise ActionError(
            "refusing to set memory of %s to %d MiB: above the domain's maxMemory of %d MiB "
            "(the VM needs MEMORY_MAX >= the new MEMORY, set at creation)"
            % (deploy_id, target_kib // 1024, max_kib // 1024))
    return max_kib


def set_balloon(lv, dom, target_kib):
    """Set the live balloon target and, for persistent domains, the persistent currentMemory.

    OpenNebula's domains are transient (``virsh create``) so usually only LIVE applies.
    LIVE and CONFIG are two calls, not one LIVE|CONFIG call: CONFIG fails on transient
    domains, and libvirt's test driver rejects the combined flags.
    """
    libvirt = lv.libvirt
    lv.call("setMemoryFlags(LIVE)", dom.setMemoryFlags, target_kib, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    if lv.call("isPersistent", dom.isPersistent):
        lv.call("setMemoryFlags(CONFIG)", dom.setMemoryFlags, target_kib,
                libvirt.VIR_DOMAIN_AFFECT_CONFIG)


# The balloon target cloudvamp last set, kept in the domain's own (live) metadata: libvirt's
# currentMemory follows the balloon's actual size once the guest deflates it on its own
# (deflate-on-OOM), so it cannot tell the target any more. Metadata travels with migrations.
TARGET_METADATA_URI = "urn:cloudvamp:balloon:1"
TARGET_METADATA_KEY = "cloudvamp"


def record_target(lv, dom, target_kib):
    """Best effort: a resize that worked must not fail because its note could not be kept."""
    libvirt = lv.libvirt
    text = "<balloon target_kib='%d'/>" % int(target_kib)
    try:
        lv.call("setMetadata", dom.setMetadata, libvirt.VIR_DOMAIN_METADATA_ELEMENT, text,
                TARGET_METADATA_KEY, TARGET_METADATA_URI, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except Exception as error:
        log_info("could not record the balloon target in the domain metadata: %s" % error)


def recorded_target_kib(domain_xml):
    """The target :func:`record_target` kept, from a live domain XML; None if there is none."""
    try:
        node = ElementTree.fromstring(domain_xml).find(
            "metadata/{%s}balloon" % TARGET_METADATA_URI)
        return int(node.get("target_kib")) if node is not None else None
    except (ElementTree.ParseError, TypeError, ValueError):
        return None


def wait_for_balloon(lv, dom, target_kib, tolerance_kib, timeout_s):
    """Poll until |actual - target| <= tolerance; return (actual_kib, seconds waited).

    Raises ActionError with the last actual value when the timeout expires: a guest
    without the virtio_balloon driver, or one that cannot free the memory, never gets there.
    """
    started = time.monotonic()
    actual_kib = None
    while True:
        actual_kib = balloon_actual_kib(lv, dom)
        if abs(actual_kib - target_kib) <= tolerance_kib:
            return actual_kib, time.monotonic() - started
        if time.monotonic() - started >= timeout_s:
            raise ActionError(
                "balloon did not reach %d KiB within %g s (actual %d KiB); is the virtio_balloon "
                "driver loaded in the guest, and can the guest free that much memory?"
                % (target_kib, timeout_s, actual_kib))
        time.sleep(_POLL_INTERVAL_S)


def resize_balloon(lv, dom, deploy_id, target_kib, restore_kib, settings):
    """Check, set and verify; on a verification timeout put the balloon back to restore_kib.

    oned rolls its own MEMORY back when the action fails, so the balloon must follow,
    otherwise oned's view and the guest's memory disagree.
    """
    check_target(lv, dom, deploy_id, target_kib)
    started = time.monotonic()
    set_balloon(lv, dom, target_kib)
    try:
        actual_kib, _waited_s = wait_for_balloon(
            lv, dom, target_kib, settings.balloon_tolerance_kib, settings.resize_timeout_s)
    except ActionError:
        if restore_kib is not None:
            try:
                set_balloon(lv, dom, restore_kib)
                log_info("balloon of %s set back to %d KiB after the failed resize"
                         % (deploy_id, restore_kib))
            except Exception as error:  # the original failure is what matters to oned
                log_info("could not set the balloon of %s back: %s" % (deploy_id, error))
        raise
    record_target(lv, dom, target_kib)
    return actual_kib, time.monotonic() - started
