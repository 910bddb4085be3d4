"""Overload protection in `cvem run`, through pyone and XML-RPC against the oned double.

A host whose guests surge beyond its room: the service grows what fits, live-migrates (live,
enforced) other VMs off the host, follows the asynchronous migration until the VMs run on
the target, then grows the starving guest. A restart while a migration is in flight repeats
nothing; with migrations disabled only resizes happen and the shortfall is logged; oned's
recorded refusals are handled and the move is retried later.
"""
import json
import logging
import threading

import pytest
from click.testing import CliRunner

from cvem.cli import cli
from fe_support import Clock, GIB, OnedDouble, make_service, write_config

MIB = 1024
ACTION = 0x800


class FastStop(threading.Event):
    def wait(self, timeout=None):
        return self.is_set()


def double(migrate_settle_s):
    return OnedDouble(resize_settle_s=0.02, migrate_settle_s=migrate_settle_s)


def world(oned):
    """Host A (16 GiB) holds big (8 GiB, surging to 14 GiB), small (3 GiB) and mid (4 GiB):
    1 GiB left. Host B (16 GiB) holds one 2 GiB VM. Every VM was deployed at its
    MEMORY_MAX and shrunk by cvem's user earlier (new state DB: the history tells)."""
    a = oned.add_host("kvm-a", total_mem_kib=16 * GIB)
    b = oned.add_host("kvm-b", total_mem_kib=16 * GIB)
    big = oned.add_vm("big", a, 8192, 14336)
    small = oned.add_vm("small", a, 3072, 4096)
    mid = oned.add_vm("mid", a, 4096, 4096)
    other = oned.add_vm("other", b, 2048, 4096)
    for vm in (big, small, other):   # deployed at MEMORY_MAX, shrunk by cvem (oneadmin) since
        oned.record_resize(vm, uid=0)
    demand = {big: 14 * GIB, small: 3000 * MIB, mid: 4000 * MIB, other: 1900 * MIB}
    return a, b, big, small, mid, other, demand


def service(oned, tmp_path, extra=""):
    svc = make_service(oned, tmp_path, extra=extra)
    svc.clock = clock = Clock(oned)
    return svc, clock


def cycle(svc, oned, clock, demand, wait=True):
    """One `cvem run` cycle (the real loop, one iteration); returns the calls it made."""
    start = len(oned.calls)
    ids = list(demand)
    oned.apply_demand(ids, [demand[v] for v in ids])
    svc.run(FastStop(), max_cycles=1)
    calls = oned.calls[start:]
    if wait:   # the double's clock: let asynchronous transitions due by now settle
        oned.wait_until(lambda: True)
    clock.advance(10)
    return calls


def of(calls, method):
    return [c for c in calls if c[0] == method]


def cycle_until(svc, oned, clock, demand, predicate, max_cycles=8):
    for _ in range(max_cycles):
        cycle(svc, oned, clock, demand)
        with oned._lock:
            oned._settle()
            if predicate():
                return
    raise AssertionError("not reached within %d cycles" % max_cycles)


def no_resize_and_migrate_of_one_vm(calls):
    resized = {c[1][0] for c in of(calls, "one.vm.resize")}
    moved = {c[1][0] for c in of(calls, "one.vm.migrate")}
    return not (resized & moved)


