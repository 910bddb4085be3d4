"""Prometheus metrics of `cvem run` against the oned double over real XML-RPC and HTTP:
every family with live values and the OpenNebula exporter's labels, series of a VM that
is gone vanish, counters count, and `cvem run --metrics-address` serves them."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from cvem.cli import cli
from cvem.config import parse_config
from cvem.errors import ConfigError
from cvem.monitor.metrics import FAMILIES, exposed_names
from cvem.monitor.server import MonitorServer
from cvem.monitor.state import Monitor
from fe_support import Clock, GIB, ROOT, make_service, settle, write_config

MIB = 1024


@pytest.fixture
def cloud(oned):
    host = oned.add_host("kvm-1", total_mem_kib=64 * GIB)
    other = oned.add_host("kvm-2", total_mem_kib=64 * GIB)
    idle = [oned.add_vm("idle-%d" % i, host, 4096, 4096) for i in range(3)]
    legacy = oned.add_vm("legacy", other, 2048)        # no MEMORY_MAX: left alone
    return host, other, idle, legacy


def scrape(url):
    with urllib.request.urlopen(url + "/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def one(samples, name, **labels):
    hits = [v for lab, v in samples.get(name, []) if all(lab.get(k) == str(x)
                                                       for k, x in labels.items())]
    assert len(hits) == 1, (name, labels, samples.get(name))
    return hits[0]


def cycle(service, oned, clock, demand):
    oned.apply_demand(list(demand), list(demand.values()))
    service.run(_Stop(), max_cycles=1)
    settle(oned)
    clock.advance(10)


class _Stop:
    def is_set(self):
        return False

    def wait(self, timeout=None):
        return False


@pytest.fixture
def served(oned, tmp_path, cloud):
    service = make_service(oned, tmp_path)
    service.clock = Clock(oned)
    monitor = Monitor(service.params.period_s)
    service.observers.append(monitor)
    server = MonitorServer(monitor, "127.0.0.1:0").start()
    yield service, monitor, server
    server.stop()


def test_metrics_families_have_live_values_and_opennebula_labels(oned, served, cloud):
    service, monitor, server = served
    host, other, idle, legacy = cloud
    demand = {v: 600 * MIB for v in idle}
    cycle(service, oned, service.clock, demand)
    samples = scrape(server.url)
    assert set(samples) <= exposed_names()
    missing = {n for n in exposed_names() if n not in samples}
    assert missing <= {"cloudvamp_oned_errors_total"}, missing   # no error happened
    shrunk = [oned.memory_mib(v) for v in idle]
    assert all(m < 4096 for m in shrunk)
    vm = idle[0]
    assert one(samples, "cloudvamp_vm_nominal_memory_bytes", one_vm_id=vm) == 4096 * MIB * 1024
    assert one(samples, "cloudvamp_vm_target_memory_bytes", one_vm_id=vm) == shrunk[0] * MIB * 1024
    assert one(samples, "cloudvamp_vm_guest_used_memory_bytes", one_vm_id=vm,
               one_host_id=host) > 0
    assert one(samples, "cloudvamp_vm_managed", one_vm_id=vm) == 1
    assert one(samples, "cloudvamp_vm_managed", one_vm_id=legacy, one_host_id=other) == 0
    assert one(samples, "cloudvamp_vm_report_fresh", one_vm_id=vm) == 1
    reclaimed = sum((4096 - m) * MIB * 1024 for m in shrunk)
    assert one(samples, "cloudvamp_host_reclaimed_memory_bytes", one_host_id=host) == reclaimed
    assert one(samples, "cloudvamp_host_lent_memory_bytes", one_host_id=host) == reclaimed
    assert one(samples, "cloudvamp_host_reclaimed_memory_bytes", one_host_id=other) == 0
    assert one(samples, "cloudvamp_host_allocated_memory_bytes", one_host_id=host) == \
        sum(shrunk) * MIB * 1024
    assert one(samples, "cloudvamp_host_physical_memory_bytes", one_host_id=host) == \
        64 * GIB * 1024
    assert one(samples, "cloudvamp_actions_total", kind="shrink", result="applied") == 3
    assert one(samples, "cloudvamp_vm_last_action_info", one_vm_id=vm, action="shrink") == 1
    assert one(samples, "cloudvamp_guest_reports", state="fresh") == 3
    assert one(samples, "cloudvamp_cycles_total", result="ok") == 1
    assert one(samples, "cloudvamp_leader") == 1
    assert one(samples, "cloudvamp_raft_info", state="SOLO") == 1
    assert one(samples, "cloudvamp_cycle_duration_seconds") > 0
    assert {lab["phase"] for lab, _ in samples["cloudvamp_cycle_phase_duration_seconds"]} == \
        {"read", "decide", "apply", "show"}
    status = [lab for lab, _ in samples["cloudvamp_vm_status_info"]
              if lab["one_vm_id"] == str(legacy)]
    assert status and "MEMORY_MAX" in status[0]["reason"]


def test_series_of_a_vm_that_is_gone_vanish(oned, served, cloud):
    service, monitor, server = served
    host, other, idle, legacy = cloud
    demand = {v: 600 * MIB for v in idle}
    cycle(service, oned, service.clock, demand)
    assert any(lab["one_vm_id"] == str(idle[0])
               for lab, _ in scrape(server.url)["cloudvamp_vm_current_memory_bytes"])
    oned.terminate(idle[0])
    del demand[idle[0]]
    cycle(service, oned, service.clock, demand)
    samples = scrape(server.url)
    for name, values in samples.items():
        assert not [lab for lab, _ in values if lab.get("one_vm_id") == str(idle[0])], name


def test_failed_cycles_count_oned_errors_by_kind(oned, served, cloud):
    service, monitor, server = served
    oned.set_password("oneadmin", "rotated")
    service.run(_Stop(), max_cycles=1)
    samples = scrape(server.url)
    assert one(samples, "cloudvamp_oned_errors_total", kind="authentication") == 1
    assert one(samples, "cloudvamp_cycles_total", result="failed") == 1
    assert one(samples, "cloudvamp_oned_up") == 0


def test_oned_refusals_are_counted_by_kind(oned, served, cloud):
    service, monitor, server = served
    host, other, idle, legacy = cloud
    oned.fail_next("one.vm.resize", "Cannot resize a VM in state UNKNOWN", 0x0800)
    cycle(service, oned, service.clock, {v: 600 * MIB for v in idle})
    samples = scrape(server.url)
    assert one(samples, "cloudvamp_oned_errors_total", kind="state") == 1
    assert one(samples, "cloudvamp_actions_total", kind="shrink", result="failed") == 1


def test_metrics_address_is_a_config_key_and_a_run_option():
    assert parse_config("[cvem]\nmetrics_address = 0.0.0.0:9100\n").service.metrics_address \
        == "0.0.0.0:9100"
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_config("[cvem]\nmetrics_address = localhost\n")
    help_text = CliRunner().invoke(cli, ["run", "--help"]).output
    assert "--metrics-address" in help_text and "127.0.0.1:9929" in help_text


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cvem_run_serves_metrics_on_its_metrics_address(oned, tmp_path, auth_file, cloud):
    port = _free_port()
    config = write_config(tmp_path, extra="period_s = 0.5\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvem", "--endpoint", oned.endpoint, "--auth", auth_file,
         "--config", config, "run", "--metrics-address", "127.0.0.1:%d" % port],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                samples = scrape("http://127.0.0.1:%d" % port)
                if "cloudvamp_vm_current_memory_bytes" in samples:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        assert one(samples, "cloudvamp_cycle_period_seconds") == 0.5
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "metrics on http://127.0.0.1:%d/metrics" % port in err


def test_a_busy_metrics_address_is_one_clear_error(oned, tmp_path, auth_file):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        address = "127.0.0.1:%d" % busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["--endpoint", oned.endpoint, "--auth", auth_file,
                                          "--config", write_config(tmp_path), "run",
                                          "--metrics-address", address])
    assert result.exit_code == 1
    assert "cannot listen" in result.output and address in result.output


def test_every_family_has_help_and_a_unit_or_count_name():
    for name, (kind, help_text) in FAMILIES.items():
        assert name.startswith("cloudvamp_") and help_text
        if kind == "gauge" and ("memory" in name or "room" in name):
            assert name.endswith("_bytes"), name
        if "duration" in name or "period" in name:
            assert name.endswith("_seconds"), name
