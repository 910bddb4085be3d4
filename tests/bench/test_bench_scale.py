"""The scale benchmark's generated cloud looks like oned's and reads like it."""
import json

import pytest
from click.testing import CliRunner

from cvem.adapters import one_xml
from cvem.bench.pool_xml import generate_pool
from cvem.bench.scale import linearity, measure_cycle
from cvem.cli import cli
from tests.doubles.xsd import XSD_DIR, load_schemas, namespaced
import os

needs_xsd = pytest.mark.skipif(not os.path.isdir(XSD_DIR), reason="tests/fixtures/opennebula absent")


@needs_xsd
def test_generated_pool_validates_against_the_74_schemas():
    vm_xml, host_xml, mon_xml = generate_pool(vms=12, hosts=3)
    schemas = load_schemas(("vm_pool_extended", "host_pool", "monitoring_data"))
    schemas["vm_pool_extended"].validate(namespaced(vm_xml))
    schemas["host_pool"].validate(namespaced(host_xml))
    schemas["monitoring_data"].validate(namespaced(mon_xml))


def test_generated_pool_parses_into_managed_ballooning_vms():
    vm_xml, host_xml, mon_xml = generate_pool(vms=20, hosts=4)
    vms = one_xml.parse_vm_pool(vm_xml)
    hosts = one_xml.parse_host_pool(host_xml)
    monitoring = one_xml.parse_monitoring(mon_xml)
    assert [v.vm_id for v in vms] == list(range(19, -1, -1))      # newest first, like oned
    assert all(v.memory_max_mib >= v.memory_mib and v.resize_mode == "BALLOONING" for v in vms)
    assert {v.host_id for v in vms} == {h.host_id for h in hosts}
    assert all("CLOUDVAMP_SEQ" in v.user for v in vms)
    assert set(monitoring) == set(range(20))


def test_one_cycle_is_measured_and_every_vm_is_managed():
    row = measure_cycle(vms=50, hosts=5)
    assert row["managed_vms"] == 50
    for key in ("parse_s", "observe_s", "decide_plan_s", "peak_rss_mb"):
        assert row[key] >= 0


def test_linearity_is_time_per_vm_ratio():
    rows = [{"vms": 100, "parse_s": 0.01, "observe_s": 0.01, "decide_plan_s": 0.001},
            {"vms": 1000, "parse_s": 0.2, "observe_s": 0.1, "decide_plan_s": 0.01}]
    assert linearity(rows) == {"parse_s": 2.0, "observe_s": 1.0, "decide_plan_s": 1.0}


def test_cli_scale_writes_the_issue_json_shape(tmp_path):
    out = tmp_path / "scale.json"
    result = CliRunner().invoke(cli, ["bench", "scale", "--vms", "200", "--hosts", "20",
                                      "--no-series", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    for key in ("vms", "hosts", "parse_s", "parse_pyone_s", "decide_plan_s", "peak_rss_mb"):
        assert key in doc
    assert doc["vms"] == 200 and doc["hosts"] == 20
