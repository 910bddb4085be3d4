"""Overload protection against the real oned 7.4 (defects 1, 2, 5, 7 of issue 15).

One cluster per test: hosts A and B with the live-resize VM_MAD ``dummylive``, host D with the
stock ``dummy`` (no live resize), 16 GiB each. cvem manages only that cluster.
"""
import logging

from realkit import FastClock, GuestReports, cvem_service, remember_nominal

GIB_KIB = 1024 * 1024
MIGRATE_LCM = ("4",)


def starving_world(one, hosts):
    """A: s (4 of its 12 GiB, starving), m1, m2 (4 GiB, busy): 4 GiB free.
    B: g (8 of its 12 GiB, starving) and a 4 GiB filler: 4 GiB free, which g's grow takes.
    D (no live resize): empty."""
    a, b, d = hosts
    vms = dict(s=one.make_vm(a, 4096, 12288), m1=one.make_vm(a, 4096, 4096),
               m2=one.make_vm(a, 4096, 4096), g=one.make_vm(b, 8192, 12288),
               filler=one.make_vm(b, 4096, 4096))
    return vms


def report_world(reports, vms):
    reports.publish(vms["s"], 4000 * 1024, 4096 * 1024, swap_used_kib=8 * GIB_KIB, pressure=True)
    reports.publish(vms["g"], 8000 * 1024, 8192 * 1024, swap_used_kib=4 * GIB_KIB, pressure=True)
    for name in ("m1", "m2", "filler"):
        if name in vms:
                reports.publish(vms[name], 3900 * 1024, 4096 * 1024)


def test_no_target_already_used_by_grows_nor_without_live_resize(real_one, empty_cluster, tmp_path,
                                                                   caplog):
    """Defects 1, 2, 7. B's only free 4 GiB go to g's grow in the same cycle and D cannot
    resize live: no migration at all (before: m1 to B, refused by oned "does not fit in host";
    or to D, where it could never be resized again), and the log says why per host."""
    caplog.set_level(logging.INFO, logger="cvem")
    cluster_id, hosts = empty_cluster
    a, b, d = hosts
    vms = starving_world(real_one, hosts)
    svc = cvem_service(real_one, tmp_path, clusters=str(cluster_id))
    remember_nominal(svc, vms["s"], 12288)
    remember_nominal(svc, vms["g"], 12288)
    reports = GuestReports(real_one)
    report_world(reports, vms)
    report = svc.cycle()
    grows = {a.vm_id: a.to_kib for a in report.result.applied}
    assert grows == {vms["s"]: 8 * GIB_KIB, vms["g"]: 12 * GIB_KIB}, grows
    assert report.result.migrations == [], report.result.migrations
    assert not report.result.failed
    text = caplog.text
    assert "vm=%d host=%d needs_room" % (vms["s"], a) in text
    assert "host %d: oned room 0 KiB" % b in text, text
    assert "host %d: no live resize" % d in text, text
    for vm_id in vms.values():   # nothing moved, nothing on D
        assert real_one.vm(vm_id).findtext("HISTORY_RECORDS/HISTORY[last()]/HID") != str(d)


def test_overload_relieved_by_live_migration_then_failing_moves_back_off(
        real_one, empty_cluster, tmp_path, caplog):
    """The operator's path: an overloaded host is relieved by a live migration to the host that
    can resize live (never D), after which the starving guest grows to its nominal size.
    Defect 5 first: while the driver fails every migration, each VM is retried only after its
    back-off ([migration] retry_backoff_s, doubled per failure), not every cycle."""
    caplog.set_level(logging.INFO, logger="cvem")
    cluster_id, hosts = empty_cluster
    a, b, d = hosts
    vms = starving_world(real_one, hosts)
    real_one.rpc("one.vm.action", "terminate-hard", vms["filler"])   # B: 8 GiB free, g takes 4
    svc = cvem_service(real_one, tmp_path, clusters=str(cluster_id),
                       extra="[migration]\nretry_backoff_s = 30\n")
    svc.clock = clock = FastClock()
    remember_nominal(svc, vms["s"], 12288)
    remember_nominal(svc, vms["g"], 12288)
    reports = GuestReports(real_one)
    real_one.dummy_actions("migrate", "failure")
    try:
        attempts = []
        for _ in range(12):     # two simulated minutes
            report_world(reports, {k: v for k, v in vms.items() if k != "filler"})
            report = svc.cycle()
            attempts += [(m.action.vm_id, m.action.to_host_id) for m in report.result.migrations
                         if m.status == "issued"]
            real_one.wait(lambda: all(real_one.vm(v).findtext("LCM_STATE") not in MIGRATE_LCM
                                      for v in (vms["m1"], vms["m2"])), "migrations to end", 30)
            clock.advance(10)
        assert attempts and all(to == b for _, to in attempts), attempts
        per_vm = {v: sum(1 for x, _ in attempts if x == v) for v, _ in attempts}
        # failure seen after the 20 s grace, then 30 s, 60 s of back-off: 2 tries in 120 s
        # (without back-off: one every 20-30 s)
        assert max(per_vm.values()) <= 2, per_vm
        assert "failed: back RUNNING on the source host" in caplog.text
    finally:
        real_one.dummy_actions("migrate")
    svc.migration_state = svc.migration_state.__class__()   # forget the back-offs: now it works
    svc.store.save_migration_state(svc.migration_state)

    def relieved():
        report_world(reports, {k: v for k, v in vms.items() if k != "filler"})
        svc.cycle()
        clock.advance(10)
        return reports.memory_kib(vms["s"]) == 12 * GIB_KIB
    real_one.wait(relieved, "s grown to its nominal 12 GiB after a move", 120, step_s=2)
    where = {name: real_one.vm(v).findtext("HISTORY_RECORDS/HISTORY[last()]/HID")
             for name, v in vms.items() if name != "filler"}
    assert str(b) in (where["m1"], where["m2"]), where
    assert str(d) not in where.values(), where
