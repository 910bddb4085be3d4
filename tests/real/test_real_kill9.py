"""`cvem run` killed with SIGKILL at random moments on the real oned 7.4 (issue 15, item 2).

cvem runs as the operator runs it (a `cvem run` process on its config and state DB), with the
dummy driver taking seconds to resize and migrate so actions are in flight when the kill lands.
It is killed 20 times at seeded random moments and restarted on the same state DB; the guests
alternate between idle and surging meanwhile. Across the whole run, from oned's own history
records and cvem's logs: no resize issued twice, none lost, a cooldown after every change before
a shrink (on oned's clock, across restarts), no VM above its size or below what its guest uses
plus the floor.
"""
import random
import re
import signal
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from realkit import GuestReports, cvem_config_text

MIB_KIB = 1024
SIZE_MIB = 4096
IDLE_USED_MIB = 400
FLOOR_MIB = 64            # guards' default floor_kib
COOLDOWN_S = 6
KILLS = 20
SEED = 15
RESIZE_ACTION = "35"      # HISTORY/ACTION of a resize in oned 7.4 (real recordings)
LIVE_MIGRATE_ACTION = "2"
# the default policy with memories of seconds, not hours: guests swing within the test
SHORT_MEMORY_POLICY = ("[policy:default]\npeak_half_life_s = 2\nsurge_half_life_s = 2\n"
                       "activity_half_life_s = 2\nstarved_half_life_s = 2\nrise_window_s = 2\n"
                       "starved_daily_half_life_s = 2\n")
REPO = Path(__file__).resolve().parents[2]

ISSUED = re.compile(r"^(\S+ \S+) INFO \S+: vm=(\d+) host=\d+ action=(grow|shrink) "
                    r"from_kib=(\d+) to_kib=(\d+) reason=")
CONFIRMED = re.compile(r"vm=(\d+) host=\d+ action=(grow|shrink) from_kib=(\d+) to_kib=(\d+) "
                       r"confirmed after an interrupted cycle")


def _cvem():
    return shutil.which("cvem", path=str(REPO / ".venv" / "bin")) or "cvem"


class Guests:
    """Each VM alternates idle / surging on its own phase; reports go in as the publisher's."""

    def __init__(self, one, vms):
        self.one, self.vms, self.reports = one, vms, GuestReports(one)
        self.started = time.monotonic()

    def surging(self, index):
        return int((time.monotonic() - self.started + 7 * index) / 12) % 2 == 1

    def publish(self, idle_only=False):
        for index, vm in enumerate(self.vms):
            memory_kib = self.reports.memory_kib(vm)
            if self.surging(index) and not idle_only:
                self.reports.publish(vm, memory_kib, memory_kib, swap_used_kib=300 * MIB_KIB,
                                     pressure=True)
            else:
                self.reports.publish(vm, IDLE_USED_MIB * MIB_KIB, memory_kib)

    def run_for(self, seconds, idle_only=False):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.publish(idle_only)
            time.sleep(min(0.7, max(0.0, deadline - time.monotonic())))


def _start(conf, log):
    """`cvem run` as the operator starts it (no metrics port: parallel beds would collide)."""
    with log.open("a") as out:
        return subprocess.Popen([_cvem(), "--config", str(conf), "-v", "run", "--metrics-address", ""],
                                stdout=out, stderr=subprocess.STDOUT)


def _inflight(state_db):
    if not state_db.exists():
        return set()
    db = sqlite3.connect("file:%s?mode=ro" % state_db, uri=True, timeout=5)
    try:
        return set(db.execute("SELECT vm_id, action, from_kib, to_kib, started_at_s FROM inflight"))
    except sqlite3.OperationalError:   # killed before it made its tables
        return set()
    finally:
        db.close()


def _action_times(one, vm, action):
    """When oned accepted each ``action`` on the VM (1 s resolution), oldest first.

    An action closes the history record open at the time (its ETIME, ACTION and UID) and
    opens the next one (``DispatchManager::close_cp_history``): the closed record's STIME is
    when the *previous* action happened, so the STIMEs of ACTION=35 records are the times of
    the changes before each resize, not of the resizes."""
    return [int(h.findtext("ETIME")) for h in one.vm(vm).findall("HISTORY_RECORDS/HISTORY")
            if h.findtext("ACTION") == action]


