"""Parse oned's raw pool XML into :mod:`cvem.ports` records, fast and in bounded memory.

Why lxml and not pyone's typed bindings (measured, see docs/operations.md "Scale"):

* pyone's generateDS bindings **drop** MONITORING keys that vm.xsd does not declare, i.e.
  every ``CLOUDVAMP_*`` key of the IM probe; in ``vmpool.*`` results MONITORING is an
  ``xs:any`` blob with no names at all;
* they build a Python object per XML element: ~40x slower than this parser on the 203-VM
  recording and several GB of memory on a 10,000-VM pool.

Design for 10,000 VMs / 1,000 hosts (target: parse <= 2 s, peak <= 500 MB): an
``XMLPullParser`` fed in 1 MiB slices, reacting only to the end of each top-level object
(``tag=`` filter, done in C), reading the few fields needed by iterating direct children
(no XPath in the hot loop), then clearing the element and its finished siblings, so the
tree never holds more than one object. The caller pages ``infoextended`` too.
"""
from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Union

from lxml import etree

from ..keys import OPT_OUT_VALUES
from ..ports import RawHost, RawVm

XmlText = Union[str, bytes]

CHUNK = 1 << 20
_PREFIX = "CLOUDVAMP"


def _int(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            return None


def iter_objects(data: XmlText, tag: str) -> Iterator[etree._Element]:
    """Yield each top-level ``<tag>`` element of a pool document, then free it."""
    parser = etree.XMLPullParser(events=("end",), tag=tag, huge_tree=True,
                                 resolve_entities=False, no_network=True)
    for start in range(0, len(data), CHUNK):
        parser.feed(data[start:start + CHUNK])
        yield from _drain(parser)
    parser.close()
    yield from _drain(parser)


def _drain(parser) -> Iterator[etree._Element]:
    for _event, element in parser.read_events():
        parent = element.getparent()
        if parent is None or parent.getparent() is not None:
            continue  # the document itself (single-object reply) or a nested namesake
        yield element
        element.clear()
        while element.getprevious() is not None:
            del parent[0]


def _root_or_objects(data: XmlText, tag: str) -> Iterator[etree._Element]:
    """Objects of a pool document, or the single object of an ``info`` reply."""
    head = data[:64].lstrip()
    single = head.startswith(b"<" + tag.encode() + b">") if isinstance(head, bytes) \
        else head.startswith("<%s>" % tag)
    if single:
        yield etree.fromstring(data.encode() if isinstance(data, str) else data,
                               etree.XMLParser(huge_tree=True, resolve_entities=False))
    else:
        yield from iter_objects(data, tag)


# ------------------------------------------------------------------------------- VMs
_VM_INTS = {"ID", "UID", "GID", "STATE", "LCM_STATE"}
_VM_TEXTS = {"NAME", "UNAME", "GNAME"}
_TEMPLATE_KEYS = {"MEMORY", "MEMORY_MAX", "MEMORY_RESIZE_MODE", _PREFIX}
_CONTEXT_OPT_OUT = "CONTEXT/" + _PREFIX
_HISTORY_KEYS = {"HID", "HOSTNAME", "VM_MAD", "CID"}


def vm_from_element(vm: etree._Element, with_monitoring: bool = False) -> RawVm:
    ints: Dict[str, Optional[int]] = {}
    texts: Dict[str, str] = {}
    tmpl: Dict[str, str] = {}
    hist: Dict[str, str] = {}
    user: Dict[str, str] = {}
    mon: Dict[str, str] = {}
    for child in vm:
        tag = child.tag
        if tag in _VM_INTS:
            ints[tag] = _int(child.text)
        elif tag in _VM_TEXTS:
            texts[tag] = child.text or ""
        elif tag == "TEMPLATE":
            for item in child:
                if item.tag in _TEMPLATE_KEYS:
                    tmpl[item.tag] = (item.text or "").strip()
                elif item.tag == "CONTEXT":
                    # CONTEXT=[CLOUDVAMP="NO"]: the owner's opt-out where OneGate cannot
                    # reach (a top-level CLOUDVAMP lands in USER_TEMPLATE, see below).
                    value = item.findtext(_PREFIX)
                    if value is not None:
                        tmpl[_CONTEXT_OPT_OUT] = value.strip()
        elif tag == "USER_TEMPLATE":
            for item in child:
                name = item.tag
                if type(name) is str and name.startswith(_PREFIX):
                    user[name] = (item.text or "").strip()
        elif tag == "HISTORY_RECORDS":
            if len(child):
                for item in child[len(child) - 1]:
                    if item.tag in _HISTORY_KEYS:
                        hist[item.tag] = item.text or ""
        elif tag == "MONITORING" and with_monitoring:
            for item in child:
                if type(item.tag) is str and len(item) == 0:
                    mon[item.tag] = (item.text or "").strip()
    # What the owner or admin wrote where a guest cannot (TEMPLATE, its CONTEXT) decides;
    # the guest-writable USER_TEMPLATE (OneGate) may only add an opt-out, never lift one.
    # oned moves a top-level CLOUDVAMP of a VM template into USER_TEMPLATE, where a guest
    # can overwrite it: the owner's guest-proof opt-out is CONTEXT=[CLOUDVAMP="NO"].
    owner = _stricter_opt_out(tmpl.get(_PREFIX, ""), tmpl.get(_CONTEXT_OPT_OUT, ""))
    opt_out = _stricter_opt_out(owner, user.pop(_PREFIX, ""))
    vm_id = ints.get("ID")
    if vm_id is None:
        raise ValueError("VM without a numeric ID")
    return RawVm(
        vm_id=vm_id, name=texts.get("NAME", ""), uid=ints.get("UID") or 0,
        gid=ints.get("GID") or 0, uname=texts.get("UNAME", ""), gname=texts.get("GNAME", ""),
        state=ints.get("STATE", -1) if ints.get("STATE") is not None else -1,
        lcm_state=ints.get("LCM_STATE") if ints.get("LCM_STATE") is not None else -1,
        memory_mib=_int(tmpl.get("MEMORY")), memory_max_mib=_int(tmpl.get("MEMORY_MAX")),
        resize_mode=tmpl.get("MEMORY_RESIZE_MODE", "").upper(),
        host_id=_int(hist.get("HID")), host_name=hist.get("HOSTNAME", ""),
        vm_mad=hist.get("VM_MAD", ""), cluster_id=_int(hist.get("CID")),
        opt_out=opt_out, user=user, monitoring=mon)


def _stricter_opt_out(template_value: str, user_value: str) -> str:
    """The value that opts out if either does (the TEMPLATE's when both or neither do)."""
    if template_value.strip().upper() in OPT_OUT_VALUES:
        return template_value
    if user_value.strip().upper() in OPT_OUT_VALUES:
        return user_value
    return template_value or user_value


def parse_vm_pool(data: XmlText) -> List[RawVm]:
    """``one.vmpool.infoextended`` (or ``infoset``) XML -> records; a malformed VM is skipped
    (and reported through ``on_error`` of :func:`parse_vm_pool_checked`)."""
    return parse_vm_pool_checked(data)[0]


def parse_vm_pool_checked(data: XmlText, on_error: Optional[Callable] = None):
    out: List[RawVm] = []
    bad = 0
    for element in iter_objects(data, "VM"):
        try:
            out.append(vm_from_element(element))
        except ValueError as error:
            bad += 1
            if on_error is not None:
                on_error(error)
    return out, bad


def parse_vm(data: XmlText) -> RawVm:
    """``one.vm.info`` XML (with its last MONITORING record) -> record."""
    for element in _root_or_objects(data, "VM"):
        return vm_from_element(element, with_monitoring=True)
    raise ValueError("no <VM> element")


# ----------------------------------------------------------------------- monitoring
_MON_KEEP = {"ID", "TIMESTAMP", "MEMORY"}


def parse_monitoring(data: XmlText) -> Dict[int, Dict[str, str]]:
    """``one.vmpool.monitoring(-2, 0)`` XML -> {vm_id: {key: text}} (ID, TIMESTAMP,
    MEMORY and every CLOUDVAMP_* key); the newest record wins if several are given."""
    out: Dict[int, Dict[str, str]] = {}
    for record in iter_objects(data, "MONITORING"):
        values: Dict[str, str] = {}
        for item in record:
            tag = item.tag
            if tag in _MON_KEEP or (type(tag) is str and tag.startswith(_PREFIX)):
                values[tag] = (item.text or "").strip()
        vm_id = _int(values.get("ID"))
        if vm_id is None:
            continue
        old = out.get(vm_id)
        if old is None or (_int(values.get("TIMESTAMP")) or 0) >= \
                (_int(old.get("TIMESTAMP")) or 0):
            out[vm_id] = values
    return out


# ----------------------------------------------------------------------------- hosts
_HOST_INTS = {"ID", "STATE", "CLUSTER_ID"}
_HOST_TEXTS = {"NAME", "VM_MAD", "IM_MAD"}
_SHARE_KEYS = {"MEM_USAGE", "TOTAL_MEM", "MAX_MEM"}


def host_from_element(host: etree._Element) -> RawHost:
    ints: Dict[str, Optional[int]] = {}
    texts: Dict[str, str] = {}
    share: Dict[str, Optional[int]] = {}
    tmpl: Dict[str, str] = {}
    reserved = ""
    free_kib = None
    for child in host:
        tag = child.tag
        if tag in _HOST_INTS:
            ints[tag] = _int(child.text)
        elif tag in _HOST_TEXTS:
            texts[tag] = (child.text or "").strip()
        elif tag == "HOST_SHARE":
            for item in child:
                if item.tag in _SHARE_KEYS:
                    share[item.tag] = _int(item.text)
        elif tag == "TEMPLATE":
            for item in child:
                name = item.tag
                if name == "RESERVED_MEM":
                    reserved = (item.text or "").strip()
                elif type(name) is str and name.startswith(_PREFIX):
                    tmpl[name] = (item.text or "").strip()
        elif tag == "MONITORING":
            for item in child:
                if item.tag == "CAPACITY":
                    for cap in item:
                        if cap.tag == "FREE_MEMORY":
                            free_kib = _int(cap.text)
    host_id = ints.get("ID")
    if host_id is None:
        raise ValueError("HOST without a numeric ID")
    return RawHost(
        host_id=host_id, name=texts.get("NAME", ""), state=ints.get("STATE") or 0,
        vm_mad=texts.get("VM_MAD", ""), im_mad=texts.get("IM_MAD", ""),
        cluster_id=ints.get("CLUSTER_ID") or 0, total_mem_kib=share.get("TOTAL_MEM") or 0,
        max_mem_kib=share.get("MAX_MEM") or 0, mem_usage_kib=share.get("MEM_USAGE") or 0,
        reserved_mem=reserved, template=tmpl, free_memory_kib=free_kib)


def parse_host_pool(data: XmlText) -> List[RawHost]:
    return [host_from_element(e) for e in iter_objects(data, "HOST")]


def parse_host(data: XmlText) -> RawHost:
    for element in _root_or_objects(data, "HOST"):
        return host_from_element(element)
    raise ValueError("no <HOST> element")


# ------------------------------------------------------------- HA and OneDRS replies
def parse_raft_state(data: XmlText) -> int:
    """``<RAFT><STATE>n</STATE>...`` (one.zone.raftstatus) -> n."""
    root = etree.fromstring(data.encode() if isinstance(data, str) else data)
    state = _int(root.findtext("STATE"))
    if state is None:
        raise ValueError("one.zone.raftstatus: no STATE in the reply")
    return state


DRS_ACTIVE_STATES = ("0", "1")   # PlanState READY, APPLYING (include/Plan.h)


def parse_drs_plan_vm_ids(data: XmlText) -> set:
    """VM ids of the cluster's OneDRS plan actions still to run or running, when the plan
    itself is READY (waiting for approval) or APPLYING."""
    root = etree.fromstring(data.encode() if isinstance(data, str) else data)
    plan = root.find("PLAN")
    if plan is None or (plan.findtext("STATE") or "").strip() not in DRS_ACTIVE_STATES:
        return set()
    return {int(a.findtext("VM_ID")) for a in plan.findall("ACTION")
            if (a.findtext("STATE") or "").strip() in DRS_ACTIVE_STATES
            and _int(a.findtext("VM_ID")) is not None}


def find_document(data: XmlText, name: str, key: str):
    """(id, TEMPLATE/<key> text) of the first document called ``name``, or None."""
    root = etree.fromstring(data.encode() if isinstance(data, str) else data)
    for doc in root.findall("DOCUMENT"):
        if doc.findtext("NAME") == name:
            return int(doc.findtext("ID")), doc.findtext(f"TEMPLATE/{key}") or ""
    return None


def cdata_template(attrs) -> str:
    """An XML template oned accepts in allocate/update, values in CDATA (oned 7.4 reads a
    split CDATA section as empty, so ']]>' is refused)."""
    parts = []
    for key, value in attrs.items():
        text = str(value)
        if "]]>" in text:
            raise ValueError(f"{key}: ']]>' cannot be stored in an oned template")
        parts.append(f"<{key}><![CDATA[{text}]]></{key}>")
    return "<TEMPLATE>" + "".join(parts) + "</TEMPLATE>"
