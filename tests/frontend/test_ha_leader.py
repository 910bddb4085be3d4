"""Leader-only HA against the oned double's one.zone.raftstatus (the shape a real 7.4 oned
answers): a FOLLOWER or CANDIDATE idles, SOLO and LEADER act, and a node that takes over
after a failover neither repeats an in-flight migration or resize nor breaks a cooldown,
from the handover record its predecessor left in oned (a document of cvem's own type)."""
import json
import logging
import threading

from cvem.adapters.one_xml import parse_drs_plan_vm_ids, parse_raft_state
from cvem.monitor.state import Monitor
from cvem.ports import Unreachable
from cvem.service.handover import DOCUMENT_NAME, DOCUMENT_TYPE
from cvem.service.leader import LeaderGate
from fe_support import Clock, GIB, OnedDouble, make_service
from tests.doubles.oned import RAFT_CANDIDATE, RAFT_FOLLOWER, RAFT_LEADER, RAFT_SOLO

import pytest

MIB = 1024
REAL_SOLO_REPLY = ("<RAFT><SERVER_ID>-1</SERVER_ID><STATE>0</STATE><TERM>0</TERM><VOTEDFOR>-1"
                   "</VOTEDFOR><COMMIT>0</COMMIT><LOG_INDEX>-1</LOG_INDEX><LOG_TERM>-1</LOG_TERM>"
                   "<FEDLOG_INDEX>-1</FEDLOG_INDEX></RAFT>")   # recorded from the 7.4 test bed


class FastStop(threading.Event):
    def wait(self, timeout=None):
        return self.is_set()


class Node:
    """One front-end: its own state DB and its own view of its oned's Raft state, over the
    one replicated oned (the double)."""

    def __init__(self, oned, tmp_path, name, clock, extra=""):
        self.raft = RAFT_FOLLOWER
        self.svc = make_service(oned, tmp_path, db=str(tmp_path / ("%s.db" % name)),
                                extra="stale_after_s = 100000\n" + extra,
                                guards="cooldown_s = 600\n")
        self.svc.clock = clock
        self.svc.leader = LeaderGate(self)
        self.monitor = Monitor(10.0)
        self.svc.observers.append(self.monitor)

    def raft_state(self):
        return self.raft

    def cycle(self, oned, clock, demand):
        start = len(oned.calls)
        oned.apply_demand(list(demand), list(demand.values()))
        self.svc.run(FastStop(), max_cycles=1)
        oned.wait_until(lambda: True)
        clock.advance(10)
        return [c for c in oned.calls[start:]]


def of(calls, method):
    return [c for c in calls if c[0] == method]


def test_the_double_answers_raftstatus_like_a_real_standalone_oned(oned):
    from cvem.adapters.one import OneCloud
    cloud = OneCloud(oned.endpoint, oned.session, timeout_s=5)
    assert oned._rpc_one_zone_raftstatus() == REAL_SOLO_REPLY
    assert parse_raft_state(REAL_SOLO_REPLY) == 0
    for state in (RAFT_SOLO, RAFT_CANDIDATE, RAFT_FOLLOWER, RAFT_LEADER):
        oned.set_raft_state(state)
        assert cloud.raft_state() == state


@pytest.mark.parametrize("state,acts", [(RAFT_SOLO, True), (RAFT_LEADER, True),
                                        (RAFT_FOLLOWER, False), (RAFT_CANDIDATE, False)])
def test_only_solo_and_leader_act(oned, tmp_path, state, acts):
    host = oned.add_host("kvm-1", total_mem_kib=64 * GIB)
    vms = [oned.add_vm("idle-%d" % i, host, 4096, 4096) for i in range(2)]
    oned.set_raft_state(state, server_id=1)
    svc = make_service(oned, tmp_path)
    monitor = Monitor(10.0)
    svc.observers.append(monitor)
    oned.apply_demand(vms, [600 * MIB] * 2)
    svc.run(FastStop(), max_cycles=2)
    assert bool(oned.calls_of("one.vmpool.infoextended")) is acts
    assert bool(oned.calls_of("one.vm.resize")) is acts
    idle_calls = {c[0] for c in oned.calls}
    if not acts:   # a follower asks its oned one question per period, nothing else
        assert idle_calls == {"one.zone.raftstatus"}
    state_now = monitor.read()
    assert state_now.acting is acts
    assert (state_now.view is not None) is acts   # a follower exports no VM/host series
    assert state_now.role == {0: "SOLO", 1: "CANDIDATE", 2: "FOLLOWER", 3: "LEADER"}[state]


