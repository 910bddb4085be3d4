"""Parts of the operator's path on the real oned 7.4: an empty cloud, oned restarted mid-run."""
import logging
import threading
import time

from realkit import GuestReports, cvem_service


def test_a_cloud_with_nothing_to_manage_runs_clean_cycles(real_one, empty_cluster, tmp_path):
    cluster_id, _hosts = empty_cluster
    svc = cvem_service(real_one, tmp_path, clusters=str(cluster_id))
    for _ in range(2):
        report = svc.cycle()
        assert report.plan.actions == () and report.result.failed == []
        assert not any(s.managed for s in report.observation.statuses)


def test_oned_restarted_mid_run_is_waited_for_and_nothing_is_repeated(real_one, empty_cluster,
                                                                     tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cvem")
    if not real_one.managed:
        import pytest
        pytest.skip("restarts the test bed's oned")
    cluster_id, (a, _b, _d) = empty_cluster
    vm = real_one.make_vm(a, 4096, 4096)
    reports = GuestReports(real_one)
    reports.publish(vm, 400 * 1024, 4096 * 1024)
    stop = threading.Event()

    def run_cvem():   # `cvem run`: its state DB belongs to the thread that runs it
        cvem_service(real_one, tmp_path, clusters=str(cluster_id), period_s=1.0,
                     guards="cooldown_s = 3600\nmax_shrink_ratio = 0.25\n").run(stop)
    runner = threading.Thread(target=run_cvem, daemon=True)
    runner.start()
    try:
        real_one.wait(lambda: real_one.vm(vm).findtext("TEMPLATE/MEMORY") == "3072",
                      "the first shrink", 60)
        real_one.restart_oned(ONEGATE="1")
        real_one.wait(lambda: "oned reachable again" in caplog.text, "cvem back at work", 120)
        reports.publish(vm, 400 * 1024, 3072 * 1024)
        time.sleep(3)
    finally:
        stop.set()
        runner.join(30)
    # one shrink only: the cooldown (1 h) held across oned's restart
    assert real_one.vm(vm).findtext("TEMPLATE/MEMORY") == "3072"
    assert "cycle aborted: oned at" in caplog.text
