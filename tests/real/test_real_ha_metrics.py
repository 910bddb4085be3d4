"""HA, OneDRS and metrics against a genuine OpenNebula 7.4 oned: its one.zone.raftstatus
reply (standalone: SOLO), the handover record as a private document of cvem's own type,
a cluster without a OneDRS plan, a takeover by a cvem with an empty state DB that keeps the
cooldowns its predecessor started, and the metrics of a live cycle over HTTP."""
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from cvem import keys
from cvem.adapters.one import OneCloud
from cvem.config import parse_config
from cvem.monitor.server import MonitorServer
from cvem.monitor.state import Monitor
from cvem.service.handover import DOCUMENT_NAME, DOCUMENT_TYPE, Handover
from cvem.service.leader import LeaderGate
from cvem.service.runner import Service
from cvem.service.state import StateStore


def cloud_of(real_one):
    return OneCloud(real_one.endpoint, real_one.auth, timeout_s=30)


def test_real_raftstatus_of_a_standalone_oned_is_solo_and_cvem_acts(real_one):
    xml = real_one.rpc("one.zone.raftstatus")
    assert xml.startswith("<RAFT>") and "<STATE>0</STATE>" in xml
    cloud = cloud_of(real_one)
    assert cloud.raft_state() == 0
    role = LeaderGate(cloud).check()
    assert role.name == "SOLO" and role.acting and role.took_over


def test_real_cluster_without_a_onedrs_plan(real_one):
    assert cloud_of(real_one).drs_plan_vm_ids([0]) == frozenset()


def test_real_handover_document_is_private_and_round_trips(real_one):
    record = {"format": 1, "saved_at_s": time.time(), "cooldown_s": {"1": 12.5},
              "resizes_in_flight": [], "migrations_in_flight": [],
              "host_last_migration_s": {}, "moved_at_s": {},
              "note": 'quotes " backslash \\ and ]]> survive'}
    Handover(cloud_of(real_one)).save(record)
    assert Handover(cloud_of(real_one)).load() == record
    pool = real_one.xml("one.documentpool.info", -3, -1, -1, DOCUMENT_TYPE)
    docs = [d for d in pool.findall("DOCUMENT") if d.findtext("NAME") == DOCUMENT_NAME]
    assert len(docs) == 1
    perms = docs[0].find("PERMISSIONS")
    assert [perms.findtext(k) for k in ("GROUP_U", "GROUP_M", "OTHER_U", "OTHER_M")] == \
        ["0", "0", "0", "0"]


def _user_with_vms(real_one, name, count):
    """VMs owned by a user of their own so the cvem under test manages only them."""
    try:
        uid = real_one.rpc("one.user.allocate", name, "pw-" + name, "", [])
    except Exception:
        uid = int(real_one.xml("one.user.info", -1).findtext("ID"))  # pragma: no cover
    live = next(int(h.findtext("ID")) for h in real_one.hosts()
                if h.findtext("VM_MAD") == "dummylive")
    vms = [real_one.make_vm(live, 2048, 4096, name="%s-%d" % (name, i)) for i in range(count)]
    for vm in vms:
        real_one.rpc("one.vm.chown", vm, uid, -1)
    return uid, vms


def _report(real_one, vms, used_kib, seq):
    for vm in vms:
        body = {keys.GUEST_MEM_USED_KIB: used_kib, keys.GUEST_MEM_TOTAL_KIB: 2000000,
                keys.GUEST_MEM_AVAILABLE_KIB: 2000000 - used_kib, keys.GUEST_SEQ: seq,
                keys.GUEST_TIME: int(time.time())}
        real_one.rpc("one.vm.update", vm, "\n".join('%s="%s"' % kv for kv in body.items()), 1)


def _service(real_one, tmp_path, db, user):
    config = parse_config("[cvem]\nstate_db = %s\nlive_resize_vm_mads = dummylive\n"
                          "users = %s\nmax_actions_per_s = 100\n[guards]\ncooldown_s = 3600\n"
                          % (tmp_path / db, user))
    return Service(config, cloud_of(real_one), StateStore(config.service.state_db))


def _wait_settled(real_one, vms):
    real_one.wait(lambda: all(real_one.vm(v).findtext("LCM_STATE") == "3" for v in vms),
                  "resizes to end")


def test_real_takeover_keeps_the_cooldowns_of_the_previous_leader(real_one, tmp_path):
    user = "cvem-ha-%d" % (time.time_ns() % 10**6)
    uid, vms = _user_with_vms(real_one, user, 2)
    try:
        _report(real_one, vms, 300000, 1)
        first = _service(real_one, tmp_path, "fe1.db", user)
        report = first.cycle()
        assert {a.vm_id for a in report.result.applied} == set(vms)   # both shrunk
        _wait_settled(real_one, vms)
        sizes = {v: real_one.vm(v).findtext("TEMPLATE/MEMORY") for v in vms}
        _report(real_one, vms, 250000, 2)
        # a new leader with an empty state DB: within the hour's cooldown, nothing again
        second = _service(real_one, tmp_path, "fe2.db", user)
        second.take_over()
        report = second.cycle()
        assert not report.result.applied, report.plan.actions
        assert {v: real_one.vm(v).findtext("TEMPLATE/MEMORY") for v in vms} == sizes
        # the same without the record would have shrunk again at once
        amnesiac = _service(real_one, tmp_path, "fe3.db", user)
        plan = amnesiac.cycle(dry_run=True).plan
        assert {a.vm_id for a in plan.actions} == set(vms)
    finally:
        for vm in vms:
            real_one.rpc("one.vm.action", "terminate-hard", vm)


def test_real_metrics_of_a_live_cycle(real_one, tmp_path):
    config = parse_config("[cvem]\nstate_db = %s\nlive_resize_vm_mads = dummylive\n"
                          "dry_run = yes\n" % (tmp_path / "m.db"))
    service = Service(config, cloud_of(real_one), StateStore(config.service.state_db))
    monitor = Monitor(config.service.period_s)
    service.observers.append(monitor)
    server = MonitorServer(monitor, "127.0.0.1:0").start()
    try:
        service.run(max_cycles=1)
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as reply:
            text = reply.read().decode()
    finally:
        server.stop()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    hosts = {h.findtext("ID") for h in real_one.hosts()}
    physical = {lab["one_host_id"] for lab, _ in samples["cloudvamp_host_physical_memory_bytes"]}
    assert physical == hosts
    running = {v.findtext("ID") for v in real_one.vms()
               if v.findtext("STATE") == "3" and v.findtext("LCM_STATE") == "3"}
    seen = {lab["one_vm_id"] for lab, _ in samples["cloudvamp_vm_current_memory_bytes"]}
    assert running and running <= seen
    assert samples["cloudvamp_raft_info"][0][0]["state"] == "SOLO"
    print("metrics excerpt:\n" + "\n".join(
        line for line in text.splitlines() if line.startswith(
            ("cloudvamp_host_reclaimed", "cloudvamp_cycle_duration", "cloudvamp_guest_reports",
             "cloudvamp_leader", "cloudvamp_raft"))))