def test_leader_only_off_never_asks(oned, tmp_path):
    oned.add_host("kvm-1", total_mem_kib=64 * GIB)
    oned.set_raft_state(RAFT_FOLLOWER)
    svc = make_service(oned, tmp_path, extra="leader_only = no\n")
    svc.run(FastStop(), max_cycles=1)
    assert not oned.calls_of("one.zone.raftstatus")
    assert oned.calls_of("one.vmpool.infoextended")


def test_an_unreadable_raft_state_idles_with_one_error(oned, tmp_path, caplog):
    oned.add_host("kvm-1", total_mem_kib=64 * GIB)
    oned.fail_next("one.zone.raftstatus", "Not authorized to perform ZONE:INFO", 0x0200, 2)
    svc = make_service(oned, tmp_path)
    with caplog.at_level(logging.INFO):
        svc.run(FastStop(), max_cycles=2)
    assert not oned.calls_of("one.vmpool.infoextended")
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "leader_only = no" in errors[0].getMessage()


def world(oned):
    """Host A (16 GiB): big (8 GiB surging to 14 GiB), small, mid; host B one VM."""
    a = oned.add_host("kvm-a", total_mem_kib=16 * GIB)
    b = oned.add_host("kvm-b", total_mem_kib=16 * GIB)
    big = oned.add_vm("big", a, 8192, 14336)
    small = oned.add_vm("small", a, 3072, 4096)
    mid = oned.add_vm("mid", a, 4096, 4096)
    other = oned.add_vm("other", b, 2048, 4096)
    idle = oned.add_vm("idle", b, 4096, 4096)
    demand = {big: 14 * GIB, small: 3000 * MIB, mid: 4000 * MIB, other: 1900 * MIB,
              idle: 600 * MIB}
    return a, b, big, small, mid, other, idle, demand


def test_failover_repeats_no_migration_and_keeps_cooldowns(tmp_path):
    with OnedDouble(resize_settle_s=0.02, migrate_settle_s=35.0) as oned:
        a, b, big, small, mid, other, idle, demand = world(oned)
        clock = Clock(oned)
        first, second = Node(oned, tmp_path, "fe1", clock), Node(oned, tmp_path, "fe2", clock)
        first.raft = RAFT_LEADER
        calls = first.cycle(oned, clock, demand)
        moved = {c[1][0] for c in of(calls, "one.vm.migrate")}
        shrunk = {c[1][0] for c in of(calls, "one.vm.resize")
                  if oned.memory_mib(c[1][0]) < 4096}
        assert moved and idle in shrunk
        assert oned.lcm_state(next(iter(moved))) == 4          # still moving
        assert second.cycle(oned, clock, demand) == []         # a follower: idles

        # failover: fe1 loses leadership (e.g. its host died), fe2 is elected
        first.raft, second.raft = RAFT_FOLLOWER, RAFT_LEADER
        calls = first.cycle(oned, clock, demand)
        assert {c[0] for c in calls} == set()                 # fe1 idles (its own oned)
        calls = second.cycle(oned, clock, demand)
        assert not of(calls, "one.vm.migrate")                 # the move is not repeated
        assert {m.vm_id for m in second.svc.migration_state.in_flight} == moved
        assert idle not in {c[1][0] for c in of(calls, "one.vm.resize")}   # cooldown kept
        status = {v.vm_id: v.reason for v in second.monitor.read().view.vms}
        assert all(status[v].startswith("migration in flight") for v in moved)

        # fe2 follows the moves to their end, and a cooldown is still honoured later
        for _ in range(4):
            calls = second.cycle(oned, clock, demand)
            assert not of(calls, "one.vm.migrate")
        assert all(oned.host_of(v) == b for v in moved)
        assert not second.svc.migration_state.in_flight