def cli_json(oned, tmp_path, *args):
    auth = tmp_path / "one_auth"
    auth.write_text(oned.session + "\n")
    result = CliRunner().invoke(cli, ["--endpoint", oned.endpoint, "--auth", str(auth),
                                      "--config", write_config(tmp_path)] + list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# ---------------------------------------------------------------------------------- tests
def test_surge_migrates_live_enforced_then_the_starving_guest_grows(tmp_path):
    with double(migrate_settle_s=0.05) as oned:
        a, b, big, small, mid, other, demand = world(oned)
        oned.apply_demand(list(demand), list(demand.values()))
        # cvem plan --json shows the moves (nothing done)
        rows = cli_json(oned, tmp_path, "plan", "--json")
        moves = [r for r in rows if r["action"] == "migrate"]
        assert moves and {r["vm"] for r in moves} <= {small, mid}
        assert all(r["host"] == a and r["to_host"] == b and r["from_mib"] == r["to_mib"]
                   and r["reason"] == "owed-grow" for r in moves)
        assert all(set(r) == {"vm", "host", "action", "from_mib", "to_mib", "reason",
                              "to_host"} for r in rows)
        assert not oned.calls_of("one.vm.migrate") and not oned.calls_of("one.vm.resize")

        svc, clock = service(oned, tmp_path)
        calls = cycle(svc, oned, clock, demand)
        migrates = of(calls, "one.vm.migrate")
        assert migrates and {c[1][0] for c in migrates} == {small, mid}
        assert all(tuple(c[1][1:]) == (b, True, True, -1, 0) for c in migrates)  # live, enforce
        assert all(c[2] for c in migrates)
        # a partial grow now (the 1 GiB host A had), before the moves; never big itself moved
        grows = [c for c in of(calls, "one.vm.resize") if c[1][0] == big]
        assert grows and grows[0][1][2] is True
        assert calls.index(grows[0]) < calls.index(migrates[0])
        assert no_resize_and_migrate_of_one_vm(calls)

        # the migrations settle; the next cycle sees them done and grows the starving guest
        cycle_until(svc, oned, clock, demand, lambda: oned.memory_mib(big) == 14336)
        assert oned.host_of(small) == b and oned.host_of(mid) == b and oned.host_of(big) == a
        assert svc.migration_state.in_flight == ()
        assert len(oned.calls_of("one.vm.migrate")) == 2
        # calm afterwards: no ping-pong, no more moves
        for _ in range(3):
            assert not of(cycle(svc, oned, clock, demand), "one.vm.migrate")


def test_restart_during_a_migration_repeats_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cvem")
    with double(migrate_settle_s=35.0) as oned:   # the move lasts 3-4 cycles
        a, b, big, small, mid, other, demand = world(oned)
        svc, clock = service(oned, tmp_path)
        calls = cycle(svc, oned, clock, demand)
        moved = {c[1][0] for c in of(calls, "one.vm.migrate")}
        assert moved == {small, mid}
        assert oned.lcm_state(small) == 4
        calls = cycle(svc, oned, clock, demand)            # still MIGRATE: keep waiting
        assert not of(calls, "one.vm.migrate")
        assert {m.vm_id for m in svc.migration_state.in_flight} == moved

        # cvem status shows the migrations in flight (read-only, from the state DB)
        doc = cli_json(oned, tmp_path, "status", "--json")
        rows = {r["vm"]: r for r in doc["migrations"]}
        assert set(rows) == moved
        assert all(r["from_host"] == a and r["to_host"] == b and r["oned_state"] == "MIGRATE"
                   for r in rows.values())
        assert {v["vm"]: v["reason"] for v in doc["vms"]}[small] == \
            "migration in flight to host %d" % b

        # restart: a new process with the same state DB
        svc.store.close()
        svc, _ = service(oned, tmp_path)
        svc.clock = clock
        assert {m.vm_id for m in svc.migration_state.in_flight} == moved
        assert "in flight from before the restart" in caplog.text
        calls = cycle(svc, oned, clock, demand)
        assert not of(calls, "one.vm.migrate")
        # never a resize of a migrating VM (oned: "Cannot resize a VM in state MIGRATE")
        assert not [c for c in of(calls, "one.vm.resize") if c[1][0] in moved]
        assert oned.lcm_state(small) == 4
        cycle_until(svc, oned, clock, demand, lambda: oned.memory_mib(big) == 14336)
        assert oned.host_of(small) == b and oned.host_of(mid) == b
        assert len(oned.calls_of("one.vm.migrate")) == 2   # nothing repeated
        assert all(c[2] for c in oned.calls_of("one.vm.resize"))   # no refused resize
        assert svc.migration_state.in_flight == ()
        assert "action=migrate to_host=%d done" % b in caplog.text
        # the one-hour log survived the restart: the moved VMs are not moved back
        assert set(svc.migration_state.moved_vm_ids.tolist()) >= moved


def test_migrations_disabled_only_resizes_and_logs_needs_room(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cvem")
    with double(migrate_settle_s=0.05) as oned:
        a, b, big, small, mid, other, demand = world(oned)
        svc, clock = service(oned, tmp_path, extra="[migration]\nenabled = no\n")
        for _ in range(3):
            cycle(svc, oned, clock, demand)
        assert not oned.calls_of("one.vm.migrate")
        assert oned.memory_mib(big) == 9216          # grown by the 1 GiB host A had
        assert "vm=%d host=%d needs_room" % (big, a) in caplog.text
        assert "migrations=off" in caplog.text


def test_plan_without_migrations_has_no_migrate_rows(tmp_path):
    with double(migrate_settle_s=0.05) as oned:
        world(oned)
        auth = tmp_path / "one_auth"
        auth.write_text(oned.session + "\n")
        config = write_config(tmp_path)
        with open(config, "a") as stream:
            stream.write("[migration]\nenabled = no\n")
        result = CliRunner().invoke(cli, ["--endpoint", oned.endpoint, "--auth", str(auth),
                                          "--config", config, "plan", "--json"])
        rows = json.loads(result.output)
        assert not [r for r in rows if r["action"] == "migrate"]
        assert [r for r in rows if r["action"] == "needs-room"]


@pytest.mark.parametrize("message,kind", [
    ("virtual machine [{vm}] does not fit in host [{host}]. Not enough memory: "
     "3145728/1048576", "failed"),
    ("Migrate action is not available for state MIGRATE", "skipped"),
])
def test_recorded_refusals_are_handled_and_retried_later(tmp_path, caplog, message, kind):
    caplog.set_level(logging.INFO, logger="cvem")
    with double(migrate_settle_s=0.05) as oned:
        a, b, big, small, mid, other, demand = world(oned)
        # no back-off here (test_failing_migrations_back_off has it): retried at once
        svc, clock = service(oned, tmp_path, extra="[migration]\nretry_backoff_s = 0\n")
        oned.fail_next("one.vm.migrate", message.format(vm=small, host=b), ACTION, count=2)
        calls = cycle(svc, oned, clock, demand)
        refused = of(calls, "one.vm.migrate")
        assert len(refused) == 2 and not any(c[2] for c in refused)
        assert svc.migration_state.in_flight == ()        # forgotten: not waiting for them
        assert not svc.store.load_migration_state().in_flight
        assert ("action=migrate to_host=%d reason=owed-grow %s" % (b, kind)) in caplog.text
        # retried on a later cycle (the guest still starves, nothing is leaving the host)
        cycle_until(svc, oned, clock, demand, lambda: oned.memory_mib(big) == 14336)
        accepted = [c for c in oned.calls_of("one.vm.migrate") if c[2]]
        assert {c[1][0] for c in accepted} == {small, mid}
        assert oned.host_of(small) == b and oned.host_of(mid) == b


def test_failing_migrations_back_off(tmp_path, caplog):
    """Defect 5: a migration that keeps failing is retried after 60 s, 120 s, 240 s...
    (per VM, [migration] retry_backoff_s doubling up to retry_backoff_max_s), not every
    cycle."""
    caplog.set_level(logging.INFO, logger="cvem")
    with double(migrate_settle_s=0.05) as oned:
        a, b, big, small, mid, other, demand = world(oned)
        svc, clock = service(oned, tmp_path)
        oned.fail_next("one.vm.migrate", "virtual machine [1] does not fit in host [1]. Not "
                       "enough memory: 3145728/1048576", ACTION, count=1000)
        for _ in range(30):                        # 300 s, a cycle every 10 s
            cycle(svc, oned, clock, demand)
        tries = {}
        for c in oned.calls_of("one.vm.migrate"):
            tries[c[1][0]] = tries.get(c[1][0], 0) + 1
        # at 0, 60, 180 s (then 420 s): 3 attempts per VM at most, instead of 30
        assert tries and max(tries.values()) <= 3, tries
        state = svc.store.load_migration_state()
        assert set(state.backoff_vm_ids) >= set(tries)


def test_a_migration_back_on_its_source_fails_and_is_planned_again(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cvem")
    with double(migrate_settle_s=1000.0) as oned:
        a, b, big, small, mid, other, demand = world(oned)
        svc, clock = service(oned, tmp_path, extra="[migration]\nmax_per_cycle = 1\n")
        calls = cycle(svc, oned, clock, demand, wait=False)
        first = [c[1][0] for c in of(calls, "one.vm.migrate")]
        assert len(first) == 1 and first[0] in (small, mid)          # max_per_cycle = 1
        vm_id = first[0]
        # oned gives up the live migration: the VM is RUNNING on its source again
        with oned._lock:
            vm = oned.vms[vm_id]
            oned._pending.discard(vm_id)
            vm.pending, vm.migrate_to, vm.lcm = None, None, 3
        calls = cycle(svc, oned, clock, demand, wait=False)   # within the grace: waiting
        assert not [c for c in of(calls, "one.vm.migrate") if c[1][0] == vm_id]
        assert vm_id in {m.vm_id for m in svc.migration_state.in_flight}
        oned.migrate_settle_s = 0.05
        cycle_until(svc, oned, clock, demand, lambda: oned.memory_mib(big) == 14336,
                    max_cycles=10)
        assert "vm=%d host=%d action=migrate to_host=%d failed: back RUNNING on the source " \
               "host" % (vm_id, a, b) in caplog.text
        again = [c for c in oned.calls_of("one.vm.migrate") if c[1][0] == vm_id]
        assert len(again) == 2 and oned.host_of(vm_id) == b


def test_migration_config_errors_name_the_key(tmp_path):
    from cvem.config import parse_config
    from cvem.errors import ConfigError
    for text, key in [("[migration]\nmax_per_cycle = -1\n", "max_per_cycle"),
                      ("[migration]\nenabled = maybe\n", "enabled"),
                      ("[migration]\nselection = random\n", "selection"),
                      ("[migration]\ndetector = psychic\n", "detector"),
                      ("[migration]\ncooldown = 5\n", "cooldown"),
                      ("[overload:mad]\nsafety = lots\n", "safety")]:
        with pytest.raises(ConfigError, match=key):
            parse_config(text)
    config = parse_config("[migration]\ndetector = mad\nhost_cooldown_s = 120\n"
                          "max_per_cycle = 3\nselection = fewest\n[overload:mad]\nsafety = 3\n")
    enabled, mig = config.build_migration()
    assert enabled and mig.params.host_cooldown_s == 120 and mig.params.max_per_cycle == 3
    assert mig.detector.name == "mad" and mig.detector.params.safety == 3.0
