"""`cvem bench writes`: the publishers' writes come from replaying figures through the
publisher's own publish_reason; cvem's from a simulated run's allocations."""
import numpy as np

from cvem.bench.writes import (budget, cvem_writes_per_s_per_1000, load_publisher,
                               replay_publishers)

GIB = 1 << 20
HOUR_STEPS = 12          # 300 s steps


def test_a_quiet_guest_writes_only_its_heartbeats():
    steps = 24 * HOUR_STEPS
    demand = np.full((1, steps), 1.0 * GIB, dtype=np.float32)
    alloc = np.full((1, steps), 2.0 * GIB, dtype=np.float32)
    replay = replay_publishers(demand, alloc, 300.0)
    assert replay.reasons == {"first": 1, "heartbeat": 47}       # 24 h / 30 min - 1
    assert abs(replay.per_s_per_1000_vms - 1000.0 * 48 / 86400) < 1e-9
    assert set(replay.verdicts) <= {"fresh", "corroborated"}


def test_moves_past_the_deadband_and_pressure_go_out_at_once():
    steps = 2 * HOUR_STEPS
    demand = np.full((1, steps), 1.0 * GIB, dtype=np.float32)
    demand[0, 5:] += 60 * 1024           # under the 64 MiB deadband: quiet
    demand[0, 8:] += 200 * 1024          # past it
    demand[0, 12] = 2.5 * GIB            # more than its 2 GiB: swapping, PSI
    alloc = np.full((1, steps), 2.0 * GIB, dtype=np.float32)
    reasons = replay_publishers(demand, alloc, 300.0).reasons
    assert reasons["used moved"] == 1          # step 8 only; step 5 stayed in the deadband
    assert reasons["pressure"] == 1 and reasons["pressure over"] == 1


def test_the_replay_uses_the_publishers_own_rules():
    publisher = load_publisher()
    every_minute = publisher.DEFAULT_RULES._replace(heartbeat_s=60.0)
    demand = np.full((1, HOUR_STEPS), 1.0 * GIB, dtype=np.float32)
    alloc = np.full((1, HOUR_STEPS), 2.0 * GIB, dtype=np.float32)
    replay = replay_publishers(demand, alloc, 300.0, rules=every_minute, publisher=publisher)
    assert replay.writes == 60                  # every 60 s: 60 in an hour


def test_cvem_writes_and_the_share_of_capacity():
    alloc = np.full((2, 13), 2.0 * GIB)
    alloc[0, 6:] = 1.5 * GIB                    # one resize in 2 × 13 × 300 s
    cvem = cvem_writes_per_s_per_1000(alloc, 300.0)
    per_s = 1000.0 / (2 * 13 * 300.0)
    assert abs(cvem["resizes_per_s"] - per_s) < 1e-9 and cvem["quota_per_s"] == 2 * per_s
    b = budget(1.0, cvem, capacity_per_s=230.0)
    assert b["total_per_s"] == round(10 * (1.0 + 4 * per_s) + 0.1, 2)
    assert b["met"] == (b["share_pct"] < 20.0)