def test_a_resize_in_flight_at_failover_is_confirmed_not_repeated(tmp_path, caplog):
    with OnedDouble(resize_settle_s=0.02, migrate_settle_s=0.05) as oned:
        host = oned.add_host("kvm-1", total_mem_kib=64 * GIB)
        vms = [oned.add_vm("idle-%d" % i, host, 4096, 4096) for i in range(3)]
        demand = {v: 600 * MIB for v in vms}
        clock = Clock(oned)
        first, second = Node(oned, tmp_path, "fe1", clock), Node(oned, tmp_path, "fe2", clock)
        first.raft = RAFT_LEADER
        real = first.svc.cloud

        class DiesAfterFirstResize:
            def __getattr__(self, name):
                return getattr(real, name)

            def resize_memory(self, *args):
                real.resize_memory(*args)
                raise Unreachable("fe1 lost its network")

        first.svc.cloud = first.svc.applier.cloud = DiesAfterFirstResize()
        oned.apply_demand(vms, [600 * MIB] * 3)
        with pytest.raises(Unreachable):
            first.svc.cycle()
        done_vm = oned.calls_of("one.vm.resize")[-1][1][0]
        before = len(oned.calls_of("one.vm.resize"))
        oned.wait_until(lambda: oned.lcm_state(done_vm) == 3)
        clock.advance(10)
        second.raft = RAFT_LEADER
        with caplog.at_level(logging.INFO):
            second.cycle(oned, clock, demand)
        assert "confirmed after an interrupted cycle" in caplog.text
        again = [c[1][0] for c in oned.calls_of("one.vm.resize")[before:]]
        assert done_vm not in again            # neither repeated nor resized in cooldown
        assert set(again) == set(vms) - {done_vm}   # the others never happened: planned


def test_the_handover_record_is_a_private_document_of_cvems_type(oned, tmp_path):
    host = oned.add_host("kvm-1", total_mem_kib=64 * GIB)
    vm = oned.add_vm("idle", host, 4096, 4096)
    svc = make_service(oned, tmp_path, guards="cooldown_s = 600\n")
    svc.clock = Clock(oned)
    oned.apply_demand([vm], [600 * MIB])
    svc.run(FastStop(), max_cycles=1)
    docs = [d for d in oned.documents.values() if d["type"] == DOCUMENT_TYPE]
    assert len(docs) == 1 and docs[0]["name"] == DOCUMENT_NAME
    record = json.loads(docs[0]["template"]["CVEM_STATE"])
    assert str(vm) in record["cooldown_s"] and record["format"] == 1
    oned.wait_until(lambda: oned.lcm_state(vm) == 3)
    svc.run(FastStop(), max_cycles=1)        # the resize is seen done: record updated
    writes = len(oned.calls_of("one.document.update"))
    svc.run(FastStop(), max_cycles=1)        # nothing changed: nothing written
    assert len(oned.calls_of("one.document.update")) == writes
    assert not oned.user_template(vm).get("CVEM_STATE")   # never in a guest-writable place


def test_drs_plan_parser_reads_the_real_plan_shape():
    xml = ("<CLUSTER><ID>0</ID><NAME>default</NAME><HOSTS/><TEMPLATE/><PLAN><ID>0</ID>"
           "<STATE>1</STATE><ACTION><ID>0</ID><VM_ID>7</VM_ID><STATE>1</STATE><OPERATION>"
           "migrate</OPERATION><HOST_ID>2</HOST_ID><DS_ID>-1</DS_ID><TIMESTAMP>0</TIMESTAMP>"
           "</ACTION><ACTION><ID>1</ID><VM_ID>8</VM_ID><STATE>2</STATE><OPERATION>migrate"
           "</OPERATION><HOST_ID>2</HOST_ID><DS_ID>-1</DS_ID><TIMESTAMP>0</TIMESTAMP></ACTION>"
           "</PLAN></CLUSTER>")
    assert parse_drs_plan_vm_ids(xml) == {7}
    assert parse_drs_plan_vm_ids(xml.replace("<STATE>1</STATE><ACTION><ID>0",
                                             "<STATE>2</STATE><ACTION><ID>0")) == set()