def test_cvem_killed_at_random_moments_repeats_nothing_loses_nothing_breaks_no_rule(
        real_one, empty_cluster, tmp_path):
    cluster_id, (a, b, d) = empty_cluster
    rng = random.Random(SEED)
    # five 4 GiB VMs on a 16 GiB host: shrunk they fit, surging they overload it and cvem
    # live-migrates some to B (the other live-resize host) while the others resize
    vms = [real_one.make_vm(a, SIZE_MIB, SIZE_MIB) for _ in range(5)]
    guests = Guests(real_one, vms)
    state_db = tmp_path / "state.db"
    conf = tmp_path / "cvem.conf"
    conf.write_text(cvem_config_text(real_one, state_db, clusters=str(cluster_id), period_s=1.0,
                                     guards="cooldown_s = %d\nmax_shrink_ratio = 0.5\n" % COOLDOWN_S
                                     + SHORT_MEMORY_POLICY))
    log = tmp_path / "cvem.log"
    seen_inflight = set()
    real_one.dummy_actions("resize", "success 2", "success 0.5", "success 3", "success 1")
    real_one.dummy_actions("migrate", "success 3")
    try:
        for kill in range(KILLS):
            starts = log.read_text().count("cvem running:") if log.exists() else 0
            proc = _start(conf, log)
            if rng.random() > 0.15:   # most kills land in cycles, some while it starts
                real_one.wait(lambda: proc.poll() is not None
                              or log.read_text().count("cvem running:") > starts,
                              "cvem run started", 60, step_s=0.1)
                assert proc.poll() is None, log.read_text()[-3000:]
            guests.run_for(rng.uniform(0.2, 3.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            seen_inflight |= _inflight(state_db)
        # the last start: the guests go idle, everything in flight settles
        proc = _start(conf, log)
        last_start_s = time.time()
        guests.run_for(2 * COOLDOWN_S + 4, idle_only=True)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        real_one.dummy_actions("resize")
        real_one.dummy_actions("migrate")
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]

    decisions = {vm: [] for vm in vms}   # (direction, from_kib, to_kib) in oned's order
    for line in text.splitlines():
        issued, confirmed = ISSUED.match(line), CONFIRMED.search(line)
        if issued and int(issued.group(2)) in decisions:
            decisions[int(issued.group(2))].append(
                (issued.group(3), int(issued.group(4)), int(issued.group(5))))
        elif confirmed and int(confirmed.group(1)) in decisions:
            decisions[int(confirmed.group(1))].append(
                (confirmed.group(2), int(confirmed.group(3)), int(confirmed.group(4))))
    assert sum(map(len, decisions.values())) >= 10, "too few resizes to prove anything:\n" + text[-3000:]
    print("kill9: %d starts, %d resizes, %d confirmed after a kill, %d never reached oned, "
          "%d migrations, %d in-flight records seen at kills" % (
              text.count("cvem running:"), sum(map(len, decisions.values())),
              len(CONFIRMED.findall(text)), text.count("did not happen"),
              len(re.findall(r"action=migrate to_host=\d+ reason=\S+ issued", text)),
              len(seen_inflight)))

    for vm in vms:
        times = _action_times(real_one, vm, RESIZE_ACTION)
        made = decisions[vm]
        # none repeated, none lost: oned holds exactly the resizes cvem decided
        assert len(times) == len(made), (vm, times, made)
        for (_, _, to_kib), (_, from_kib, _) in zip(made, made[1:]):
            assert from_kib == to_kib, ("a resize issued from a stale size", vm, made)
        # a shrink waits a cooldown after any change, across restarts: measured on oned's
        # clock between the resizes it accepted (1 s resolution, hence the second's slack)
        for before, when, (direction, _, _) in zip(times, times[1:], made[1:]):
            if direction == "shrink":
                assert when - before >= COOLDOWN_S - 1, (vm, list(zip(times, made)))
        # never above its size, never below the idle guest's used + floor
        for direction, _, to_kib in made:
            assert to_kib <= SIZE_MIB * MIB_KIB, (vm, made)
            if direction == "shrink":
                assert to_kib >= (IDLE_USED_MIB + FLOOR_MIB) * MIB_KIB, (vm, made)
        # every live migration oned made was issued by cvem and followed to its end, once; a
        # move killed after its write-ahead record but before the call ends "failed" (never
        # made), a move killed during the call has no "issued" line but ends all the same
        issued = len(re.findall(r"vm=%d host=\d+ action=migrate to_host=\d+ reason=\S+ issued" % vm, text))
        ended = len(re.findall(r"vm=%d host=\d+ action=migrate to_host=\d+ (done|failed)" % vm, text))
        made_by_oned = len(_action_times(real_one, vm, LIVE_MIGRATE_ACTION))
        assert issued <= made_by_oned <= ended, (vm, issued, made_by_oned, ended)
        final = real_one.wait_running(vm, 60)   # the last run's last resize settles
        assert IDLE_USED_MIB + FLOOR_MIB <= int(final.findtext("TEMPLATE/MEMORY")) <= SIZE_MIB

    # every resize in flight at some kill was settled after a restart
    left = {rec for rec in _inflight(state_db) if rec[4] < last_start_s - 1}
    assert not (left & seen_inflight), left
