"""The lxml parser on the real oned 7.4 recordings, and why pyone's bindings are not used."""
import pyone.bindings
import pytest

from cvem.adapters import one_xml
from fe_support import recording


@pytest.fixture(scope="module")
def pool():
    return one_xml.parse_vm_pool(recording("vmpool_infoextended_203vms.xml.gz"))


def test_recorded_pool_parses_every_vm_newest_first(pool):
    assert len(pool) == 203
    ids = [v.vm_id for v in pool]
    assert ids == sorted(ids, reverse=True)
    vm = pool[0]
    assert (vm.vm_id, vm.state, vm.lcm_state, vm.memory_mib) == (202, 3, 3, 64)
    assert (vm.host_id, vm.host_name, vm.vm_mad, vm.cluster_id) == (3, "live-h2", "dummylive", 0)
    assert vm.memory_max_mib is None and vm.resize_mode == "" and vm.monitoring == {}


def test_recorded_pool_keeps_only_cloudvamp_user_keys(pool):
    by_id = {v.vm_id: v for v in pool}
    # VM 0 carries MEM_USED/FOO from the update experiments: not ours, not kept.
    assert all(not k or k.startswith("CLOUDVAMP") for v in pool for k in v.user)
    assert by_id[0].user == {}


def test_recorded_excerpt_matches_pool_entry(pool):
    vm = one_xml.parse_vm(recording("vmpool_infoextended_one_vm_excerpt.xml"))
    assert vm == {v.vm_id: v for v in pool}[5]


def test_recorded_vm_info_carries_monitoring():
    vm = one_xml.parse_vm(recording("vm_info_running_monitored.xml"))
    assert vm.vm_id == 0 and vm.memory_mib == 1024
    assert vm.monitoring["MEMORY"] == "251658" and vm.monitoring["TIMESTAMP"] == "1795425474"
    # the last of many history records is the current host
    assert vm.host_name and vm.host_id is not None


def test_recorded_hold_vm_has_no_host():
    vm = one_xml.parse_vm(recording("vm_info_hold.xml"))
    assert (vm.state, vm.lcm_state, vm.host_id, vm.vm_mad) == (2, 0, None, "")


def test_recorded_monitoring_last_records():
    mon = one_xml.parse_monitoring(recording("vmpool_monitoring_last_203vms.xml.gz"))
    assert len(mon) == 203
    assert mon[0] == {"ID": "0", "MEMORY": "251658", "TIMESTAMP": "1795425474"}


def test_recorded_host_pool():
    hosts = {h.host_id: h for h in one_xml.parse_host_pool(recording("hostpool_info_5hosts.xml"))}
    assert sorted(hosts) == [0, 1, 2, 3, 4]
    h0 = hosts[0]
    assert (h0.total_mem_kib, h0.reserved_mem, h0.max_mem_kib) == (16777216, "-8388608", 25165824)
    assert hosts[2].vm_mad == "dummylive" and hosts[4].reserved_mem == "-1048576"


def test_recorded_host_info_after_negative_reservation():
    host = one_xml.parse_host(recording("host_info_reserved_mem_negative.xml"))
    assert host.max_mem_kib == host.total_mem_kib - int(host.reserved_mem)


CUSTOM = ("<MONITORING_DATA><MONITORING><CPU><![CDATA[1]]></CPU><ID><![CDATA[7]]></ID>"
          "<MEMORY><![CDATA[1000]]></MEMORY><TIMESTAMP><![CDATA[100]]></TIMESTAMP>"
          "<CLOUDVAMP_USABLE_KIB><![CDATA[123456]]></CLOUDVAMP_USABLE_KIB>"
          "</MONITORING><MONITORING><ID>7</ID><TIMESTAMP>90</TIMESTAMP>"
          "<CLOUDVAMP_USABLE_KIB>1</CLOUDVAMP_USABLE_KIB></MONITORING></MONITORING_DATA>")


def test_custom_monitoring_keys_survive_lxml_newest_record_wins():
    assert one_xml.parse_monitoring(CUSTOM)[7]["CLOUDVAMP_USABLE_KIB"] == "123456"


def test_pyone_typed_bindings_drop_custom_monitoring_keys():
    """The reason the probe's keys are read with lxml (docs/operations.md, Scale)."""
    data = pyone.bindings.parseString(CUSTOM.encode())
    record = data.MONITORING[0]
    assert record.ID == 7
    assert not hasattr(record, "CLOUDVAMP_USABLE_KIB")
    assert "123456" not in repr(vars(record))


def test_nested_namesake_and_malformed_vm_are_handled():
    xml = ("<VM_POOL><VM><ID>1</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE><TEMPLATE><VM>"
           "<ID>99</ID></VM><MEMORY>512</MEMORY></TEMPLATE></VM><VM><ID>x</ID></VM></VM_POOL>")
    errors = []
    vms, bad = one_xml.parse_vm_pool_checked(xml, on_error=errors.append)
    assert [v.vm_id for v in vms] == [1] and vms[0].memory_mib == 512
    assert bad == 1 and errors


def test_parser_accepts_bytes_and_large_documents(oned):
    host = oned.add_host()
    for i in range(300):
        oned.add_vm(host_id=host, memory_mib=1024, memory_max_mib=2048, realistic=True)
    xml = oned.vm_pool_xml()
    assert len(xml) > 1 << 20  # more than one feed slice
    vms = one_xml.parse_vm_pool(xml.encode())
    assert len(vms) == 300 and vms[0].vm_id == 299 and vms[-1].memory_max_mib == 2048