def test_the_successor_keeps_the_size_its_predecessor_shrank_a_vm_from(tmp_path, caplog):
    """Issue 15: without the sizes in the handover record, the new leader found a VM last
    resized by cvem's user and not in its state DB ("lost?") and took MEMORY_MAX (8 GiB) as
    the size of a VM its owner made 4 GiB."""
    with OnedDouble(resize_settle_s=0.02, migrate_settle_s=0.05) as oned:
        host = oned.add_host("kvm-1", total_mem_kib=64 * GIB)
        vm = oned.add_vm("idle", host, 4096, 8192)
        clock = Clock(oned)
        first, second = Node(oned, tmp_path, "fe1", clock), Node(oned, tmp_path, "fe2", clock)
        first.raft = RAFT_LEADER
        first.cycle(oned, clock, {vm: 600 * MIB})
        first.cycle(oned, clock, {vm: 600 * MIB})
        assert oned.memory_mib(vm) < 4096
        first.raft, second.raft = RAFT_FOLLOWER, RAFT_LEADER
        with caplog.at_level(logging.INFO):
            second.cycle(oned, clock, {vm: 600 * MIB})
        assert "lost?" not in caplog.text
        assert "1 size(s)" in caplog.text
        assert second.svc.sizes[vm][0] == 4096 * 1024


def test_a_restart_takes_nothing_over_from_its_own_record(tmp_path, caplog):
    """A node restarted on its own state DB finds its own handover record, older than its
    DB when it was killed before publishing: merging it re-added a resize the DB had settled
    since (the kill -9 run on the real oned "confirmed" one grow three times)."""
    with OnedDouble(resize_settle_s=0.02, migrate_settle_s=0.05) as oned:
        host = oned.add_host("kvm-1", total_mem_kib=64 * GIB)
        vm = oned.add_vm("idle", host, 4096, 4096)
        clock = Clock(oned)
        node = Node(oned, tmp_path, "fe1", clock)
        node.raft = RAFT_SOLO
        node.cycle(oned, clock, {vm: 600 * MIB})           # the shrink, in flight in the record
        assert oned.memory_mib(vm) < 4096
        node.svc.handover.save = lambda record: False       # killed before each publish
        node.cycle(oned, clock, {vm: 600 * MIB})           # settles it in the local DB only
        assert not node.svc.store.load_inflight()
        again = Node(oned, tmp_path, "fe1", clock)          # the same state DB: a restart
        again.raft = RAFT_SOLO
        with caplog.at_level(logging.INFO):
            again.cycle(oned, clock, {vm: 600 * MIB})
        assert "is this node's own" in caplog.text and "took over" not in caplog.text
        assert "confirmed after an interrupted cycle" not in caplog.text
        assert " confirmed=0 " in caplog.text        # the settled shrink is not settled again


def test_a_settled_move_is_saved_at_once_not_settled_again_after_a_kill(tmp_path, caplog):
    """The kill -9 run on the real oned: a move written ahead but never sent was reported
    "failed: back RUNNING on the source host" (and backed off) at three restarts in a row,
    the settlement being saved only at the end of the cycle that the kill cut short."""
    from dataclasses import replace
    from cvem.core.migration import InFlight as Move
    from cvem.service.state import StateStore
    with OnedDouble(resize_settle_s=0.02, migrate_settle_s=0.05) as oned:
        a = oned.add_host("kvm-1", total_mem_kib=64 * GIB)
        b = oned.add_host("kvm-2", total_mem_kib=64 * GIB)
        vm = oned.add_vm("mover", a, 4096, 4096)
        clock = Clock(oned)
        node = Node(oned, tmp_path, "fe1", clock)
        started = clock() - 600                          # written ahead, never sent
        node.svc.migration_state = replace(node.svc.migration_state,
                                           in_flight=(Move(vm, a, b, 4096 * 1024, started, "overload"),))
        node.svc.store.save_migration_state(node.svc.migration_state)
        with caplog.at_level(logging.INFO):
            node.svc.reconcile_migrations(node.svc.cloud.read_cloud(), clock())   # then killed
        assert "failed: back RUNNING on the source host" in caplog.text
        saved = StateStore(str(tmp_path / "fe1.db")).load_migration_state()
        assert saved.in_flight == () and vm in saved.backoff_vm_ids.tolist()
