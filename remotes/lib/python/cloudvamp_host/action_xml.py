"""The ``<VMM_DRIVER_ACTION_DATA>`` document one_vmm_exec writes to an action's stdin."""

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Optional

from .driver_io import ActionError


@dataclass(frozen=True)
class ResizeRequest:
    new_memory_mib: Optional[int]   # VM/TEMPLATE/MEMORY (already the new value)
    old_memory_mib: Optional[int]   # VM/TEMPLATE/RESIZE/MEMORY
    memory_resize_mode: str         # BALLOONING (default when unset) or HOTPLUG
    new_vcpu: Optional[int]
    old_vcpu: Optional[int]

    @property
    def memory_changes(self):
        return self.new_memory_mib is not None and self.new_memory_mib != self.old_memory_mib

    @property
    def vcpu_changes(self):
        return self.new_vcpu is not None and self.new_vcpu != self.old_vcpu


def parse_document(xml_bytes):
    if not xml_bytes or not xml_bytes.strip():
        raise ActionError("no action XML on stdin (expected VMM_DRIVER_ACTION_DATA)")
    try:
        return ElementTree.fromstring(xml_bytes)
    except ElementTree.ParseError as error:
        raise ActionError("action XML on stdin is not valid XML: %s" % error) from None


def _vm_template(root):
    # The VM element sits under VMM_DRIVER_ACTION_DATA; accept a bare <VM> too.
    template = root.find("TEMPLATE") if root.tag == "VM" else root.find("VM/TEMPLATE")
    if template is None:
        raise ActionError("action XML has no VM/TEMPLATE element")
    return template


def _int_or_none(element, path, what):
    node = element.find(path)
    if node is None or node.text is None or not node.text.strip():
        return None
    try:
        return int(node.text.strip())
    except ValueError:
        raise ActionError("%s in the action XML is not an integer: %r" % (what, node.text)) from None


def parse_resize_request(xml_bytes):
    template = _vm_template(parse_document(xml_bytes))
    mode_node = template.find("MEMORY_RESIZE_MODE")
    mode = (mode_node.text or "").strip().upper() if mode_node is not None else ""
    return ResizeRequest(
        new_memory_mib=_int_or_none(template, "MEMORY", "VM/TEMPLATE/MEMORY"),
        old_memory_mib=_int_or_none(template, "RESIZE/MEMORY", "VM/TEMPLATE/RESIZE/MEMORY"),
        memory_resize_mode=mode or "BALLOONING",
        new_vcpu=_int_or_none(template, "VCPU", "VM/TEMPLATE/VCPU"),
        old_vcpu=_int_or_none(template, "RESIZE/VCPU", "VM/TEMPLATE/RESIZE/VCPU"),
    )


def template_memory_mib(xml_bytes):
    """VM/TEMPLATE/MEMORY or None; never raises (used as a fallback only)."""
    try:
        return _int_or_none(_vm_template(parse_document(xml_bytes)), "MEMORY", "MEMORY")
    except ActionError:
        return None


def with_memory_unchanged(xml_bytes):
    """The same document with VM/TEMPLATE/MEMORY set back to RESIZE/MEMORY.

    Stock ``kvm/resize`` only touches memory when MEMORY differs from RESIZE/MEMORY, so
    this lets it apply a VCPU change without ballooning a second time.
    """
    root = parse_document(xml_bytes)
    template = _vm_template(root)
    old = template.find("RESIZE/MEMORY")
    new = template.find("MEMORY")
    if old is not None and new is not None:
        new.text = old.text
    return ElementTree.tostring(root)
